"""``costline budgets``, ``costline alerts``, ``costline channels`` and ``costline apply``.

The commands turn flags into the JSON shapes of the HTTP API (docs/budgets.md, docs/alerts.md) and hand them to
a ``ControlClient`` (cli/control_client.py): the running server when there is one for the store, the store itself
otherwise. Validation is the library's; an input error prints the flag or the file field it is about and exits 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from costline.cli.context import CliContext, pass_cli
from costline.cli.control_client import ControlClient, DirectControl, HttpControl, Listed
from costline.cli.output import cell_text, emit_data, format_options
from costline.cli.render import console
from costline.cli.serve import _open, _settings
from costline.errors import CostlineError
from costline.server import local_admin
from costline.store.base import ensure_private_dir

F = TypeVar("F", bound=Callable[..., Any])

BUDGET_FLAGS = {"id": "--id", "name": "--name", "window": "--window", "timezone": "--timezone", "limit": "--limit",
                "currency": "--currency", "scope": "--scope", "per": "--per", "tier": "--tier",
                "max_requests": "--max-requests", "requests": "--max-requests", "thresholds": "--thresholds",
                "action": "--action", "downgrade_to": "--downgrade-to", "notify": "--notify",
                "on_unknown_cost": "--on-unknown-cost", "exempt_zero_cost": "--count-zero-cost"}
ALERT_FLAGS = {"id": "--id", "name": "--name", "kind": "--kind", "window": "--window", "timezone": "--timezone",
               "threshold": "--threshold", "minutes": "--minutes", "filters": "--filter", "group_by": "--group-by",
               "channels": "--channel", "budget": "--budget", "cooldown_minutes": "--cooldown-minutes",
               "factor": "--factor", "baseline_days": "--baseline-days", "min_cost": "--min-cost",
               "severity": "--severity"}


class InputError(click.ClickException):
    """Input the library refused: printed as ``error: <field>: <problem>``, exit status 2."""

    exit_code = 2


def _flagged(message: str, prefix: str, flags: Mapping[str, str]) -> str:
    """``budget.scope.colour: ...`` spoken in flags: ``--scope colour: ...``."""
    path, sep, rest = message.partition(": ")
    if not sep or not path.startswith(prefix + "."):
        return message
    head, _, tail = path.removeprefix(prefix + ".").partition(".")
    flag = flags.get(head.split("[")[0])
    return f"{flag}{' ' + tail if tail else ''}: {rest}" if flag else message


@contextmanager
def _input_errors(prefix: str = "", flags: Mapping[str, str] | None = None) -> Iterator[None]:
    try:
        yield
    except CostlineError as exc:
        if isinstance(exc, ValueError):
            raise InputError(_flagged(str(exc), prefix, flags or {})) from None
        raise


def target_options(f: F) -> F:
    """``--store`` and ``--project``, and a ``client`` argument in their place."""

    def wrapper(obj: CliContext, /, store_url: str | None, project_id: str | None, **kwargs: Any) -> Any:
        with _input_errors(), _client(obj, store_url, project_id) as client:
            return f(client, **kwargs)

    command = pass_cli(wrapper)
    command.__doc__ = f.__doc__
    command = click.option("--project", "project_id", metavar="ID",
                           help="The project (default: the only one).")(command)
    command = click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve). While "
                           "`costline serve` runs for it, the command goes through the server.")(command)
    return command  # type: ignore[return-value]


@contextmanager
def _client(obj: CliContext, store_url: str | None, project_id: str | None) -> Iterator[ControlClient]:
    settings = _settings(obj, store_url=store_url)
    server = local_admin.read_runtime_file(settings.data_dir)
    client: ControlClient
    if server is not None and server.store_url == settings.resolved_store_url:
        client = HttpControl(server, project_id)
    else:
        ensure_private_dir(settings.data_dir)
        store = _open(settings)
        try:
            client = DirectControl(store, project_id, lambda: obj.book, obj.settings.channel_allow_hosts)
        except BaseException:
            store.close()
            raise
    try:
        yield client
    finally:
        client.close()


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"{text!r}: expected KEY=VALUE such as environment=prod or "
                                     "metadata.feature=chat", param_hint=flag)
        found[key.strip()] = value.strip()
    return found


def _given(**values: Any) -> dict[str, Any]:
    """The options the user gave (an option left out takes the library's default)."""
    return {k: v for k, v in values.items() if v is not None and v != () and v != {}}


_text = cell_text


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table()
    for i, column in enumerate(columns):
        table.add_column(column, no_wrap=i == 0)  # the id, whole: it is what the other commands take
    for row in rows:
        table.add_row(*(_text(v) for v in row))
    console().print(table)


# budgets ------------------------------------------------------------------------------------------------------------
@click.group("budgets")
def budgets_group() -> None:
    """Create, list, show and delete budgets (docs/budgets.md)."""


@budgets_group.command("create")
@click.option("--name", required=True, help="The budget's name (also its id unless --id).")
@click.option("--window", required=True, help="day, week, month, lifetime, or rolling such as 24h or 7d.")
@click.option("--limit", metavar="AMOUNT", help="Cost limit in --currency, e.g. 0.50.")
@click.option("--max-requests", type=int, metavar="N", help="Request quota per window (with or without --limit).")
@click.option("--id", "budget_id", metavar="ID", help="Id (default: the name). An existing id is replaced.")
@click.option("--timezone", metavar="ZONE", help="IANA zone of calendar windows (default UTC).")
@click.option("--currency", metavar="CODE", help="ISO 4217 currency of the limit (default USD).")
@click.option("--scope", "scope", multiple=True, metavar="KEY=VALUE",
              help="Only calls with this attribute (user, session, tag, model, provider, environment, "
                   "metadata.<key>, ...). Repeatable.")
@click.option("--per", metavar="KEY", help="One counter per value of this attribute, e.g. user.")
@click.option("--tier", metavar="NAME", help="Only users on this tier; one counter per user.")
@click.option("--thresholds", metavar="PERCENTS", help="Warning thresholds, e.g. 50,80,100 (the default).")
@click.option("--action", metavar="ACTION", help="At the limit: alert (default), block or downgrade.")
@click.option("--downgrade-to", metavar="MODEL", help="The model a downgrade budget switches to.")
@click.option("--notify", multiple=True, metavar="CHANNEL", help="Channel told of crossed thresholds. Repeatable.")
@click.option("--on-unknown-cost", metavar="POLICY",
              help="closed (default: deny a call whose cost cannot be estimated) or open.")
@click.option("--count-zero-cost", is_flag=True, help="Count zero-cost calls against the limit (they are exempt).")
@format_options
@target_options
def budgets_create(client: ControlClient, name: str, window: str, limit: str | None, max_requests: int | None,
                   budget_id: str | None, timezone: str | None, currency: str | None, scope: tuple[str, ...],
                   per: str | None, tier: str | None, thresholds: str | None, action: str | None,
                   downgrade_to: str | None, notify: tuple[str, ...], on_unknown_cost: str | None,
                   count_zero_cost: bool, fmt: str) -> None:
    """Create or replace a budget."""
    spec = _given(id=budget_id, name=name, window=window, timezone=timezone, limit=limit, currency=currency,
                  scope=_pairs(scope, "--scope"), per=per, tier=tier, max_requests=max_requests,
                  thresholds=None if thresholds is None else _percents(thresholds), action=action,
                  downgrade_to=downgrade_to, notify=list(notify), on_unknown_cost=on_unknown_cost,
                  exempt_zero_cost=False if count_zero_cost else None, source="cli")
    with _input_errors("budget", BUDGET_FLAGS):
        saved = client.save("budget", spec)
    if fmt != "table":
        emit_data(fmt, saved)
        return
    console().print(f"saved budget {saved['id']!r} in {client.where}: {_budget_line(saved)}")


def _percents(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected whole percentages such as 50,80,100",
                                 param_hint="--thresholds") from None


def _budget_line(spec: Mapping[str, Any]) -> str:
    parts = [f"{spec['window']} ({spec['timezone']})"]
    if spec.get("limit") is not None:
        parts.append(f"limit {spec['limit']} {spec['currency']}")
    if spec.get("max_requests") is not None:
        parts.append(f"{spec['max_requests']} requests")
    if spec.get("scope"):
        parts.append(f"scope {_text(spec['scope'])}")
    if spec.get("tier"):
        parts.append(f"tier {spec['tier']}")
    elif spec.get("per"):
        parts.append(f"per {spec['per']}")
    action = spec["action"] + (f" to {spec['downgrade_to']}" if spec.get("downgrade_to") else "")
    return ", ".join([*parts, action])


@budgets_group.command("list")
@format_options
@target_options
def budgets_list(client: ControlClient, fmt: str) -> None:
    """List the project's budgets."""
    found = client.list_objects("budget")
    if fmt != "table":
        emit_data(fmt, [dict(b.spec) for b in found])
        return
    _table(("id", "window", "limit", "requests", "scope", "per / tier", "action", "source"),
           [(b.id, f"{b.spec['window']} {b.spec['timezone']}", _limit(b.spec), b.spec.get("max_requests"),
             b.spec.get("scope"), f"tier {b.spec['tier']}" if b.spec.get("tier") else b.spec.get("per"),
             b.spec["action"], b.source) for b in found])


def _limit(spec: Mapping[str, Any]) -> str | None:
    return None if spec.get("limit") is None else f"{spec['limit']} {spec['currency']}"


@budgets_group.command("show")
@click.argument("budget_id", metavar="ID")
@click.option("--user", "--subject", "subject", metavar="VALUE",
              help="For a per-user (per-attribute) budget: whose counter to show.")
@format_options
@target_options
def budgets_show(client: ControlClient, budget_id: str, subject: str | None, fmt: str) -> None:
    """A budget, where it stands now and, for month windows, its month-end forecast."""
    shown = client.show_budget(budget_id, subject or "")
    if fmt != "table":
        emit_data(fmt, shown)
        return
    out = console()
    out.print(f"budget {shown['id']!r} ({shown['name']}): {_budget_line(shown)}")
    out.print(f"  thresholds {_text(shown.get('thresholds'))} %; notify {_text(shown.get('notify'))}; "
              f"source {shown.get('source')}")
    status = shown.get("status")
    if status is None:
        out.print(f"  one counter per {shown['per']}: give --user VALUE to see one")
        return
    used = f"used {status['used']}" + (f" of {status['limit']} {status['currency']}" if status["limit"] else "")
    requests = f"{status['requests_used']} requests" + (
        f" of {status['max_requests']}" if status["max_requests"] is not None else "")
    out.print(f"  {used}, {requests} ({status['percent']}%){'  OVER' if status['over'] else ''}")
    out.print(f"  window from {status['window_start'] or 'the beginning'}; resets {status['resets_at'] or 'never'}")
    forecast = shown.get("forecast")
    if forecast:
        out.print(f"  month-end forecast {forecast['projected']} (range {forecast['low']} to {forecast['high']}; "
                  f"{forecast['days_observed']} days observed)")


@budgets_group.command("delete")
@click.argument("budget_id", metavar="ID")
@target_options
def budgets_delete(client: ControlClient, budget_id: str) -> None:
    """Delete a budget."""
    client.delete("budget", budget_id)
    console().print(f"deleted budget {budget_id!r}")


# alerts -------------------------------------------------------------------------------------------------------------
@click.group("alerts")
def alerts_group() -> None:
    """Create, list, delete and test alert rules; the delivery history (docs/alerts.md)."""


@alerts_group.command("create")
@click.option("--name", required=True, help="The rule's name (also its id unless --id).")
@click.option("--kind", required=True, metavar="KIND",
              help="window_cost, spike, anomaly, forecast, budget, request_cost or unpriced.")
@click.option("--id", "rule_id", metavar="ID", help="Id (default: the name). An existing id is replaced.")
@click.option("--window", metavar="WINDOW", help="window_cost: day, week, month or 24h/7d; anomaly: 24h (default).")
@click.option("--timezone", metavar="ZONE", help="IANA zone of a calendar window (default UTC).")
@click.option("--threshold", metavar="AMOUNT", help="The amount the cost is compared with.")
@click.option("--minutes", type=int, metavar="N", help="spike: the last N minutes.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Only this scope. Repeatable.")
@click.option("--group-by", metavar="KEY", help="One condition per value of this attribute (model, user, ...).")
@click.option("--channel", "channels", multiple=True, metavar="CHANNEL", help="Where to notify. Repeatable.")
@click.option("--budget", metavar="ID", help="forecast / budget rules: the budget they watch.")
@click.option("--cooldown-minutes", type=int, metavar="N", help="Quiet time before the same alert again (60).")
@click.option("--factor", metavar="K", help="anomaly: how many times the trailing average (2).")
@click.option("--baseline-days", type=int, metavar="N", help="anomaly: windows in the trailing average (7).")
@click.option("--min-cost", metavar="AMOUNT", help="anomaly: ignore a window costing less (0).")
@click.option("--severity", metavar="LEVEL", help="info, warning (default) or critical.")
@format_options
@target_options
def alerts_create(client: ControlClient, name: str, kind: str, rule_id: str | None, window: str | None,
                  timezone: str | None, threshold: str | None, minutes: int | None, filters: tuple[str, ...],
                  group_by: str | None, channels: tuple[str, ...], budget: str | None, cooldown_minutes: int | None,
                  factor: str | None, baseline_days: int | None, min_cost: str | None, severity: str | None,
                  fmt: str) -> None:
    """Create or replace an alert rule."""
    spec = _given(id=rule_id, name=name, kind=kind, window=window, timezone=timezone, threshold=threshold,
                  minutes=minutes, filters=_pairs(filters, "--filter"), group_by=group_by, channels=list(channels),
                  budget=budget, cooldown_minutes=cooldown_minutes, factor=factor, baseline_days=baseline_days,
                  min_cost=min_cost, severity=severity, source="cli")
    with _input_errors("alert", ALERT_FLAGS):
        saved = client.save("alert", spec)
    if fmt != "table":
        emit_data(fmt, saved)
        return
    console().print(f"saved alert rule {saved['id']!r} in {client.where}: {_rule_line(saved)}")


def _condition(spec: Mapping[str, Any]) -> str:
    parts = [f"{key} {spec[key]}" for key in ("window", "minutes", "threshold", "budget", "group_by")
             if spec.get(key) is not None]
    if spec.get("filters"):
        parts.append(f"filters {_text(spec['filters'])}")
    return ", ".join(parts) or "-"


def _rule_line(spec: Mapping[str, Any]) -> str:
    return f"{spec['kind']}, {_condition(spec)}, channels {_text(spec.get('channels'))}"


@alerts_group.command("list")
@format_options
@target_options
def alerts_list(client: ControlClient, fmt: str) -> None:
    """List the project's alert rules."""
    found = client.list_objects("alert")
    if fmt != "table":
        emit_data(fmt, [dict(r.spec) for r in found])
        return
    _table(("id", "kind", "condition", "channels", "cooldown", "enabled", "source"),
           [(r.id, r.spec["kind"], _condition(r.spec), r.spec.get("channels"), f"{r.spec['cooldown_minutes']} min",
             r.spec["enabled"], r.source)
            for r in found])


@alerts_group.command("delete")
@click.argument("rule_id", metavar="ID")
@target_options
def alerts_delete(client: ControlClient, rule_id: str) -> None:
    """Delete an alert rule."""
    client.delete("alert", rule_id)
    console().print(f"deleted alert rule {rule_id!r}")


@alerts_group.command("history")
@click.option("--rule", "rule_id", metavar="ID", help="Only this rule's notifications (budget:<id> for a budget).")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many, newest first (1-1000).")
@format_options
@target_options
def alerts_history(client: ControlClient, rule_id: str | None, limit: int, fmt: str) -> None:
    """Notifications sent (and failed), newest first."""
    found = client.history(rule_id, limit)
    if fmt != "table":
        emit_data(fmt, found)
        return
    _table(("at", "rule", "scope", "event", "channel", "status", "attempts", "error"),
           [(d.get("at"), d.get("rule_id"), d.get("scope") or "-", d.get("event"), d.get("channel"), d.get("status"),
             d.get("attempts"), d.get("error")) for d in found])


@alerts_group.command("test")
@click.argument("rule_id", metavar="ID")
@format_options
@target_options
def alerts_test(client: ControlClient, rule_id: str, fmt: str) -> None:
    """Send a test notification through the rule's channels now (exit 1 when one fails)."""
    deliveries = client.test_rule(rule_id)
    if fmt != "table":
        emit_data(fmt, deliveries)
    else:
        if not deliveries:
            console().print(f"alert rule {rule_id!r} has no channels: nothing sent")
        for d in deliveries:
            console().print(f"{d['channel']}: {d['status']}")
    failed = [d["channel"] for d in deliveries if d["status"] != "sent"]
    if failed:
        raise click.ClickException(f"the test did not reach {', '.join(failed)} (see `costline alerts history`)")


# channels ------------------------------------------------------------------------------------------------------------
@click.group("channels")
def channels_group() -> None:
    """List and delete notification channels (define them in the control file or PUT /v1/channels)."""


@channels_group.command("list")
@format_options
@target_options
def channels_list(client: ControlClient, fmt: str) -> None:
    """List notification channels; webhook secrets are never shown."""
    found = client.list_objects("channel")
    if fmt != "table":
        emit_data(fmt, [{"name": c.id, **c.spec} for c in found])
        return
    _table(("name", "kind", "target", "source"),
           [(c.id, "webhook" if "webhook" in c.spec else "apprise", _target(c.spec), c.source) for c in found])


def _target(spec: Mapping[str, Any]) -> str:
    """Where a channel sends, without credentials: a webhook's scheme and host, an apprise URL's service (the
    rest of an apprise URL may be a token)."""
    url = str(spec.get("webhook") or spec.get("apprise") or "")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "?"
    if "webhook" not in spec:
        return f"{scheme}://..."
    return f"{scheme}://{rest.split('?', 1)[0].split('#', 1)[0].split('/', 1)[0].rsplit('@', 1)[-1]}/..."


@channels_group.command("delete")
@click.argument("name")
@target_options
def channels_delete(client: ControlClient, name: str) -> None:
    """Delete a notification channel."""
    client.delete("channel", name)
    console().print(f"deleted channel {name!r}")


# apply ----------------------------------------------------------------------------------------------------------------
@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--environment", metavar="ENV",
              help="Take this environment's values (default: COSTLINE_ENVIRONMENT; unset: one budget or rule per "
                   "environment).")
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; change nothing.")
@format_options
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve). While "
              "`costline serve` runs for it, the file is applied through the server.")
@click.option("--project", "project_id", metavar="ID", help="The project (default: the only one).")
@pass_cli
def apply_command(obj: CliContext, file: Path, environment: str | None, dry_run: bool, fmt: str,
                  store_url: str | None, project_id: str | None) -> None:
    """Apply a control file: channels, budgets, tiers and alert rules (docs/budgets.md).

    What an earlier version of the same file defined and this one does not is removed; objects created
    with the API or `costline budgets create` stay. ${VAR} in the file is filled from this command's
    environment.
    """
    from costline.control.config_file import control_objects, file_document

    environment = (_settings(obj).environment if environment is None else environment) or None
    with _input_errors():
        document, payload = file_document(file, environment=environment)
    with _input_errors(), _client(obj, store_url, project_id) as client:
        current = {(o.kind, o.id): o for kind in ("channel", "budget", "alert") for o in client.list_objects(kind)}
        planned = control_objects(document, "-", datetime.now(UTC))
        plan = [{"kind": o.kind, "id": o.id, "action": _action(current.get((o.kind, o.id)), o.spec)}
                for o in planned]
        keep = {(o.kind, o.id) for o in planned}
        plan += [{"kind": o.kind, "id": o.id, "action": "remove"} for key, o in current.items()
                 if key not in keep and o.source == document.source]
        result = None if dry_run else client.apply(payload, environment, document.source)
        where = client.where
    if fmt != "table":
        emit_data(fmt, {"source": document.source, "environment": environment, "dry_run": dry_run, "plan": plan,
                        "result": result}, rows=plan)
        return
    out = console()
    _table(("kind", "id", "action"), [(p["kind"], p["id"], p["action"]) for p in plan])
    counts = {k: sum(1 for p in plan if p["kind"] == k and p["action"] != "remove") for k in ("channel", "budget",
                                                                                              "alert")}
    summary = f"{counts['channel']} channels, {counts['budget']} budgets, {counts['alert']} alert rules"
    scope = f"environment {environment}" if environment else "every environment"
    if dry_run:
        out.print(f"{file} is valid ({scope}): {summary}; dry run, nothing changed in {where}")
    else:
        assert result is not None
        out.print(f"applied {file} ({scope}) to {where}: {summary}; removed {result['removed']}")


def _action(existing: Listed | None, spec: Mapping[str, Any]) -> str:
    if existing is None:
        return "create"
    if existing.kind == "channel":  # a listed channel's secret is hidden: it cannot be compared
        return "replace"
    return "unchanged" if dict(existing.spec) == dict(spec) else "update"
