"""``costline keys``: list, create, revoke and rotate API keys.

While a ``costline serve`` runs for the data directory and store (``server.json``), the commands go through
its ``/v1/admin/`` routes with the admin token (it owns a DuckDB file, and it drops its key cache at once);
otherwise they open the store and call ``server.keys`` directly. Both ways answer the same JSON shapes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import click

from costline.cli.context import CliContext, pass_cli
from costline.cli.control_client import HttpControl, NotFoundError
from costline.cli.output import emit_data, format_options
from costline.cli.render import console
from costline.cli.serve import _open, _settings
from costline.server import keys, local_admin
from costline.store.base import Store, ensure_private_dir


class KeysClient(Protocol):
    def list(self, project_id: str | None) -> list[dict[str, Any]]: ...

    def create(self, project_id: str) -> dict[str, Any]: ...

    def revoke(self, public_key: str) -> dict[str, Any]: ...

    def rotate(self, public_key: str, grace_seconds: float) -> dict[str, Any]: ...


class _HttpKeys:
    def __init__(self, server: local_admin.RunningServer) -> None:
        self._http = HttpControl(server, None)

    @staticmethod
    def _quote(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    def list(self, project_id: str | None) -> list[dict[str, Any]]:
        path = f"/v1/admin/projects/{self._quote(project_id)}/keys" if project_id else "/v1/admin/keys"
        found: list[dict[str, Any]] = self._http._call("GET", path)["data"]
        return found

    def create(self, project_id: str) -> dict[str, Any]:
        made: dict[str, Any] = self._http._call("POST", f"/v1/admin/projects/{self._quote(project_id)}/keys", {})
        return made

    def revoke(self, public_key: str) -> dict[str, Any]:
        done: dict[str, Any] = self._http._call("POST", f"/v1/admin/keys/{self._quote(public_key)}/revoke", {})
        return done

    def rotate(self, public_key: str, grace_seconds: float) -> dict[str, Any]:
        done: dict[str, Any] = self._http._call("POST", f"/v1/admin/keys/{self._quote(public_key)}/rotate",
                                                {"grace_seconds": grace_seconds})
        return done


class _DirectKeys:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def list(self, project_id: str | None) -> list[dict[str, Any]]:
        now = self._now()
        return [keys.key_json(k, now) for k in self._found(lambda: keys.list_keys(self.store, project_id))]

    def create(self, project_id: str) -> dict[str, Any]:
        now = self._now()
        return keys.issued_json(self._found(lambda: keys.create_key(self.store, project_id, now)), now)

    def revoke(self, public_key: str) -> dict[str, Any]:
        now = self._now()
        return keys.key_json(self._found(lambda: keys.revoke_key(self.store, public_key, now)), now)

    def rotate(self, public_key: str, grace_seconds: float) -> dict[str, Any]:
        now = self._now()
        grace = keys.parse_grace(grace_seconds)
        old, issued = self._found(lambda: keys.rotate_key(self.store, public_key, now, grace))
        return {"old": keys.key_json(old, now), "new": keys.issued_json(issued, now)}

    @staticmethod
    def _found(action: Any) -> Any:
        try:
            return action()
        except keys.KeyNotFoundError as exc:
            raise NotFoundError(str(exc)) from None


@contextmanager
def _client(obj: CliContext, store_url: str | None) -> Iterator[KeysClient]:
    settings = _settings(obj, store_url=store_url)
    server = local_admin.read_runtime_file(settings.data_dir)
    if server is not None and server.store_url == settings.resolved_store_url:
        yield _HttpKeys(server)
        return
    ensure_private_dir(settings.data_dir)
    store = _open(settings)
    try:
        yield _DirectKeys(store)
    finally:
        store.close()


def _store_option(f: Any) -> Any:
    return click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve). While "
                        "`costline serve` runs for it, the command goes through the server.")(f)


def _print_pair(made: Mapping[str, Any]) -> None:
    out = console()
    out.print(f"  public key: {made['public_key']}")
    out.print(f"  secret key: {made['secret_key']}   (shown once; costline keeps only its hash)")


@click.group("keys")
def keys_group() -> None:
    """List, create, revoke and rotate API keys."""


@keys_group.command("list")
@click.option("--project", "project_id", metavar="ID", help="Only this project's keys.")
@_store_option
@format_options
@pass_cli
def list_command(obj: CliContext, project_id: str | None, store_url: str | None, fmt: str) -> None:
    """List keys with their creation, last use (recorded at most once a minute) and revocation time."""
    with _client(obj, store_url) as client:
        found = client.list(project_id)
    if fmt != "table":
        emit_data(fmt, found)
        return
    from rich.table import Table

    table = Table("public key", "project", "created", "last used", "revoked", "active")
    for k in found:
        table.add_row(k["public_key"], k["project_id"], k["created_at"], k["last_used_at"] or "never",
                      k["revoked_at"] or "", "yes" if k["active"] else "no")
    console().print(table)


@keys_group.command("create")
@click.option("--project", "project_id", metavar="ID", required=True, help="The project the key reaches.")
@_store_option
@format_options
@pass_cli
def create_command(obj: CliContext, project_id: str, store_url: str | None, fmt: str) -> None:
    """Create a key pair for a project and print it (the secret is shown only now)."""
    with _client(obj, store_url) as client:
        made = client.create(project_id)
    if fmt != "table":
        emit_data(fmt, made)
        return
    console().print(f"new key for project {made['project_id']}")
    _print_pair(made)


@keys_group.command("revoke")
@click.argument("public_key")
@_store_option
@format_options
@pass_cli
def revoke_command(obj: CliContext, public_key: str, store_url: str | None, fmt: str) -> None:
    """Revoke PUBLIC_KEY now: every server sharing the store refuses it within COSTLINE_KEY_CACHE_TTL."""
    with _client(obj, store_url) as client:
        done = client.revoke(public_key)
    if fmt != "table":
        emit_data(fmt, done)
        return
    console().print(f"revoked {done['public_key']} (project {done['project_id']}) at {done['revoked_at']}")


@keys_group.command("rotate")
@click.argument("public_key")
@click.option("--grace", default="0", show_default=True, metavar="DURATION",
              help="Keep the old key working this long (90s, 30m, 1h, 2d; at most 30 days).")
@_store_option
@format_options
@pass_cli
def rotate_command(obj: CliContext, public_key: str, grace: str, store_url: str | None, fmt: str) -> None:
    """Issue a new pair for PUBLIC_KEY's project and revoke PUBLIC_KEY (now, or after --grace)."""
    try:
        seconds = keys.parse_grace(grace).total_seconds()
    except keys.KeyStateError as exc:
        raise click.BadParameter(str(exc).removeprefix("grace: "), param_hint="--grace") from None
    with _client(obj, store_url) as client:
        done = client.rotate(public_key, seconds)
    if fmt != "table":
        emit_data(fmt, done)
        return
    old, new = done["old"], done["new"]
    console().print(f"new key for project {new['project_id']}")
    _print_pair(new)
    console().print(f"old key {old['public_key']} stops working at {old['revoked_at']}")
