"""Alert routes (docs/api.md, "Alerts"): rules, channels, the delivery history, test sends, and applying a
control document (the YAML file's content: channels, budgets, tiers, rules) in one transaction.

Channel secrets are write-only: reads show ``"secret": "***"``. A channel is saved only if it delivers to public
addresses or hosts the operator allows (control/destinations.py). A test send answers sent/failed per channel and
nothing more (the reason, without the receiver's words, is in the delivery history); it runs on the alert engine's
test-send pool, never on the server's request threads, and a project has at most two at once (429 beyond).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.control.alerts import BusyError
from costline.control.channels import redact_channel, require_channels
from costline.control.check import CheckError
from costline.control.config_file import control_objects, load_control
from costline.control.notify import parse_channel
from costline.core.alerts import parse_rule
from costline.server.app import key_of, state_of
from costline.server.routes.budgets import control_json
from costline.store.base import ControlObject

router = APIRouter()


@router.get("/v1/alerts", summary="List the project's alert rules")
async def list_rules(request: Request) -> JSONResponse:
    found = await run_in_threadpool(state_of(request).store.list_control, "alert", key_of(request).project_id)
    return JSONResponse({"data": [o.spec for o in found]})


@router.post("/v1/alerts", summary="Create or replace an alert rule", status_code=201)
async def create_rule(request: Request) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    rule = parse_rule(await control_json(request), "alert")
    if rule.channels:
        found = await run_in_threadpool(state.store.list_control, "channel", project)
        require_channels([c.id for c in found], rule.channels, "alert.channels")
    now = state.clock()
    await run_in_threadpool(state.store.put_control,
                            ControlObject(project, "alert", rule.id, rule.to_json(), rule.source, now, now))
    state.alerts.changed(project)
    return JSONResponse(rule.to_json(), status_code=201)


@router.get("/v1/alerts/history", summary="Delivered and failed notifications, newest first")
async def history(request: Request) -> JSONResponse:
    rule = request.query_params.get("rule")
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        raise CheckError("limit: expected a whole number from 1 to 1000") from None
    if not 1 <= limit <= 1000:
        raise CheckError("limit: expected a whole number from 1 to 1000")
    found = await run_in_threadpool(lambda: state_of(request).store.list_deliveries(
        key_of(request).project_id, rule_id=rule, limit=limit))
    return JSONResponse({"data": [dict(d.entry) for d in found]})


@router.get("/v1/alerts/{rule_id}", summary="An alert rule and its current state per subject")
async def show_rule(request: Request, rule_id: str) -> JSONResponse:
    store = state_of(request).store
    project = key_of(request).project_id
    found = await run_in_threadpool(store.get_control, project, "alert", rule_id)
    if found is None:
        return JSONResponse({"message": f"no alert rule {rule_id!r} in this project"}, status_code=404)
    states = await run_in_threadpool(store.get_alert_states, project, rule_id)
    return JSONResponse({**found.spec, "states": [{"subject": s.subject, **s.state} for s in states]})


@router.delete("/v1/alerts/{rule_id}", summary="Delete an alert rule")
async def delete_rule(request: Request, rule_id: str) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    deleted = await run_in_threadpool(state.store.delete_control, project, "alert", rule_id)
    state.alerts.changed(project)
    if not deleted:
        return JSONResponse({"message": f"no alert rule {rule_id!r} in this project"}, status_code=404)
    return JSONResponse({"deleted": rule_id})


@router.post("/v1/alerts/{rule_id}/test", summary="Send a test notification through the rule's channels now")
async def test_rule(request: Request, rule_id: str) -> JSONResponse:
    state = state_of(request)
    try:
        deliveries = await asyncio.wrap_future(state.alerts.submit_test(key_of(request).project_id, rule_id))
    except BusyError as exc:
        return JSONResponse({"message": str(exc)}, status_code=429,
                            headers={"Retry-After": str(exc.retry_after_s)})
    except LookupError as exc:
        return JSONResponse({"message": str(exc)}, status_code=404)
    body = [{"channel": d.channel.split("/", 1)[-1], "status": d.status} for d in deliveries]
    return JSONResponse({"deliveries": body}, status_code=200 if all(d.status == "sent" for d in deliveries) else 502)


@router.get("/v1/channels", summary="List notification channels (secrets hidden)")
async def list_channels(request: Request) -> JSONResponse:
    found = await run_in_threadpool(state_of(request).store.list_control, "channel", key_of(request).project_id)
    return JSONResponse({"data": [{"name": o.id, **redact_channel(o.spec)} for o in found]})


@router.put("/v1/channels/{name}", summary="Create or replace a notification channel")
async def put_channel(request: Request, name: str) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    raw = await control_json(request)
    parsed = parse_channel(name, raw, f"channels.{name}")
    await run_in_threadpool(state.alerts.destinations.check_channel, parsed, f"channels.{name}")
    now = state.clock()
    channel = ControlObject(project, "channel", name, dict(raw), "api", now, now)
    await run_in_threadpool(state.store.put_control, channel)
    state.alerts.changed(project)
    return JSONResponse({"name": name, **redact_channel(raw)})


def _channel_users(store: Any, project: str, name: str) -> list[str]:
    """The alert rules and budgets of the project that notify the channel ``name``."""
    users = [f"alert rule {o.id!r}" for o in store.list_control("alert", project)
             if name in (o.spec.get("channels") or [])]
    users += [f"budget {o.id!r}" for o in store.list_control("budget", project) if name in (o.spec.get("notify") or [])]
    return users


@router.delete("/v1/channels/{name}", summary="Delete a notification channel")
async def delete_channel(request: Request, name: str) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    users = await run_in_threadpool(_channel_users, state.store, project, name)
    if users:  # deleting it would leave rules and budgets that never notify
        return JSONResponse({"message": f"channel {name!r} is used by {', '.join(users)}; change or delete "
                                        "them first"}, status_code=409)
    deleted = await run_in_threadpool(state.store.delete_control, project, "channel", name)
    state.alerts.changed(project)
    if not deleted:
        return JSONResponse({"message": f"no channel {name!r} in this project"}, status_code=404)
    return JSONResponse({"deleted": name})


@router.post("/v1/control/apply", summary="Apply a control document (the YAML file's content as JSON)")
async def apply(request: Request) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    raw = await control_json(request)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("document"), Mapping):
        raise CheckError('document: expected {"document": {...the file...}, "source": "file:costline.yaml", '
                         '"environment": "prod"}')
    source = raw.get("source", "api:apply")
    environment = raw.get("environment") or None
    if not isinstance(source, str) or not source or (environment is not None and not isinstance(environment, str)):
        raise CheckError("source/environment: expected strings")
    document = load_control(raw["document"], environment=environment, source=source)
    await run_in_threadpool(state.alerts.destinations.check_specs, document.channels)
    objects = control_objects(document, project, state.clock())
    removed = await run_in_threadpool(state.store.replace_control, project, source, objects)
    state.alerts.changed(project)
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.kind] = counts.get(obj.kind, 0) + 1
    return JSONResponse({"applied": counts, "removed": removed, "source": source})
