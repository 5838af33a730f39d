"""``costline serve`` and ``costline projects``."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from costline.cli.context import CliContext, pass_cli
from costline.cli.output import emit, format_options
from costline.cli.render import console
from costline.server import local_admin
from costline.server.collector import tune_collector
from costline.settings import Settings
from costline.store.base import Store, ensure_private_dir, redact_url

if TYPE_CHECKING:
    from costline.core.resolve import PriceBook
    from costline.server.ingest_workers import IngestWorkers

log = logging.getLogger(__name__)
PURGE_INTERVAL_SECONDS = 3600


def _settings(obj: CliContext, **overrides: Any) -> Settings:
    return Settings.from_env(data_dir=obj.data_dir, **overrides)


def _open(settings: Settings) -> Store:
    from costline.store import open_store

    return open_store(settings.resolved_store_url)


def _now() -> datetime:
    return datetime.now(UTC)


@click.command("serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1; COSTLINE_BIND_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default 8787; COSTLINE_PORT).")
@click.option("--store", "store_url", metavar="URL",
              help="duckdb:///path/file.duckdb or postgresql://... (default: a DuckDB file in the data directory).")
@click.option("--data-dir", "serve_data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory (same as the global --data-dir).")
@pass_cli
def serve_command(obj: CliContext, host: str | None, port: int | None, store_url: str | None,
                  serve_data_dir: Path | None) -> None:
    """Run the costline server: ingestion (native, OTLP, Langfuse-compatible) on one port.

    On first start with an empty store it creates a project named "default" and prints its keys once.
    """
    import uvicorn

    from costline.catalog.book import load_price_book
    from costline.server.app import create_app
    from costline.server.auth import create_project

    if serve_data_dir is not None:
        obj.data_dir = serve_data_dir
    settings = _settings(obj, bind_host=host, port=port, store_url=store_url)
    ensure_private_dir(settings.data_dir)
    # files the server creates (DuckDB's write-ahead log, exports, the seal key) are private to its user even in
    # a data directory someone else made readable
    os.umask(0o077)
    store = _open(settings)
    out = console()
    if not store.list_projects():
        new = create_project(store, "default", _now())
        out.print(f"Created project 'default' ({new.project.id}). Its keys are shown once; keep them:")
        out.print(f"  public key: {new.public_key}")
        out.print(f"  secret key: {new.secret_key}")
    book = load_price_book(settings, extra_files=obj.price_files)
    token = local_admin.new_token()
    app = create_app(settings, store, book, admin_token=token)
    workers = _ingest_workers(settings, store, book)
    app.state.costline.ingest_workers = workers
    tune_collector()
    if settings.retention_days:
        _start_purger(store, settings.retention_days)
    if settings.control_file is not None:
        _apply_control_file(store, settings, app.state.costline.alerts)
    app.state.costline.alerts.start()
    out.print(f"costline serving {redact_url(settings.resolved_store_url)} on "
              f"http://{settings.bind_host}:{settings.port}")
    # `costline report` / `top` on this machine reach the server through this file while it owns the store
    local = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.bind_host, settings.bind_host)
    running = local_admin.RunningServer(f"http://{local}:{settings.port}", os.getpid(),
                                        settings.resolved_store_url, token)
    local_admin.write_runtime_file(settings.data_dir, running)
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it to the handler it found: make that one
    # leave through `finally`, so the control file is removed and the store closed (DuckDB checkpoints)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(app, host=settings.bind_host, port=settings.port, log_level="warning",
                    server_header=False, access_log=False)
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        local_admin.remove_runtime_file(settings.data_dir, running.pid)
        app.state.costline.alerts.stop()
        if workers is not None:
            workers.close()
        store.close()
    # stopped on request, everything closed: skip the interpreter's teardown, where DuckDB's bindings report
    # the objects gc.freeze() kept alive as leaks
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _ingest_workers(settings: Settings, store: Store, book: PriceBook) -> IngestWorkers | None:
    """Worker processes for large native batches and OTLP exports, on a DuckDB store (server/ingest_workers.py)."""
    from costline.server.ingest_workers import IngestWorkers
    from costline.store.duckdb import DuckDBStore

    if settings.ingest_workers <= 0 or not isinstance(store, DuckDBStore):
        return None
    return IngestWorkers(book, settings.ingest_workers, settings.metrics_metadata_labels)


class _Stopped(BaseException):
    """SIGTERM arrived (after uvicorn's graceful shutdown)."""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise _Stopped


def _apply_control_file(store: Store, settings: Settings, alerts: Any) -> None:
    """Apply COSTLINE_CONTROL_FILE to the first project (the default one), replacing what it defined before."""
    from costline.control.config_file import control_objects, read_control_file

    assert settings.control_file is not None
    document = read_control_file(settings.control_file, environment=settings.environment or None)
    alerts.destinations.check_specs(document.channels)  # the operator's file is held to the same policy
    project = store.list_projects()[0]
    objects = control_objects(document, project.id, _now())
    store.replace_control(project.id, document.source, objects)
    alerts.changed(project.id)
    console().print(f"applied {settings.control_file}: {len(document.channels)} channel(s), "
                    f"{len(document.budgets)} budget(s), {len(document.alerts)} alert rule(s)")


def _start_purger(store: Store, days: int) -> None:
    def loop() -> None:
        while not stop.wait(PURGE_INTERVAL_SECONDS if started.is_set() else 5):
            started.set()
            try:
                deleted = store.purge(_now() - timedelta(days=days))
                if deleted:
                    log.info("retention: purged %d observations older than %d days", deleted, days)
            except Exception:  # the purge must never take the server down
                log.exception("retention purge failed")

    stop = threading.Event()
    started = threading.Event()
    threading.Thread(target=loop, name="costline-purge", daemon=True).start()


@click.group("projects")
def projects_group() -> None:
    """Create and list projects and their keys."""


def _projects_target(obj: CliContext, store_url: str | None, *, create_dir: bool = False) -> Any:
    """The running server that owns the store, or the store opened (the caller closes it)."""
    from costline.cli.remote import running_server

    settings = _settings(obj, store_url=store_url)
    server = running_server(settings)
    if server is not None:
        return server
    if create_dir:
        ensure_private_dir(settings.data_dir)
    return _open(settings)


@projects_group.command("create")
@click.argument("name")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve). While "
              "`costline serve` runs for it, the project is created through the server.")
@format_options
@pass_cli
def create(obj: CliContext, name: str, store_url: str | None, fmt: str) -> None:
    """Create project NAME and print its public and secret key (the secret is shown only now)."""
    from costline.cli.remote import call
    from costline.server.auth import create_project

    if not name.strip():
        raise click.BadParameter("must not be empty", param_hint="NAME")
    target = _projects_target(obj, store_url, create_dir=True)
    if isinstance(target, local_admin.RunningServer):
        new: dict[str, Any] = call(target, "POST", "/v1/projects", body={"name": name})
    else:
        try:
            new = create_project(target, name, _now()).to_json()
        finally:
            target.close()
    if fmt != "table":
        emit(fmt, data=new, columns=list(new), rows=[new])
        return
    out = console()
    out.print(f"project {new['name']!r} ({new['project_id']})")
    out.print(f"  public key: {new['public_key']}")
    out.print(f"  secret key: {new['secret_key']}   (shown once; costline keeps only its hash)")


@projects_group.command("list")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve). While "
              "`costline serve` runs for it, the command asks the server.")
@format_options
@pass_cli
def list_projects(obj: CliContext, store_url: str | None, fmt: str) -> None:
    """List projects."""
    from costline.cli.remote import call
    from costline.server.auth import project_json

    target = _projects_target(obj, store_url)
    if isinstance(target, local_admin.RunningServer):
        projects: list[dict[str, Any]] = call(target, "GET", "/v1/projects")["data"]
    else:
        try:
            projects = [project_json(p) for p in target.list_projects()]
        finally:
            target.close()
    emit(fmt, data=projects, columns=["id", "name", "created_at"], rows=projects)
