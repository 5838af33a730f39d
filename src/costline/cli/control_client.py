"""How ``costline budgets|alerts|channels|apply`` reach budgets, rules and channels: one small protocol, two ways.

While a ``costline serve`` runs for the data directory and store (``server.json``, server/local_admin.py), the
commands must go through it: it owns a DuckDB file, and it caches budgets and rules that a write behind its back
would leave stale. ``HttpControl`` then calls the HTTP API with the server's admin token. Otherwise
``DirectControl`` opens the store and does what the routes do, through the same library calls
(``parse_budget``, ``parse_rule``, ``load_control``, ``BudgetService``, ``AlertEngine``), so both ways validate
alike and answer the same JSON shapes. Errors: ``NotFoundError`` (a LookupError) for a missing object, a
ValueError subclass of ``CostlineError`` for input the API refuses.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from costline.cli.remote import ServerError, call
from costline.core.resolve import PriceBook
from costline.errors import CostlineError
from costline.server.local_admin import RunningServer
from costline.store.base import Store, redact_url

if TYPE_CHECKING:
    from costline.control.budgets import BudgetService

#: the kind of a control object → its collection in the HTTP API
ROUTES = {"budget": "/v1/budgets", "alert": "/v1/alerts", "channel": "/v1/channels"}
WHAT = {"budget": "budget", "alert": "alert rule", "channel": "channel"}


class NotFoundError(CostlineError, LookupError):
    """No such budget, rule, channel or project."""


class RejectedError(CostlineError, ValueError):
    """The server refused the input (400); the message names the field."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A stored object as listed: its spec (channel secrets shown as ``***``) and its source when known."""

    kind: str
    id: str
    spec: Mapping[str, Any]
    source: str | None


class ControlClient(Protocol):
    #: where the commands' data lives, for messages ("the server at http://...", "duckdb:///...")
    where: str

    def list_objects(self, kind: str) -> list[Listed]: ...

    def save(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a budget or alert rule from its JSON shape; the validated spec."""
        ...

    def show_budget(self, budget_id: str, subject: str) -> dict[str, Any]: ...

    def delete(self, kind: str, object_id: str) -> None: ...

    def history(self, rule_id: str | None, limit: int) -> list[dict[str, Any]]: ...

    def test_rule(self, rule_id: str) -> list[dict[str, Any]]: ...

    def apply(self, document: Any, environment: str | None, source: str) -> dict[str, Any]:
        """Apply a control document (variables already filled, see ``config_file.escape_variables``)."""
        ...

    def close(self) -> None: ...


# over HTTP ------------------------------------------------------------------------------------------------------
class HttpControl:
    def __init__(self, server: RunningServer, project_id: str | None) -> None:
        self.server = server
        self.project_id = project_id
        self.where = f"the server at {server.url}"

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
              accept: tuple[int, ...] = ()) -> Any:
        try:
            return call(self.server, method, path, body=body, params=params, project_id=self.project_id)
        except ServerError as exc:
            if exc.status in accept and exc.answer is not None:
                return exc.answer
            if exc.status == 404:
                raise NotFoundError(str(exc)) from None
            if exc.status in (400, 413, 422):
                raise RejectedError(str(exc)) from None
            raise CostlineError(f"{self.where} answered {exc.status}: {exc}") from None

    @staticmethod
    def _quote(object_id: str) -> str:
        return urllib.parse.quote(object_id, safe="")

    def list_objects(self, kind: str) -> list[Listed]:
        found = []
        for item in self._call("GET", ROUTES[kind])["data"]:
            if kind == "channel":
                spec = {k: v for k, v in item.items() if k not in ("name", "source")}
                found.append(Listed(kind, item["name"], spec, item.get("source")))
            else:
                found.append(Listed(kind, item["id"], item, item.get("source")))
        return found

    def save(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        saved: dict[str, Any] = self._call("POST", ROUTES[kind], dict(spec))
        return saved

    def show_budget(self, budget_id: str, subject: str) -> dict[str, Any]:
        shown: dict[str, Any] = self._call("GET", f"/v1/budgets/{self._quote(budget_id)}",
                                           params={"subject": subject} if subject else None)
        return shown

    def delete(self, kind: str, object_id: str) -> None:
        self._call("DELETE", f"{ROUTES[kind]}/{self._quote(object_id)}")

    def history(self, rule_id: str | None, limit: int) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"rule": rule_id} if rule_id else {})}
        found: list[dict[str, Any]] = self._call("GET", "/v1/alerts/history", params=params)["data"]
        return found

    def test_rule(self, rule_id: str) -> list[dict[str, Any]]:
        answer = self._call("POST", f"/v1/alerts/{self._quote(rule_id)}/test", {}, accept=(502,))
        found: list[dict[str, Any]] = answer["deliveries"]
        return found

    def apply(self, document: Any, environment: str | None, source: str) -> dict[str, Any]:
        body = {"document": document, "source": source, "environment": environment}
        applied: dict[str, Any] = self._call("POST", "/v1/control/apply", body)
        return applied

    def close(self) -> None:
        pass


# through the library ---------------------------------------------------------------------------------------------
class DirectControl:
    """The same operations on an open store (no server runs for it): what the routes do, without HTTP."""

    def __init__(self, store: Store, project_id: str | None, book: Callable[[], PriceBook],
                 allow_hosts: tuple[str, ...] = ()) -> None:
        self.store = store
        self.where = redact_url(store.url)
        self._book = book
        self.allow_hosts = allow_hosts  # COSTLINE_CHANNEL_ALLOW_HOSTS, as the server reads it
        self.project_id = self._project(project_id)

    def _project(self, wanted: str | None) -> str:
        projects = self.store.list_projects()
        if wanted is not None:
            if not any(p.id == wanted for p in projects):
                raise NotFoundError(f"no project {wanted!r} in {self.where} (projects: "
                               f"{', '.join(p.id for p in projects) or 'none'})")
            return wanted
        if not projects:
            raise NotFoundError(f"no project in {self.where}: start `costline serve` once (it creates the default "
                           "project) or run `costline projects create NAME`")
        if len(projects) > 1:
            raise RejectedError(f"{self.where} has several projects ({', '.join(p.id for p in projects)}): name one "
                           "with --project")
        return projects[0].id

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def list_objects(self, kind: str) -> list[Listed]:
        found = self.store.list_control(kind, self.project_id)
        if kind == "channel":  # secrets hidden as GET /v1/channels hides them
            from costline.control.channels import redact_channel

            return [Listed(kind, o.id, redact_channel(o.spec), o.source) for o in found]
        return [Listed(kind, o.id, dict(o.spec), o.source) for o in found]

    def save(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        from costline.control.budgets import budget_object
        from costline.core.alerts import parse_rule
        from costline.core.budgets import parse_budget
        from costline.store.base import ControlObject

        now = self._now()
        if kind == "budget":
            budget = parse_budget(spec, "budget")
            self.store.put_control(budget_object(self.project_id, budget, str(spec.get("source", "api")), now))
            return budget.to_json()
        rule = parse_rule(spec, "alert")
        if rule.channels:
            from costline.control.channels import require_channels

            known = [c.id for c in self.store.list_control("channel", self.project_id)]
            require_channels(known, rule.channels, "alert.channels")
        self.store.put_control(ControlObject(self.project_id, "alert", rule.id, rule.to_json(), rule.source, now, now))
        return rule.to_json()

    def _budgets(self) -> BudgetService:
        from costline.control.budgets import BudgetService
        from costline.ingest.pipeline import Pipeline

        return BudgetService(self.store, Pipeline(self.store, self._book(), self._now), self._now)

    def show_budget(self, budget_id: str, subject: str) -> dict[str, Any]:
        """What ``GET /v1/budgets/{id}`` answers (server/routes/budgets.py ``show_budget``)."""
        from costline.control.budgets import usage_summary
        from costline.control.forecasts import month_forecast

        service = self._budgets()
        try:
            budget = service.get(self.project_id, budget_id)
        except LookupError as exc:  # no such budget
            raise NotFoundError(str(exc)) from None
        body: dict[str, Any] = budget.to_json()
        if budget.per is None or subject:
            status = service.standing(self.project_id, budget, subject if budget.per else "")
            body["status"] = status.to_json()
            body["usage"] = usage_summary([status])
            if budget.window.kind == "month":
                body["forecast"] = month_forecast(self.store, self.project_id, budget.scope, budget.per, subject,
                                                  budget.window.timezone, self._now(), budget.limit)
        return body

    def delete(self, kind: str, object_id: str) -> None:
        if not self.store.delete_control(self.project_id, kind, object_id):
            raise NotFoundError(f"no {WHAT[kind]} {object_id!r} in this project")

    def history(self, rule_id: str | None, limit: int) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise RejectedError("limit: expected a whole number from 1 to 1000")
        return [dict(d.entry) for d in self.store.list_deliveries(self.project_id, rule_id=rule_id, limit=limit)]

    def test_rule(self, rule_id: str) -> list[dict[str, Any]]:
        from costline.control.alerts import AlertEngine
        from costline.control.destinations import DestinationPolicy

        engine = AlertEngine(self.store, self._budgets(), self._now, destinations=DestinationPolicy(self.allow_hosts))
        try:
            deliveries = engine.test(self.project_id, rule_id)
        except LookupError as exc:
            raise NotFoundError(str(exc)) from None
        finally:
            engine.stop()
        return [{"channel": d.channel.split("/", 1)[-1], "status": d.status} for d in deliveries]

    def apply(self, document: Any, environment: str | None, source: str) -> dict[str, Any]:
        """What ``POST /v1/control/apply`` does (server/routes/alerts.py ``apply``)."""
        from costline.control.config_file import control_objects, load_control
        from costline.control.destinations import DestinationPolicy

        loaded = load_control(document, environment=environment, source=source)
        DestinationPolicy(self.allow_hosts).check_specs(loaded.channels)
        objects = control_objects(loaded, self.project_id, self._now())
        removed = self.store.replace_control(self.project_id, source, objects)
        counts: dict[str, int] = {}
        for obj in objects:
            counts[obj.kind] = counts.get(obj.kind, 0) + 1
        return {"applied": counts, "removed": removed, "source": source}

    def close(self) -> None:
        self.store.close()
