"""The alert engine: evaluates rules and budget thresholds, keeps per-rule state, hands notices to delivery.

Cheap rules run on ingest (``request_cost``, ``unpriced``: a pipeline listener) and budget thresholds run on
every budget check that moves a counter; window rules (``window_cost``, ``spike``, ``anomaly``, ``forecast``)
and budget thresholds of spend recorded without checks run every ``interval_s`` seconds on a background
thread of ``costline serve`` (``start``/``stop``). Every condition goes through ``core.alerts.step`` per rule
and subject, whose state is kept in the store, so cooldown, de-duplication and recovery survive restarts.
Deliveries go through a ``Dispatcher`` (per-channel queues, a few shared threads) and are logged in the store.
Test sends (``submit_test``) run on a small pool of their own, at most ``TEST_SENDS_PER_PROJECT`` per project at
once, so a slow receiver holds neither the server's request threads nor another project's tests.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from costline.control.budgets import BudgetService
from costline.control.destinations import PUBLIC_ONLY, DestinationPolicy
from costline.control.forecasts import month_forecast
from costline.control.notify import Channel, Delivery, Dispatcher, Notice, Notifier, parse_channel
from costline.core.alerts import AlertRule, Condition, parse_rule, pulse, step
from costline.core.budgets import Budget, scope_filter
from costline.core.cost import NO_USAGE
from costline.core.enforce import Status, crossed
from costline.core.events import Observation
from costline.core.money import decimal_str
from costline.core.query import Dimension, Metric, Query
from costline.errors import CostlineError
from costline.ingest.batch import Decoded
from costline.ingest.pipeline import IngestResult
from costline.store.base import AlertState, DeliveryEntry, Store

log = logging.getLogger(__name__)
LEASE = "alert-evaluation"
SEP = "/"  # channel keys in the shared notifier: "<project>/<channel name>"
#: test sends of one project in progress at once; more are answered 429
TEST_SENDS_PER_PROJECT = 2
#: threads delivering test sends (shared by all projects) and test sends waiting or running in all
TEST_SEND_WORKERS = 4
TEST_SENDS_MAX = 32


class BusyError(CostlineError):
    """Too many test sends in progress (of the project, or in all): try again in ``retry_after_s`` seconds."""

    retry_after_s = 5


def _money(value: Decimal | None) -> str:
    return "unpriced" if value is None else decimal_str(value)


class AlertEngine:
    def __init__(self, store: Store, budgets: BudgetService, clock: Callable[[], datetime], *,
                 interval_s: float = 30.0, notifier_options: Mapping[str, Any] | None = None,
                 destinations: DestinationPolicy = PUBLIC_ONLY,
                 reservation_keep: timedelta = timedelta(days=7)) -> None:
        self.store = store
        #: how long expired reservations are kept for late settles before the periodic pass purges them
        self.reservation_keep = reservation_keep
        self.budgets = budgets
        self.clock = clock
        self.interval_s = interval_s
        #: this engine's name for the alert lease
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        options = {"policy": destinations, **dict(notifier_options or {})}
        self.notifier = Notifier({}, self._record, clock=clock, **options)
        #: where channels may deliver (control/destinations.py): checked when a channel is saved and at send time
        self.destinations: DestinationPolicy = self.notifier.policy
        self.dispatcher = Dispatcher(self.notifier, group=lambda key: key.split(SEP, 1)[0])
        self._test_pool: ThreadPoolExecutor | None = None
        self._testing: dict[str, int] = {}
        self._test_lock = threading.Lock()  # never held around I/O: the event loop takes it
        self._rules: dict[str, list[AlertRule]] = {}
        self._channels_loaded = False
        self._lock = threading.Lock()
        #: one state update at a time in this process (checks cross thresholds concurrently)
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        budgets.listeners.append(self._on_crossing)
        budgets.pipeline.add_listener(self._on_ingest, reads_summary=True)

    # configuration --------------------------------------------------------------------------------------------
    def rules(self, project_id: str) -> list[AlertRule]:
        found = self._rules.get(project_id)
        if found is None:
            found = []
            for obj in self.store.list_control("alert", project_id):
                try:
                    found.append(parse_rule(obj.spec, f"alert {obj.id}"))
                except CostlineError as exc:
                    log.error("skipping stored alert rule %s of project %s: %s", obj.id, project_id, exc)
            self._rules[project_id] = found
        return found

    def changed(self, project_id: str | None = None) -> None:
        with self._lock:
            if project_id is None:
                self._rules.clear()
            else:
                self._rules.pop(project_id, None)
            self._channels_loaded = False
        self.budgets.changed(project_id)

    def _load_channels(self) -> None:
        with self._lock:
            if self._channels_loaded:
                return
            channels: dict[str, Channel] = {}
            for obj in self.store.list_control("channel"):
                try:
                    channel = parse_channel(obj.id, obj.spec, f"channels.{obj.id}")
                except CostlineError as exc:
                    log.error("skipping channel %s of project %s: %s", obj.id, obj.project_id, exc)
                    continue
                channels[f"{obj.project_id}{SEP}{obj.id}"] = channel
            self.notifier.replace_channels(channels)
            self._channels_loaded = True

    def _record(self, delivery: Delivery) -> None:
        channel = delivery.channel.split(SEP, 1)[-1]
        if delivery.error:  # the shared notifier's keys carry the project: users know the channel's name
            delivery = replace(delivery, error=delivery.error.replace(f"{delivery.project_id}{SEP}", ""))
        entry = {"id": delivery.id, "channel": channel, "rule": delivery.rule, "rule_id": delivery.rule_id,
                 "scope": delivery.scope, "event": delivery.event, "at": delivery.at.isoformat(),
                 "status": delivery.status, "attempts": delivery.attempts,
                 "error": delivery.public_error.replace(f"{delivery.project_id}{SEP}", "")
                 if delivery.public_error else None, "response_code": delivery.response_code}
        try:
            self.store.add_delivery(DeliveryEntry(delivery.project_id, f"{delivery.id}-{channel}", delivery.at,
                                                  delivery.rule_id, channel, delivery.status, entry))
        except CostlineError:
            log.exception("could not log delivery %s", delivery.id)

    def send(self, notice: Notice, channels: Sequence[str], *, wait: bool = False) -> list[Delivery]:
        self._load_channels()
        keys = [f"{notice.project_id}{SEP}{c}" for c in channels]
        if not keys:
            return []
        if wait:
            prefix = f"{notice.project_id}{SEP}"
            return [replace(d, error=d.error.replace(prefix, "") if d.error else d.error)
                    for d in self.notifier.send(notice, keys)]
        self.dispatcher.submit(notice, keys)
        return []

    def test(self, project_id: str, rule_id: str) -> list[Delivery]:
        """Send a test notice through the rule's channels now and return the deliveries."""
        rule = next((r for r in self.rules(project_id) if r.id == rule_id), None)
        if rule is None:
            raise LookupError(f"no alert rule {rule_id!r} in this project")
        notice = Notice(project_id, rule.name, rule.id, "", "test", "info", f"[costline] test of alert {rule.name!r}",
                        f"This is a test notification of the costline alert rule {rule.name!r} ({rule.kind}).",
                        self.clock(), {"kind": rule.kind})
        return self.send(notice, rule.channels, wait=True)

    def submit_test(self, project_id: str, rule_id: str) -> Future[list[Delivery]]:
        """``test`` on the test-send pool; its future. Raises ``BusyError`` when the project has
        ``TEST_SENDS_PER_PROJECT`` test sends in progress, or all projects ``TEST_SENDS_MAX``."""
        with self._test_lock:
            if self._testing.get(project_id, 0) >= TEST_SENDS_PER_PROJECT:
                raise BusyError(f"this project has {TEST_SENDS_PER_PROJECT} test sends in progress; try again when "
                                f"they finish")
            if sum(self._testing.values()) >= TEST_SENDS_MAX:
                raise BusyError(f"{TEST_SENDS_MAX} test sends are in progress on this server; try again shortly")
            if self._test_pool is None:
                self._test_pool = ThreadPoolExecutor(TEST_SEND_WORKERS, thread_name_prefix="costline-test-send")
            self._testing[project_id] = self._testing.get(project_id, 0) + 1
            try:
                future = self._test_pool.submit(self.test, project_id, rule_id)
            except RuntimeError:  # the pool was shut down (the server is stopping)
                self._testing[project_id] -= 1
                raise BusyError("the server is stopping") from None
        future.add_done_callback(lambda _: self._release_test(project_id))
        return future

    def _release_test(self, project_id: str) -> None:
        with self._test_lock:
            left = self._testing.get(project_id, 0) - 1
            if left > 0:
                self._testing[project_id] = left
            else:
                self._testing.pop(project_id, None)

    # transitions ------------------------------------------------------------------------------------------
    def _transition(self, project_id: str, rule_id: str, name: str, subject: str, condition: Condition,
                    cooldown: timedelta, channels: Sequence[str], states: dict[tuple[str, str], AlertState],
                    changed: list[AlertState], title: str, severity: str, *, event_rule: bool = False) -> None:
        now = self.clock()
        old = states.get((rule_id, subject))
        new, event = (pulse if event_rule else step)(None if old is None else old.state, condition, now, cooldown)
        if old is None or dict(old.state) != new:
            state = AlertState(project_id, rule_id, subject, new, now)
            states[(rule_id, subject)] = state
            changed.append(state)
        if event is None or not channels:
            return
        figures = dict(condition.figures)
        body = "\n".join(f"{k}: {v}" for k, v in figures.items())
        prefix = "[costline] RESOLVED " if event == "resolved" else "[costline] "
        self.send(Notice(project_id, name, rule_id, subject, event, "info" if event == "resolved" else severity,
                         prefix + title, body, now, figures), channels)

    # budgets ------------------------------------------------------------------------------------------------------
    def _budget_channels(self, project_id: str, budget: Budget) -> list[str]:
        extra = [c for r in self.rules(project_id) if r.kind == "budget" and r.enabled and r.budget in (None,
                 budget.id) for c in r.channels]
        return list(dict.fromkeys([*budget.notify, *extra]))

    def _budget_condition(self, budget: Budget, status: Status) -> tuple[Condition, str]:
        percent = status.percent or Decimal(0)
        level = max((t for t in budget.thresholds if percent >= t), default=0)
        if status.over and budget.action != "alert":  # a call was refused: the budget is at its limit
            level = max(level, max((t for t in budget.thresholds if t <= 100), default=0))
        figures = {"budget": budget.name, "window": budget.window.label, "subject": status.counter.subject or "-",
                   "used": _money(status.used), "limit": _money(budget.limit), "currency": budget.currency,
                   "requests_used": status.requests_used, "max_requests": budget.max_requests,
                   "percent": str(percent.quantize(Decimal("0.1"))), "threshold": level,
                   "resets_at": None if status.counter.resets_at is None else status.counter.resets_at.isoformat(),
                   "blocking": bool(status.over and budget.action != "alert")}
        who = f" for {budget.per}={status.counter.subject}" if status.counter.subject else ""
        title = (f"budget {budget.name!r}{who} at {figures['percent']}% ({level}% threshold) of its "
                 f"{budget.window.label}")
        window = None if status.counter.start is None else status.counter.start.isoformat()
        return Condition(level > 0, level, window, figures), title

    def _on_crossing(self, project_id: str, budget: Budget, before: Status | None, after: Status) -> None:
        channels = self._budget_channels(project_id, budget)
        if not channels or not budget.thresholds:
            return
        if not after.over and crossed(None if before is None else before.percent, after.percent,
                                      budget.thresholds) is None:
            return  # nothing new: the periodic pass keeps the rest in step
        condition, title = self._budget_condition(budget, after)
        if not condition.active:
            return
        with self._state_lock:
            rule_id = f"budget:{budget.id}"
            states = {(s.rule_id, s.subject): s for s in self.store.get_alert_states(project_id, rule_id)}
            changed: list[AlertState] = []
            self._transition(project_id, rule_id, budget.name, after.counter.subject, condition, timedelta(0),
                             channels, states, changed, title, "warning" if condition.level < 100 else "critical")
            self.store.put_alert_states(changed)

    def _evaluate_budget(self, project_id: str, budget: Budget, states: dict[tuple[str, str], AlertState],
                         changed: list[AlertState]) -> None:
        channels = self._budget_channels(project_id, budget)
        if not channels or not budget.thresholds:
            return
        rule_id = f"budget:{budget.id}"
        subjects = [""] if budget.per is None else self._subjects(project_id, budget, states, rule_id)
        for subject in subjects:
            status = self.budgets.standing(project_id, budget, subject)
            condition, title = self._budget_condition(budget, status)
            self._transition(project_id, rule_id, budget.name, subject, condition, timedelta(0), channels, states,
                             changed, title, "warning" if condition.level < 100 else "critical")

    def _subjects(self, project_id: str, budget: Budget, states: Mapping[tuple[str, str], AlertState],
                  rule_id: str) -> list[str]:
        assert budget.per is not None
        now = self.clock()
        start, _ = budget.window.bounds(now)
        filters = tuple(scope_filter(k, v) for k, v in budget.scope.items())
        result = self.store.query(Query(
            view="observations", start=start, end=None, dimensions=(Dimension(budget.per.split(".")[0],
            budget.per.split(".", 1)[1] if budget.per.startswith("metadata.") else None),),
            metrics=(Metric("cost", "sum"),), filters=filters, project_id=project_id, limit=10_000))
        label = result.columns[0]
        found = {str(r[label]) for r in result.rows if r[label] is not None}
        if budget.tier is not None:
            found &= set(self.store.list_user_tiers(project_id, budget.tier))
        found |= {subject for (rid, subject), s in states.items()
                  if rid == rule_id and s.state.get("status") == "firing"}
        return sorted(found)

    # window rules -------------------------------------------------------------------------------------------------
    def _cost_by(self, project_id: str, rule: AlertRule, start: datetime | None,
                 end: datetime | None) -> dict[str, Decimal]:
        dims: tuple[Dimension, ...] = ()
        if rule.group_by is not None:
            key = rule.group_by
            dims = (Dimension("metadata", key.removeprefix("metadata.")) if key.startswith("metadata.")
                    else Dimension(key),)
        result = self.store.query(Query(
            view="observations", start=start, end=end, dimensions=dims, metrics=(Metric("cost", "sum"),),
            filters=tuple(scope_filter(k, v) for k, v in rule.filters.items()), project_id=project_id,
            limit=10_000))
        found: dict[str, Decimal] = {}
        for row in result.rows:
            subject = "" if not dims else f"{rule.group_by}={row[result.columns[0]]}"
            found[subject] = Decimal(row.get("sum_cost") or 0)
        return found

    def _evaluate_rule(self, project_id: str, rule: AlertRule, states: dict[tuple[str, str], AlertState],
                       changed: list[AlertState]) -> None:
        now = self.clock()
        conditions: dict[str, tuple[Condition, str]] = {}
        if rule.kind in ("window_cost", "spike"):
            assert rule.threshold is not None
            start: datetime | None
            if rule.kind == "spike":
                assert rule.minutes is not None
                start, label = now - timedelta(minutes=rule.minutes), f"last {rule.minutes} min"
            else:
                assert rule.window is not None
                start, label = rule.window.bounds(now)[0], rule.window.label
            for subject, cost in self._cost_by(project_id, rule, start, None).items():
                figures = {"cost": _money(cost), "threshold": _money(rule.threshold), "window": label,
                           "scope": subject or "all"}
                conditions[subject] = (Condition(cost > rule.threshold, 1, None, figures),
                                       f"{rule.name}: cost {_money(cost)} above {_money(rule.threshold)} ({label}"
                                       f"{', ' + subject if subject else ''})")
        elif rule.kind == "anomaly":
            assert rule.window is not None
            span = timedelta(hours=rule.window.hours or 24)
            current = self._cost_by(project_id, rule, now - span, None)
            history = self._cost_by(project_id, rule, now - span * (1 + rule.baseline_days), now - span)
            for subject, cost in current.items():
                baseline = history.get(subject, Decimal(0)) / rule.baseline_days
                active = cost >= rule.min_cost and (baseline > 0 or rule.min_cost > 0) and \
                    cost > rule.factor * baseline
                figures = {"cost": _money(cost), "baseline": str(baseline.quantize(Decimal("0.000001"))),
                           "factor": str(rule.factor), "window": rule.window.label, "scope": subject or "all"}
                conditions[subject] = (Condition(active, 1, None, figures),
                                       f"{rule.name}: cost {_money(cost)} in the last {rule.window.label} is over "
                                       f"{rule.factor}x the {rule.baseline_days}-window average {figures['baseline']}")
        elif rule.kind == "forecast":
            limit = rule.threshold
            budget = None
            if rule.budget is not None:
                budget = next((b for b in self.budgets.budgets(project_id) if b.id == rule.budget), None)
                if budget is None or budget.limit is None or budget.per is not None:
                    log.warning("forecast rule %s: budget %s not found, without a cost limit, or split per %s "
                                "(a forecast covers the budget's whole scope)", rule.id, rule.budget,
                                None if budget is None else budget.per)
                    return
                limit = budget.limit
            assert limit is not None
            scope = dict(budget.scope) if budget is not None else dict(rule.filters)
            tz = budget.window.timezone if budget is not None else (rule.window.timezone if rule.window else "UTC")
            found = month_forecast(self.store, project_id, scope, None, "", tz, now, limit)
            projected = Decimal(found["projected"])
            projection = {"projected": found["projected"], "low": found["low"], "high": found["high"],
                          "spent": found["spent"], "limit": str(limit), "month_end": found.get("period_end")}
            conditions[""] = (Condition(projected > limit, 1, found.get("period_start"), projection),
                              f"{rule.name}: month-end forecast {found['projected']} above {limit}")
        for (rid, subject), state in list(states.items()):  # subjects that have gone quiet end their episode
            if rid == rule.id and subject not in conditions and state.state.get("status") == "firing":
                conditions[subject] = (Condition(False), f"{rule.name}: back to normal ({subject or 'all'})")
        for subject, (condition, title) in conditions.items():
            self._transition(project_id, rule.id, rule.name, subject, condition,
                             timedelta(minutes=rule.cooldown_minutes), rule.channels, states, changed, title,
                             rule.severity)

    def evaluate(self) -> None:
        """One pass over every project's window rules and budgets."""
        with self._state_lock:
            self._evaluate_all()

    def _evaluate_all(self) -> None:
        for project in self.store.list_projects():
            states = {(s.rule_id, s.subject): s for s in self.store.get_alert_states(project.id)}
            changed: list[AlertState] = []
            for rule in self.rules(project.id):
                if rule.enabled and rule.kind in ("window_cost", "spike", "anomaly", "forecast"):
                    try:
                        self._evaluate_rule(project.id, rule, states, changed)
                    except CostlineError:
                        log.exception("evaluating alert rule %s of project %s failed", rule.id, project.id)
            for budget in self.budgets.budgets(project.id):
                try:
                    self._evaluate_budget(project.id, budget, states, changed)
                except CostlineError:
                    log.exception("evaluating budget %s of project %s failed", budget.id, project.id)
            self.store.put_alert_states(changed)

    # on ingest ------------------------------------------------------------------------------------------------------
    def checks_on_ingest(self, project_id: str) -> bool:
        """The project has a rule checked on each ingested call: its batches must be written as objects (the
        server then keeps them off the worker processes: server/ingest_workers.py)."""
        return bool(self._ingest_rules(project_id))

    def _ingest_rules(self, project_id: str) -> list[AlertRule]:
        return [r for r in self.rules(project_id) if r.enabled and r.kind in ("request_cost", "unpriced")]

    def _on_ingest(self, project_id: str, protocol: str, decoded: Decoded, result: IngestResult) -> None:
        # a batch with a summary was written from a worker's rows, which the server only does for a project
        # without such rules (``checks_on_ingest``): its observations are empty, and there is nothing to check
        rules = self._ingest_rules(project_id)
        hits = [(rule, hit) for rule in rules for obs in result.observations
                if (hit := self._ingest_hit(rule, obs)) is not None]
        if not hits:  # the usual batch: no store read, no lock
            return
        with self._state_lock:
            states = {(s.rule_id, s.subject): s for s in self.store.get_alert_states(project_id)}
            changed: list[AlertState] = []
            for rule, (subject, figures, title) in hits:
                self._transition(project_id, rule.id, rule.name, subject, Condition(True, 1, None, figures),
                                 timedelta(minutes=rule.cooldown_minutes), rule.channels, states, changed, title,
                                 rule.severity, event_rule=True)
            self.store.put_alert_states(changed)

    def _ingest_hit(self, rule: AlertRule, obs: Observation) -> tuple[str, dict[str, Any], str] | None:
        for key, wanted in rule.filters.items():
            value = obs.metadata.get(key.removeprefix("metadata.")) if key.startswith("metadata.") else \
                (wanted if wanted in obs.tags else None) if key == "tag" else \
                getattr(obs, {"user": "user_id", "session": "session_id"}.get(key, key), None)
            if value != wanted:
                return None
        if rule.kind == "unpriced":
            # a call without usage has a priced model (and may get its usage in an update): not this rule
            if obs.pricing_status != "unpriced" or obs.model is None or obs.pricing_reason == NO_USAGE:
                return None
            figures = {"model": obs.model, "provider": obs.provider, "observation": obs.id,
                       "reason": obs.pricing_reason}
            return f"model={obs.model}", figures, f"{rule.name}: model {obs.model!r} has no price (costs unknown)"
        assert rule.threshold is not None
        if obs.total_cost is None or obs.total_cost <= rule.threshold:
            return None
        subject = f"model={obs.model}"
        figures = {"cost": _money(obs.total_cost), "threshold": _money(rule.threshold), "model": obs.model,
                   "observation": obs.id, "trace": obs.trace_id, "user": obs.user_id}
        return subject, figures, f"{rule.name}: one call cost {_money(obs.total_cost)} (above {rule.threshold})"

    # the loop --------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="costline-alerts", daemon=True)
        self._thread.start()

    def tick(self) -> bool:
        """One periodic pass if this server holds the alert lease (several servers may share a PostgreSQL
        store: one of them evaluates, so each notice is sent once); True when it ran."""
        ttl = timedelta(seconds=max(3 * self.interval_s, 10))
        if not self.store.acquire_lease(LEASE, self.holder, self.clock(), ttl):
            return False
        self.store.purge_reservations(self.clock() - self.reservation_keep)
        self.evaluate()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # the loop must survive a store hiccup; the next pass tries again
                log.exception("alert evaluation failed")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._test_pool is not None:
            self._test_pool.shutdown(wait=False, cancel_futures=True)
        self.dispatcher.close(timeout_s)
