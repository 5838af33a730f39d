"""Alert rules and the state machine that turns conditions into notifications.

Kinds (docs/alerts.md):

- ``window_cost``: cost in a window (calendar or rolling) above ``threshold``, per ``group_by`` value;
- ``spike``: cost in the last ``minutes`` above ``threshold``, per ``group_by`` (model, provider, ...);
- ``anomaly``: cost in a rolling window above ``factor`` × the average of the ``baseline_days`` windows before
  it (default: the last 24 h against 2 × the 7-day daily average);
- ``forecast``: the month-end projection above ``threshold`` or above a monthly budget's limit;
- ``budget``: a budget's thresholds crossed (the budget's ``thresholds``; all budgets when ``budget`` is unset);
- ``request_cost``: one call above ``threshold`` (checked on ingest);
- ``unpriced``: a model without a price seen (checked on ingest).

``step`` is the one state machine for all of them, per rule and subject: a condition that starts notifies
(``firing``), a higher level (a budget threshold) notifies again, the same level notifies again only after the
cooldown, and the end of a notified condition notifies ``resolved``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from costline.core.budgets import BudgetError, Window, parse_scope, parse_window, scope_key
from costline.core.money import to_decimal
from costline.errors import CostlineError

KINDS: Final = ("window_cost", "spike", "anomaly", "forecast", "budget", "request_cost", "unpriced")
ON_INGEST: Final = frozenset({"request_cost", "unpriced"})
SEVERITIES: Final = ("info", "warning", "critical")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")
_KEYS: Final = frozenset({
    "id", "name", "kind", "filters", "scope", "group_by", "window", "timezone", "minutes", "threshold", "factor",
    "baseline_days", "min_cost", "budget", "channels", "notify", "cooldown_minutes", "severity", "enabled", "source",
})


class AlertRuleError(BudgetError):
    """An alert rule that is malformed; the message starts with the path of the bad field."""


def _fail(path: str, message: str) -> AlertRuleError:
    return AlertRuleError(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: str
    name: str
    kind: str
    filters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    group_by: str | None = None
    window: Window | None = None
    minutes: int | None = None
    threshold: Decimal | None = None
    factor: Decimal = Decimal(2)
    baseline_days: int = 7
    min_cost: Decimal = Decimal(0)
    budget: str | None = None
    channels: tuple[str, ...] = ()
    cooldown_minutes: int = 60
    severity: str = "warning"
    enabled: bool = True
    source: str = "api"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "filters": dict(self.filters),
            "group_by": self.group_by, "window": None if self.window is None else self.window.label,
            "timezone": None if self.window is None else self.window.timezone, "minutes": self.minutes,
            "threshold": None if self.threshold is None else str(self.threshold), "factor": str(self.factor),
            "baseline_days": self.baseline_days, "min_cost": str(self.min_cost), "budget": self.budget,
            "channels": list(self.channels), "cooldown_minutes": self.cooldown_minutes, "severity": self.severity,
            "enabled": self.enabled, "source": self.source,
        }


def _positive_int(raw: object, path: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise _fail(path, f"expected a whole number from {low} to {high}")
    return raw


def _amount(raw: object, path: str) -> Decimal:
    try:
        value = to_decimal(raw, field=path)
    except CostlineError as exc:
        raise AlertRuleError(str(exc)) from None
    if value < 0 or value >= Decimal("1e15"):
        raise _fail(path, f"expected an amount from 0 to below 1e15, got {raw!r}")
    return value


def parse_rule(raw: object, path: str = "alert") -> AlertRule:
    """An ``AlertRule`` from its JSON/YAML mapping; errors name ``path.<field>``."""
    if not isinstance(raw, Mapping):
        raise _fail(path, "expected a mapping")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown field; alert rules have {', '.join(sorted(_KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _fail(f"{path}.name", "an alert rule needs a name (at most 200 characters)")
    rule_id = raw.get("id", name)
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise _fail(f"{path}.id", f"{rule_id!r}: use letters, digits and _ . : @ - (at most 128)")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _fail(f"{path}.kind", f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    filters = parse_scope(raw.get("filters", raw.get("scope")), f"{path}.filters")
    group_by = None if raw.get("group_by") is None else scope_key(raw["group_by"], f"{path}.group_by")
    threshold = None if raw.get("threshold") is None else _amount(raw["threshold"], f"{path}.threshold")
    window = None
    if kind in ("window_cost", "anomaly") or raw.get("window") is not None:
        window = parse_window(raw.get("window", "24h" if kind == "anomaly" else None), raw.get("timezone"), path)
    if kind == "anomaly" and window is not None and window.kind != "rolling":
        raise _fail(f"{path}.window", "an anomaly compares a rolling window (such as 24h) with the ones before it")
    if kind == "forecast" and window is None and raw.get("timezone") is not None:
        window = parse_window("month", raw["timezone"], path)  # the zone the month's days are counted in
    if kind in ON_INGEST and "trace_name" in filters:
        raise _fail(f"{path}.filters.trace_name", "rules checked on ingest see the observation, not its trace")
    minutes = None
    if kind == "spike":
        minutes = _positive_int(raw.get("minutes"), f"{path}.minutes", 1, 7 * 24 * 60)
    elif raw.get("minutes") is not None:
        raise _fail(f"{path}.minutes", "only spike rules have minutes")
    if kind in ("window_cost", "spike", "request_cost") and threshold is None:
        raise _fail(f"{path}.threshold", f"a {kind} rule needs a threshold amount")
    budget = raw.get("budget")
    if budget is not None and (not isinstance(budget, str) or not budget):
        raise _fail(f"{path}.budget", "expected a budget id")
    if kind == "forecast" and threshold is None and budget is None:
        raise _fail(f"{path}.threshold", "a forecast rule compares with a threshold or a budget's limit (budget)")
    channels = raw.get("channels", raw.get("notify", []))
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise _fail(f"{path}.channels", "expected a list of channel names")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise _fail(f"{path}.severity", f"use one of {', '.join(SEVERITIES)}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(f"{path}.enabled", "expected true or false")
    source = raw.get("source", "api")
    return AlertRule(
        id=rule_id, name=name.strip(), kind=kind, filters=MappingProxyType(filters), group_by=group_by,
        window=window, minutes=minutes, threshold=threshold,
        factor=_amount(raw.get("factor", 2), f"{path}.factor"),
        baseline_days=_positive_int(raw.get("baseline_days", 7), f"{path}.baseline_days", 1, 90),
        min_cost=_amount(raw.get("min_cost", 0), f"{path}.min_cost"), budget=budget,
        channels=tuple(dict.fromkeys(channels)),
        cooldown_minutes=_positive_int(raw.get("cooldown_minutes", 60), f"{path}.cooldown_minutes", 0, 10_080),
        severity=severity, enabled=enabled, source=source if isinstance(source, str) else "api",
    )


# the state machine ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Condition:
    """What an evaluation found for one rule and subject: whether it holds, its level (a budget threshold in
    percent; 1 for plain rules), the window it belongs to, the figures for the message."""

    active: bool
    level: int = 1
    window: str | None = None
    figures: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def step(state: Mapping[str, Any] | None, condition: Condition, now: datetime,
         cooldown: timedelta) -> tuple[dict[str, Any], str | None]:
    """The next state and the event to notify (``firing``, ``resolved`` or None).

    A state is ``{"status": "ok"|"firing", "level", "window", "since", "notified_at", "notified"}``: the
    last notification's time is kept across episodes so that a condition that flaps within the cooldown
    notifies once; ``notified`` says whether this episode was notified (only then is its end notified). A
    condition that goes on at the same level is not notified again (de-duplication); a higher level is.
    """
    old = dict(state) if state else {}
    status = old.get("status", "ok")
    level = int(old.get("level") or 0)
    notified_at = old.get("notified_at")
    last = datetime.fromisoformat(notified_at) if isinstance(notified_at, str) else None
    episode_notified = bool(old.get("notified"))
    since = old.get("since")
    if condition.window is not None and old.get("window") not in (None, condition.window) and status == "firing":
        if not condition.active:  # the window that fired is over and the new one is fine
            return _state("ok", 0, condition.window, None, last, False), "resolved" if episode_notified else None
        status, level, episode_notified = "ok", 0, False  # a new window starts a new episode
    if not condition.active:
        event = "resolved" if status == "firing" and episode_notified else None
        return _state("ok", 0, condition.window, None, now if event else last, False), event
    if status != "firing":
        due = last is None or now - last >= cooldown
        if due:
            return _state("firing", condition.level, condition.window, now.isoformat(), now, True), "firing"
        return _state("firing", condition.level, condition.window, now.isoformat(), last, False), None
    if condition.level > level:
        return _state("firing", condition.level, condition.window, since, now, True), "firing"
    return _state("firing", level, condition.window, since, last, episode_notified), None


def pulse(state: Mapping[str, Any] | None, condition: Condition, now: datetime,
          cooldown: timedelta) -> tuple[dict[str, Any], str | None]:
    """``step`` for an event (one expensive call, one unpriced model seen): it notifies as a condition that
    starts would, within the cooldown of the last notice, and its episode ends at once without a ``resolved``."""
    new, event = step(state, condition, now, cooldown)
    new.update(status="ok", level=0, since=None, notified=False)
    return new, event


def _state(status: str, level: int, window: str | None, since: str | None, notified_at: datetime | None,
           notified: bool) -> dict[str, Any]:
    return {"status": status, "level": level, "window": window, "since": since,
            "notified_at": None if notified_at is None else notified_at.isoformat(), "notified": notified}
