"""Budget routes (docs/api.md, "Budgets"): CRUD, ``POST /v1/budgets/check``, settling and cancelling
reservations, user tiers, where a budget stands, and the month-end forecast.

The routes decode and validate, then call ``control.budgets.BudgetService`` in the thread pool; money is exact
decimal strings. A check answers 200 whatever the decision (``decision``: allow, deny, downgrade): a denied
call is an answer, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.control.budgets import BudgetNotFoundError, BudgetService, budget_object, usage_summary
from costline.control.channels import require_channels
from costline.control.check import CheckError, parse_check
from costline.control.forecasts import month_forecast
from costline.core.budgets import SCOPE_KEYS, parse_budget, scope_key
from costline.core.money import to_decimal
from costline.server.app import key_of, state_of
from costline.server.body import parse_json, read_body

router = APIRouter()
#: largest budget, rule, channel, check or control document accepted (bytes)
MAX_CONTROL_BODY = 1024 * 1024


def _service(request: Request) -> BudgetService:
    service: BudgetService = state_of(request).budgets
    return service


async def control_json(request: Request) -> Any:
    """The JSON body of a control route (budgets, checks, alerts, channels), at most ``MAX_CONTROL_BODY``."""
    return parse_json(await read_body(request, MAX_CONTROL_BODY))



def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=404)


@router.get("/v1/budgets", summary="List the project's budgets")
async def list_budgets(request: Request) -> JSONResponse:
    project = key_of(request).project_id
    found = await run_in_threadpool(state_of(request).store.list_control, "budget", project)
    return JSONResponse({"data": [o.spec for o in found]})


@router.post("/v1/budgets", summary="Create or replace a budget", status_code=201)
async def create_budget(request: Request) -> JSONResponse:
    state = state_of(request)
    project = key_of(request).project_id
    raw = await control_json(request)
    budget = parse_budget(raw, "budget")
    if budget.notify:  # a channel that does not exist would be stored and never notify
        found = await run_in_threadpool(state.store.list_control, "channel", project)
        require_channels([c.id for c in found], budget.notify, "budget.notify")
    now = state.clock()
    source = raw.get("source", "api") if isinstance(raw, Mapping) else "api"
    await run_in_threadpool(state.store.put_control, budget_object(project, budget, str(source), now))
    _service(request).changed(project)
    return JSONResponse(budget.to_json(), status_code=201)


@router.get("/v1/budgets/{budget_id}", summary="A budget and where it stands")
async def show_budget(request: Request, budget_id: str) -> JSONResponse:
    project = key_of(request).project_id
    service = _service(request)
    subject = request.query_params.get("subject", request.query_params.get("user", ""))
    try:
        budget = await run_in_threadpool(service.get, project, budget_id)
    except BudgetNotFoundError as exc:
        return _not_found(str(exc))
    body: dict[str, Any] = budget.to_json()
    if budget.per is None or subject:
        status = await run_in_threadpool(service.standing, project, budget, subject if budget.per else "")
        body["status"] = status.to_json()
        body["usage"] = usage_summary([status])
        if budget.window.kind == "month":
            body["forecast"] = await run_in_threadpool(month_forecast, state_of(request).store, project, budget.scope,
                                                       budget.per, subject, budget.window.timezone,
                                                       state_of(request).clock(), budget.limit)
    return JSONResponse(body)


@router.delete("/v1/budgets/{budget_id}", summary="Delete a budget")
async def delete_budget(request: Request, budget_id: str) -> JSONResponse:
    project = key_of(request).project_id
    deleted = await run_in_threadpool(state_of(request).store.delete_control, project, "budget", budget_id)
    _service(request).changed(project)
    if not deleted:
        return _not_found(f"no budget {budget_id!r} in this project")
    return JSONResponse({"deleted": budget_id})


@router.post("/v1/budgets/check", summary="Check the budgets before a model call and reserve its estimate")
async def check(request: Request) -> JSONResponse:
    project = key_of(request).project_id
    parsed = parse_check(await control_json(request))
    result = await run_in_threadpool(_service(request).check, project, parsed)
    return JSONResponse(result.to_json())


@router.post("/v1/budgets/reservations/{reservation_id}/settle", summary="Record the call a reservation held")
async def settle(request: Request, reservation_id: str) -> JSONResponse:
    project = key_of(request).project_id
    raw = await control_json(request)
    if not isinstance(raw, Mapping):
        raise CheckError('body: expected {"cost": "0.0123"} or {"usage": {"input_tokens": ..., ...}}')
    cost = None if raw.get("cost") is None else to_decimal(raw["cost"], field="cost")
    if cost is not None and cost < 0:
        raise CheckError("cost: must not be negative")
    usage = raw.get("usage")
    if usage is not None and not isinstance(usage, Mapping):
        raise CheckError("usage: expected an object of unit → quantity")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model or len(model) > 200):
        raise CheckError("model: expected a model name")
    try:
        settled = await run_in_threadpool(lambda: _service(request).settle(project, reservation_id, cost=cost,
                                                                           usage=usage, model=model))
    except BudgetNotFoundError as exc:
        return _not_found(str(exc))
    obs = settled.result.observations[0]
    return JSONResponse({"id": obs.id, "model": obs.model, "status": obs.pricing_status,
                         "cost": None if obs.total_cost is None else str(obs.total_cost), "currency": obs.currency,
                         "hold_expired": settled.hold_expired, "expires_at": settled.expires_at.isoformat()})


@router.delete("/v1/budgets/reservations/{reservation_id}", summary="Cancel a reservation (the call was not made)")
async def cancel(request: Request, reservation_id: str) -> JSONResponse:
    project = key_of(request).project_id
    if not await run_in_threadpool(_service(request).cancel, project, reservation_id):
        return _not_found(f"no live reservation {reservation_id!r}")
    return JSONResponse({"cancelled": reservation_id})


@router.put("/v1/users/{user_id}/tier", summary="Put a user on a named tier (or take them off with null)")
async def set_tier(request: Request, user_id: str) -> JSONResponse:
    state = state_of(request)
    raw = await control_json(request)
    if not isinstance(raw, Mapping) or "tier" not in raw:
        raise CheckError('tier: expected {"tier": "free"} or {"tier": null}')
    tier = raw["tier"]
    if tier is not None and (not isinstance(tier, str) or not tier or len(tier) > 200):
        raise CheckError('tier: expected {"tier": "free"} or {"tier": null}')
    if len(user_id) > 1000:
        raise CheckError("user_id: longer than 1,000 characters")
    await run_in_threadpool(state.store.set_user_tier, key_of(request).project_id, user_id, tier, state.clock())
    return JSONResponse({"user": user_id, "tier": tier})


@router.get("/v1/forecast", summary="Month-end cost projection for a scope")
async def forecast(request: Request) -> JSONResponse:
    state = state_of(request)
    params = dict(request.query_params)
    tz_name = params.pop("timezone", "UTC")
    limit = params.pop("limit", None)
    scope: dict[str, str] = {}
    for key, value in params.items():
        if key not in SCOPE_KEYS and not key.startswith("metadata."):
            raise CheckError(f"{key}: unknown parameter; use timezone, limit, {', '.join(SCOPE_KEYS)} or "
                             "metadata.<key>")
        scope[scope_key(key, key)] = value  # the one metadata key rule (core.query.metadata_key)
    budget_limit = None if limit is None else to_decimal(limit, field="limit")
    body = await run_in_threadpool(month_forecast, state.store, key_of(request).project_id, scope, None, "", tz_name,
                                   state.clock(), budget_limit)
    return JSONResponse(body)
