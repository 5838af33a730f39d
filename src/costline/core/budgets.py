"""Budgets: what they cover (scope), over which window, how much, and what happens at the limit.

A budget is data: a scope (project-wide, or narrowed by user, session, tag, model, provider, environment,
trace name, release or ``metadata.<key>``), optionally split ``per`` an attribute (one counter per user, say)
and restricted to users of a named tier, a window (calendar day/week/month in an IANA zone, rolling hours or
days, lifetime), a cost limit and/or a request quota, warning thresholds in percent, and an action at the limit
(``alert``, ``block`` or ``downgrade`` to a named model). ``parse_budget`` validates the JSON/YAML shape and
names the bad field; ``spend_query`` turns one budget counter into a ``Query`` so that budgets count exactly
what reports show. Decisions live in ``core/enforce.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from costline.core import timebuckets
from costline.core.money import to_decimal
from costline.core.query import Filter, Metric, Query, QueryError, metadata_key
from costline.errors import CostlineError

#: scope keys (plus ``metadata.<key>``) and the query dimension each one is
SCOPE_KEYS: Final[Mapping[str, str]] = MappingProxyType({
    "user": "user", "session": "session", "tag": "tag", "model": "model", "provider": "provider",
    "environment": "environment", "trace_name": "trace_name", "name": "name", "release": "release",
})
ACTIONS: Final = ("alert", "block", "downgrade")
UNKNOWN_COST_POLICIES: Final = ("closed", "open")
CALENDAR_WINDOWS: Final = ("day", "week", "month")
DEFAULT_THRESHOLDS: Final = (50, 80, 100)
MAX_LIMIT: Final = Decimal("1e15")
_ROLLING = re.compile(r"^(?:rolling[ :_-]?)?(\d{1,5})\s*(h|d|hours?|days?)$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")


class BudgetError(CostlineError, ValueError):
    """A budget or tier that is malformed; the message starts with the path of the bad field."""


def _fail(path: str, message: str) -> BudgetError:
    return BudgetError(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class Window:
    """``day``/``week``/``month`` in ``timezone`` (weeks start on Monday), ``rolling`` ``hours`` long, or
    ``lifetime``."""

    kind: str
    timezone: str = "UTC"
    hours: int | None = None
    tz: tzinfo = field(default=timebuckets.zone("UTC"), compare=False, repr=False)

    @property
    def label(self) -> str:
        if self.kind == "rolling":
            assert self.hours is not None
            return f"{self.hours // 24}d" if self.hours % 24 == 0 else f"{self.hours}h"
        return self.kind

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(start, resets_at) of the window holding ``now``: the start is None for lifetime, the reset time
        None for lifetime and rolling windows (they slide)."""
        if self.kind == "lifetime":
            return None, None
        now = now.astimezone(_UTC)  # instants in UTC: aware datetimes of one zone subtract as wall clocks
        if self.kind == "rolling":
            assert self.hours is not None
            return now - timedelta(hours=self.hours), None
        local = now.astimezone(self.tz)
        day = local.date()
        if self.kind == "week":
            day -= timedelta(days=day.weekday())
        elif self.kind == "month":
            day = day.replace(day=1)
        if self.kind == "day":
            following = day + timedelta(days=1)
        elif self.kind == "week":
            following = day + timedelta(days=7)
        else:
            following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return _local_midnight(day, self.tz), _local_midnight(following, self.tz)


_UTC = timebuckets.zone("UTC")


def _local_midnight(day: Any, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC (a zone whose clocks skip midnight starts the day at
    01:00: the UTC round trip lands after the gap)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(_UTC)


def parse_window(raw: object, timezone: object, path: str) -> Window:
    if timezone is None:
        timezone = "UTC"
    if not isinstance(timezone, str):
        raise _fail(f"{path}.timezone", "expected an IANA time zone name such as Europe/Berlin")
    try:
        tz = timebuckets.zone(timezone)
    except CostlineError as exc:
        raise _fail(f"{path}.timezone", str(exc)) from None
    if not isinstance(raw, str):
        raise _fail(f"{path}.window", "expected day, week, month, lifetime or a rolling length such as 24h or 7d")
    text = raw.strip().lower()
    if text in (*CALENDAR_WINDOWS, "lifetime"):
        return Window(text, timezone, None, tz)
    match = _ROLLING.match(text)
    if not match:
        raise _fail(f"{path}.window", f"unknown window {raw!r}; use day, week, month, lifetime, or a rolling "
                                      "length such as 24h or 7d")
    hours = int(match.group(1)) * (24 if match.group(2).startswith("d") else 1)
    if not 1 <= hours <= 24 * 3660:
        raise _fail(f"{path}.window", f"a rolling window is 1 hour to 10 years long, got {raw!r}")
    return Window("rolling", timezone, hours, tz)


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    name: str
    window: Window
    scope: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    per: str | None = None
    tier: str | None = None
    limit: Decimal | None = None
    currency: str = "USD"
    max_requests: int | None = None
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    action: str = "alert"
    downgrade_to: str | None = None
    exempt_zero_cost: bool = True
    on_unknown_cost: str = "closed"
    notify: tuple[str, ...] = ()
    source: str = "api"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "scope": dict(self.scope), "per": self.per, "tier": self.tier,
            "window": self.window.label, "timezone": self.window.timezone,
            "limit": None if self.limit is None else str(self.limit), "currency": self.currency,
            "max_requests": self.max_requests, "thresholds": list(self.thresholds), "action": self.action,
            "downgrade_to": self.downgrade_to, "exempt_zero_cost": self.exempt_zero_cost,
            "on_unknown_cost": self.on_unknown_cost, "notify": list(self.notify), "source": self.source,
        }


_BUDGET_KEYS: Final = frozenset({
    "id", "name", "scope", "per", "tier", "window", "timezone", "limit", "currency", "max_requests", "requests",
    "thresholds", "action", "downgrade_to", "exempt_zero_cost", "on_unknown_cost", "notify", "source",
})


def parse_scope(raw: object, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(path, "expected a mapping such as {environment: prod, metadata.feature: chat}")
    scope: dict[str, str] = {}
    for key, value in raw.items():
        name = scope_key(key, f"{path}.{key}")
        if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
            raise _fail(f"{path}.{key}", "expected a non-empty string value")
        if len(str(value)) > 1000:
            raise _fail(f"{path}.{key}", "the value is longer than 1,000 characters")
        scope[name] = str(value)
    return scope


def scope_key(key: object, path: str) -> str:
    """A scope key: one of ``SCOPE_KEYS`` or ``metadata.<key>``."""
    if not isinstance(key, str):
        raise _fail(path, "expected a scope key")
    if key in SCOPE_KEYS:
        return key
    if key.startswith("metadata."):
        try:
            metadata_key(key.removeprefix("metadata."), path)
        except QueryError as exc:
            raise _fail(path, f"unknown scope key {key!r}: {str(exc).partition(': ')[2]}") from None
        return key
    raise _fail(path, f"unknown scope key {key!r}; use {', '.join(SCOPE_KEYS)} or metadata.<key>")


def _text(raw: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{path}.{key}", "expected a non-empty string")
    if len(value) > 200:
        raise _fail(f"{path}.{key}", "longer than 200 characters")
    return value.strip()


def parse_budget(raw: object, path: str = "budget", *, default_id: str | None = None) -> Budget:
    """A ``Budget`` from its JSON/YAML mapping (docs/budgets.md); errors name ``path.<field>``."""
    if not isinstance(raw, Mapping):
        raise _fail(path, "expected a mapping")
    unknown = sorted(str(k) for k in raw if k not in _BUDGET_KEYS)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown field; budgets have {', '.join(sorted(_BUDGET_KEYS))}")
    name = _text(raw, "name", path)
    if name is None:
        raise _fail(f"{path}.name", "a budget needs a name")
    budget_id = _text(raw, "id", path) or default_id or _slug(name)
    if not _ID.match(budget_id):
        raise _fail(f"{path}.id", f"{budget_id!r}: use letters, digits and _ . : @ - (at most 128)")
    window = parse_window(raw.get("window"), raw.get("timezone"), path)
    limit = None
    if raw.get("limit") is not None:
        limit = _amount(raw["limit"], f"{path}.limit")
    requests_key = "max_requests" if "max_requests" in raw else "requests"
    requests_raw = raw.get(requests_key)
    max_requests = None
    if requests_raw is not None:
        if isinstance(requests_raw, bool) or not isinstance(requests_raw, int) or not 0 <= requests_raw <= 10**12:
            raise _fail(f"{path}.{requests_key}", "expected a whole number of requests (0 to 10^12)")
        max_requests = requests_raw
    if limit is None and max_requests is None:
        raise _fail(f"{path}.limit", "a budget needs a cost limit (limit) or a request quota (max_requests)")
    currency = (_text(raw, "currency", path, "USD") or "USD").upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise _fail(f"{path}.currency", f"{currency!r} is not an ISO 4217 code such as USD")
    action = (_text(raw, "action", path, "alert") or "alert").lower()
    if action not in ACTIONS:
        raise _fail(f"{path}.action", f"unknown action {action!r}; use {', '.join(ACTIONS)}")
    downgrade_to = _text(raw, "downgrade_to", path)
    if action == "downgrade" and downgrade_to is None:
        raise _fail(f"{path}.downgrade_to", "the downgrade action needs the model to downgrade to")
    if action != "downgrade" and downgrade_to is not None:
        raise _fail(f"{path}.downgrade_to", f"only the downgrade action uses a model, the action is {action!r}")
    policy = (_text(raw, "on_unknown_cost", path, "closed") or "closed").lower()
    if policy not in UNKNOWN_COST_POLICIES:
        raise _fail(f"{path}.on_unknown_cost", "use closed (deny a call whose cost cannot be estimated) or open")
    exempt = raw.get("exempt_zero_cost", True)
    if not isinstance(exempt, bool):
        raise _fail(f"{path}.exempt_zero_cost", "expected true or false")
    per = raw.get("per")
    tier = _text(raw, "tier", path)
    if per is not None:
        per = scope_key(per, f"{path}.per")
        if per == "tag":
            raise _fail(f"{path}.per", "a request has several tags; split per another attribute")
    if tier is not None:
        if per not in (None, "user"):
            raise _fail(f"{path}.per", "a tier budget is per user")
        per = "user"
    return Budget(
        id=budget_id, name=name, window=window, scope=MappingProxyType(parse_scope(raw.get("scope"), f"{path}.scope")),
        per=per, tier=tier, limit=limit, currency=currency, max_requests=max_requests,
        thresholds=_thresholds(raw.get("thresholds", list(DEFAULT_THRESHOLDS)), f"{path}.thresholds"),
        action=action, downgrade_to=downgrade_to, exempt_zero_cost=exempt, on_unknown_cost=policy,
        notify=_names(raw.get("notify", []), f"{path}.notify"),
        source=_text(raw, "source", path, "api") or "api",
    )


def _slug(name: str) -> str:
    """An id from a name: characters an id cannot hold become ``-`` (``free daily`` → ``free-daily``)."""
    slug = re.sub(r"[^A-Za-z0-9_.:@\-]+", "-", name).strip("-.:@_")[:128]
    return slug or "budget"


def _amount(raw: object, path: str) -> Decimal:
    try:  # a YAML float goes through its shortest repr: what the user wrote
        value = to_decimal(raw, field=path)
    except CostlineError as exc:
        raise BudgetError(str(exc)) from None
    if value < 0 or value >= MAX_LIMIT:
        raise _fail(path, f"expected an amount from 0 to below 1e15, got {raw!r}")
    return value


def _thresholds(raw: object, path: str) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple):
        raise _fail(path, "expected a list of percentages such as [50, 80, 100]")
    found: list[int] = []
    for i, item in enumerate(raw):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 1000:
            raise _fail(f"{path}[{i}]", "expected a whole percentage from 1 to 1000")
        found.append(item)
    return tuple(sorted(set(found)))


def _names(raw: object, path: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise _fail(path, "expected a list of channel names")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item:
            raise _fail(f"{path}[{i}]", "expected a channel name")
    return tuple(dict.fromkeys(raw))


# what a request carries ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Attributes:
    """The attributes of a call that budgets are matched on."""

    user: str | None = None
    session: str | None = None
    tags: tuple[str, ...] = ()
    model: str | None = None
    provider: str | None = None
    environment: str | None = None
    trace_name: str | None = None
    name: str | None = None
    release: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tier: str | None = None

    def value(self, key: str) -> str | None:
        if key.startswith("metadata."):
            return self.metadata.get(key.removeprefix("metadata."))
        found: str | None = getattr(self, key)
        return found


def subject_of(budget: Budget, attrs: Attributes) -> str | None:
    """The counter ``attrs`` falls in: ``""`` for a budget not split, the ``per`` value for a split one, or
    None when the budget does not apply (scope mismatch, other tier, or the ``per`` attribute missing)."""
    for key, wanted in budget.scope.items():
        if key == "tag":
            if wanted not in attrs.tags:
                return None
        elif attrs.value(key) != wanted:
            return None
    if budget.tier is not None and attrs.tier != budget.tier:
        return None
    if budget.per is None:
        return ""
    return attrs.value(budget.per) or None


def counter_key(budget: Budget, subject: str) -> str:
    """The store key of one budget counter (reservations are kept per key)."""
    return f"{budget.id}|{subject}"


def spend_query(budget: Budget, subject: str, project_id: str, now: datetime, *,
                extra: Sequence[Filter] = ()) -> Query:
    """What the counter (``budget``, ``subject``) has spent in the window holding ``now``: one row with the
    exact cost sum of everything in scope (service costs with no model included, as the forecast counts
    them) and the number of model calls (observations with a model)."""
    start, _ = budget.window.bounds(now)
    filters = [scope_filter(key, value) for key, value in budget.scope.items()]
    if budget.per is not None:
        filters.append(scope_filter(budget.per, subject))
    return Query(
        view="observations", start=start, end=None,
        metrics=(Metric("cost", "sum"), Metric("calls", "count")),
        filters=(*filters, *extra), project_id=project_id, limit=1,
    )


def scope_filter(key: str, value: str) -> Filter:
    if key == "tag":
        return Filter("tag", "any of", (value,), kind="tags")
    if key.startswith("metadata."):
        return Filter("metadata", "=", value, key.removeprefix("metadata."))
    return Filter(SCOPE_KEYS[key], "=", value)
