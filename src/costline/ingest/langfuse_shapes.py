"""Langfuse REST shapes (pure): the models API mapped onto costline prices, and stored rows as Langfuse JSON.

**Models API** (wire-formats.md §D.4). ``model_body_to_entry(body, model_id=...)`` validates a
``POST /api/public/models`` or ``PUT /models/{id}`` body and returns what the route stores as
``StoredPrice.entry``: ``{"entry": <costline price-file entry>, "langfuse": <the body, normalised>}``.
``entry`` has no ``id`` (``ingest.pipeline.stored_price_records`` compiles ``entry["entry"]`` and names the
record ``project:<project>:<model id>``). ``langfuse`` is the body with defaults filled in (``unit``,
``isDefault``, ``caseSensitive``), flat ``inputPrice`` / ``outputPrice`` / ``totalPrice`` turned into the
default tier "Standard" (as Langfuse does), ``startDate`` as UTC ISO, prices and thresholds as ``Decimal``
(the store must keep them exact). ``entry_to_model`` rebuilds the Langfuse ``Model`` from it, so a model reads
back as written (tier names, priorities, tokenizer, every usage key); a stored entry without a ``langfuse``
part is described by its base rates only.

Mapping: ``matchPattern`` is a regex searched in the model name; a leading ``(?i)`` becomes
``case_sensitive: false``. ``startDate`` → ``valid_from``. Prices per unit → rates per 1M tokens or
characters, exactly (``per_unit_to_rate``); usage keys → units as the Langfuse catalog importer maps them
(``USAGE_KEYS``; a costline unit name is accepted as itself); ``total`` alone prices input and output alike.
The default tier gives ``rates``; the others, by priority, become ``tiers`` with usage conditions
(``usage_condition_units``) or attribute conditions (the decoder fills ``attributes`` from
``modelParameters`` and ``metadata``). What costline cannot represent is a 400 naming the field, never a
silent drop: a unit other than TOKENS/CHARACTERS, a usage key with no unit, aliases priced differently,
``total`` next to ``input``/``output``, a usage pattern with no inclusive equivalent.

**Money is ``Decimal`` in every shape** (costs, prices, latencies). Langfuse clients expect JSON numbers and
a float would round them: serialise with ``dumps_json``, which writes each Decimal's exact digits as a JSON
number (``0.0000025``); ``json.dumps`` refuses Decimals, on purpose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.catalog.imported import per_unit_to_rate
from costline.catalog.langfuse import USAGE_KEYS, usage_condition_units
from costline.catalog.patterns import PatternError, compile_pattern
from costline.catalog.user_file import compile_price_data
from costline.core.events import Observation, Score, Trace
from costline.core.money import MONEY_CONTEXT, decimal_str, to_decimal
from costline.core.units import UNITS
from costline.errors import CostlineError
from costline.ingest.batch import IngestError
from costline.store.base import StoredPrice

__all__ = ["dumps_json", "entry_to_model", "model_body_to_entry", "observation_to_langfuse", "score_to_langfuse",
           "trace_to_langfuse"]

_OPERATORS: Final = ("gt", "gte", "lt", "lte", "eq", "neq")
_SOURCES: Final = ("model_parameters", "metadata")
_TOKENIZERS: Final = ("openai", "claude")
_FLAT: Final = {"inputPrice": "input", "outputPrice": "output", "totalPrice": "total"}
_CHARACTER_KEYS: Final = {"input": "input_characters", "output": "output_characters"}
#: costline unit → the Langfuse usage key it is written back as (the importer's preferred alias)
_PREFERRED: Final = {**{u: k for k, u in list(USAGE_KEYS.items())[::-1]}, "input_characters": "input",
                     "output_characters": "output"}
#: costline usage/cost unit → the DISJOINT Langfuse bucket it is reported under in traces
_BUCKETS: Final = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "input_cached_tokens",
                   "cache_write_tokens": "input_cache_creation", "cache_write_5m_tokens": "input_cache_creation_5m",
                   "cache_write_1h_tokens": "input_cache_creation_1h",
                   "output_reasoning_tokens": "output_reasoning_tokens", "input_characters": "input",
                   "output_characters": "output"}


# models API: body → stored entry -------------------------------------------------------------------------


def model_body_to_entry(body: Any, *, model_id: str) -> dict[str, Any]:
    """Validate a Langfuse model body; return ``{"entry": price-file entry, "langfuse": normalised body}``.

    Raises ``IngestError`` (400) naming the field when the body is invalid or cannot be priced by costline.
    """
    model = _normalise(body)
    entry = _entry(model)
    try:
        compile_price_data({"prices": [entry]}, f"model {model_id}")
    except CostlineError as exc:
        raise IngestError(f"pricingTiers: the prices do not compile: {exc}") from None
    return {"entry": entry, "langfuse": model}


def _normalise(body: Any) -> dict[str, Any]:
    _require(isinstance(body, Mapping), f"(body): expected a JSON object, got {type(body).__name__}")
    name = _required_text(body, "modelName")
    pattern = _required_text(body, "matchPattern")
    _regex(pattern.removeprefix("(?i)"), "matchPattern", case_sensitive=not pattern.startswith("(?i)"))
    unit = body.get("unit") or "TOKENS"
    _require(unit in ("TOKENS", "CHARACTERS"), f"unit: costline prices TOKENS and CHARACTERS models only, got {unit!r}")
    tokenizer = body.get("tokenizerId")
    _require(tokenizer is None or tokenizer in _TOKENIZERS,
             f"tokenizerId: expected one of {', '.join(_TOKENIZERS)} or null, got {tokenizer!r}")
    flat = {key: _amount(body[key], key) for key in _FLAT if body.get(key) is not None}
    raw_tiers = body.get("pricingTiers")
    _require(not (flat and raw_tiers), "pricingTiers: cannot be combined with the flat inputPrice/outputPrice/"
             "totalPrice; put those prices in the default tier")
    _require(not ("totalPrice" in flat and len(flat) > 1),
             "totalPrice: cannot be set together with inputPrice or outputPrice")
    if flat:
        tiers = [{"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
                  "prices": {_FLAT[key]: value for key, value in flat.items()}}]
    elif raw_tiers:
        tiers = _tiers(raw_tiers)
    else:
        raise IngestError("pricingTiers: required (or the flat inputPrice / outputPrice / totalPrice)")
    return {"modelName": name, "matchPattern": pattern, "startDate": _start_date(body.get("startDate")),
            "unit": unit, "tokenizerId": tokenizer, "tokenizerConfig": body.get("tokenizerConfig"),
            "pricingTiers": tiers}


def _tiers(raw: Any) -> list[dict[str, Any]]:
    _require(isinstance(raw, list), f"pricingTiers: expected a list of tiers, got {type(raw).__name__}")
    tiers: list[dict[str, Any]] = []
    for i, tier in enumerate(raw):
        where = f"pricingTiers[{i}]"
        _require(isinstance(tier, Mapping), f"{where}: expected an object")
        name = _required_text(tier, "name", where)
        _require(all(t["name"] != name for t in tiers), f"{where}.name: duplicate tier name {name!r}")
        priority, is_default = tier.get("priority"), tier.get("isDefault", False)
        _require(type(priority) is int, f"{where}.priority: expected an integer, got {priority!r}")
        _require(all(t["priority"] != priority for t in tiers), f"{where}.priority: duplicate priority {priority}")
        _require(isinstance(is_default, bool), f"{where}.isDefault: expected true or false, got {is_default!r}")
        conditions, prices = tier.get("conditions") or [], tier.get("prices")
        _require(isinstance(conditions, list), f"{where}.conditions: expected a list")
        _require(isinstance(prices, Mapping) and bool(prices), f"{where}.prices: expected at least one price")
        _require(not is_default or priority == 0, f"{where}.priority: the default tier must have priority 0")
        _require(not (is_default and conditions), f"{where}.conditions: the default tier must have no conditions")
        _require(is_default or bool(conditions), f"{where}.conditions: a non-default tier needs a condition")
        tiers.append({
            "name": name, "isDefault": is_default, "priority": priority,
            "conditions": [_condition(c, f"{where}.conditions[{j}]") for j, c in enumerate(conditions)],
            "prices": {str(k): _amount(v, f"{where}.prices.{k}") for k, v in prices.items()},
        })
    defaults = sum(t["isDefault"] for t in tiers)
    _require(defaults == 1, "pricingTiers: expected exactly one default tier (isDefault: true, priority 0, "
             f"no conditions), found {defaults}")
    return tiers


def _condition(raw: Any, where: str) -> dict[str, Any]:
    _require(isinstance(raw, Mapping), f"{where}: expected an object")
    operator = raw.get("operator", "in" if "key" in raw else None)
    if "usageDetailPattern" in raw:
        pattern = _required_text(raw, "usageDetailPattern", where)
        case_sensitive = raw.get("caseSensitive", False)
        _require(isinstance(case_sensitive, bool), f"{where}.caseSensitive: expected true or false")
        _regex(pattern, f"{where}.usageDetailPattern", case_sensitive=case_sensitive)
        _require(operator in _OPERATORS, f"{where}.operator: expected one of {', '.join(_OPERATORS)}, got {operator!r}")
        return {"usageDetailPattern": pattern, "operator": operator,
                "value": _amount(raw.get("value"), f"{where}.value"), "caseSensitive": case_sensitive}
    if "key" in raw:
        source, values = raw.get("source"), raw.get("values")
        _require(source in _SOURCES, f"{where}.source: expected one of {', '.join(_SOURCES)}, got {source!r}")
        key = _required_text(raw, "key", where)
        _require(operator == "in", f"{where}.operator: attribute conditions take 'in', got {operator!r}")
        _require(isinstance(values, list) and bool(values) and all(isinstance(v, str | int) for v in values),
                 f"{where}.values: expected a non-empty list of strings")
        shown = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        return {"source": source, "key": key, "operator": "in", "values": shown}
    raise IngestError(f"{where}: expected a usage condition (usageDetailPattern, operator, value) or an attribute "
                      "condition (source, key, values)")


def _entry(model: Mapping[str, Any]) -> dict[str, Any]:
    pattern: str = model["matchPattern"]
    case_sensitive = not pattern.startswith("(?i)")
    entry: dict[str, Any] = {"model": model["modelName"],
                             "match": {"regex": pattern.removeprefix("(?i)"), "case_sensitive": case_sensitive}}
    if model["startDate"]:
        entry["valid_from"] = model["startDate"]
    variants = []
    for i, tier in sorted(enumerate(model["pricingTiers"]), key=lambda it: int(it[1]["priority"])):
        where = f"pricingTiers[{i}]"
        keys = _key_units(tier["prices"], model["unit"], where)
        rates = _rates(tier["prices"], keys, model["unit"], where)
        if tier["isDefault"]:
            entry["rates"] = rates
        else:
            when = [_when(c, keys, f"{where}.conditions[{j}]") for j, c in enumerate(tier["conditions"])]
            variants.append({"name": tier["name"], "when": when, "rates": rates})
    if variants:
        entry["tiers"] = variants
    return entry


def _key_units(prices: Mapping[str, Any], unit: str, where: str) -> dict[str, str]:
    """Each priced usage key (but ``total``) → its costline unit."""
    known = _CHARACTER_KEYS if unit == "CHARACTERS" else USAGE_KEYS
    keys: dict[str, str] = {}
    for key in prices:
        target = known.get(key) or (key if key in UNITS else None)
        if target is None and key != "total":
            raise IngestError(
                f"{where}.prices.{key}: usage type {key!r} has no costline unit; use input, output, "
                "input_cached_tokens, input_cache_creation, output_reasoning_tokens, another key of the Langfuse "
                "price list, or a costline unit name (`costline prices units`)"
                if unit == "TOKENS" else f"{where}.prices.{key}: a CHARACTERS model prices input and output only"
            )
        if target is not None:
            keys[key] = target
    return keys


def _rates(prices: Mapping[str, Decimal], keys: Mapping[str, str], unit: str, where: str) -> dict[str, Decimal]:
    rates: dict[str, Decimal] = {}
    chosen: dict[str, str] = {}
    for key, target in keys.items():
        rate = per_unit_to_rate(prices[key], target)
        if rates.get(target, rate) != rate:
            raise IngestError(f"{where}.prices.{key}: prices {target} at {prices[key]} but {chosen[target]} prices "
                              f"it at {prices[chosen[target]]}; costline has one rate per unit")
        rates[target] = rate
        chosen.setdefault(target, key)
    if "total" in prices:
        roots = ("input_characters", "output_characters") if unit == "CHARACTERS" else ("input_tokens", "output_tokens")
        _require(all(root not in rates for root in roots), f"{where}.prices.total: a total price next to input/"
                 "output prices would count those units twice; price input and output instead")
        for root in roots:
            rates[root] = per_unit_to_rate(prices["total"], root)
    return rates


def _when(condition: Mapping[str, Any], keys: Mapping[str, str], where: str) -> dict[str, Any]:
    if "key" in condition:
        return {"attribute": {"key": condition["key"], "values": list(condition["values"])}}
    try:
        units = usage_condition_units(condition["usageDetailPattern"], case_sensitive=condition["caseSensitive"],
                                      usage_keys=list(keys), keys=keys)
    except CostlineError as exc:
        raise IngestError(f"{where}.usageDetailPattern: {exc}") from None
    return {"usage": {"units": list(units), "op": condition["operator"], "value": condition["value"]}}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise IngestError(message)


def _required_text(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    value = obj.get(key)
    field = f"{where}.{key}" if where else key
    _require(value is not None and value != "", f"{field}: required")
    if not isinstance(value, str):
        raise IngestError(f"{field}: expected a string, got {type(value).__name__}")
    return value


def _regex(pattern: str, field: str, *, case_sensitive: bool) -> None:
    """Refuses a pattern RE2 cannot compile (``catalog/patterns.py``), naming the field."""
    try:
        compile_pattern(pattern, case_sensitive=case_sensitive, field=field)
    except PatternError as exc:
        raise IngestError(str(exc)) from None


def _amount(value: Any, field: str) -> Decimal:
    _require(value is not None, f"{field}: required")
    try:
        number = to_decimal(value, field=field)
    except CostlineError as exc:
        raise IngestError(str(exc)) from None
    _require(number >= 0, f"{field}: must not be negative, got {value}")
    return number


def _start_date(value: Any) -> str | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        raise IngestError(f"startDate: expected an ISO 8601 date or date-time, got {value!r}")
    return _iso(when.replace(tzinfo=UTC) if when.tzinfo is None else when)


# models API: stored entry → Langfuse Model -----------------------------------------------------------------


def entry_to_model(stored: StoredPrice) -> dict[str, Any]:
    """The Langfuse ``Model`` JSON of a stored price (prices as ``Decimal``: serialise with ``dumps_json``)."""
    data = stored.entry
    raw = data.get("langfuse")
    model = raw if isinstance(raw, Mapping) else _model_from_entry(data.get("entry", data))
    tiers = sorted(model["pricingTiers"], key=lambda t: int(t["priority"]))
    default = next((t for t in tiers if t.get("isDefault")), tiers[0])
    prices = {str(k): to_decimal(v) for k, v in default["prices"].items()}
    return {
        "id": stored.id,
        "modelName": model["modelName"], "matchPattern": model["matchPattern"], "startDate": model.get("startDate"),
        "unit": model.get("unit") or "TOKENS", "inputPrice": prices.get("input"),
        "outputPrice": prices.get("output"), "totalPrice": prices.get("total"),
        "prices": {key: {"price": value} for key, value in prices.items()},
        "pricingTiers": [_tier_out(stored.id, t) for t in tiers],
        "tokenizerId": model.get("tokenizerId"), "tokenizerConfig": model.get("tokenizerConfig"),
        "isLangfuseManaged": False, "createdAt": _iso(stored.created_at), "updatedAt": _iso(stored.updated_at),
    }


def _tier_out(model_id: str, tier: Mapping[str, Any]) -> dict[str, Any]:
    conditions = [
        {**c, "value": to_decimal(c["value"])} if "usageDetailPattern" in c else dict(c) for c in tier["conditions"]
    ]
    suffix = "default" if tier.get("isDefault") else str(tier["priority"])
    return {"id": f"{model_id}_tier_{suffix}", "name": tier["name"], "isDefault": bool(tier.get("isDefault")),
            "priority": int(tier["priority"]), "conditions": conditions,
            "prices": {str(k): to_decimal(v) for k, v in tier["prices"].items()}}


def _model_from_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A plain price-file entry as a Langfuse model: its base rates as the default tier (tiers not described)."""
    rates = entry.get("rates") or {"input_tokens": 0, "output_tokens": 0}
    prices = {_PREFERRED.get(u, u): MONEY_CONTEXT.divide(to_decimal(r), Decimal(UNITS[u].per))
              for u, r in rates.items() if u in UNITS}
    match = entry.get("match") or {"exact": entry["model"]}
    pattern = match.get("regex") or (f"^{re.escape(match['prefix'])}" if "prefix" in match
                                     else f"^{re.escape(match['exact'])}$")
    valid_from = entry.get("valid_from")
    return {"modelName": entry["model"], "matchPattern": pattern if match.get("case_sensitive") else f"(?i){pattern}",
            "startDate": _start_date(str(valid_from)) if valid_from else None,
            "unit": "CHARACTERS" if all(u.endswith("_characters") for u in rates) else "TOKENS",
            "tokenizerId": None, "tokenizerConfig": None, "pricingTiers": [
                {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [], "prices": prices}]}


# traces ----------------------------------------------------------------------------------------------------


def trace_to_langfuse(
    trace: Trace | None,
    trace_id: str,
    observations: Sequence[Observation],
    scores: Sequence[Score] = (),
    *,
    project_id: str | None = None,
) -> dict[str, Any]:
    """``GET /api/public/traces/{id}``: ``TraceWithFullDetails`` (§D.5). ``totalCost`` = Σ ``calculatedTotalCost``
    (unpriced observations add nothing); ``latency`` = last end − first start, in seconds. Without a trace row the
    trace fields come from the observations; with neither, ``LookupError`` (the route answers 404 first)."""
    obs = sorted(observations, key=lambda o: (o.start_time, o.id))
    if trace is None and not obs:
        raise LookupError(f"trace {trace_id!r} has neither a trace row nor observations")
    project = project_id or (trace.project_id if trace is not None else obs[0].project_id)
    root = next((o for o in obs if o.parent_id is None), obs[0]) if obs else None

    def pick(name: str) -> Any:
        value = getattr(trace, name) if trace is not None else None
        return value if value is not None else next((getattr(o, name) for o in obs if getattr(o, name)), None)

    latency = None
    if obs:
        end = max(o.end_time or o.start_time for o in obs)
        latency = _seconds(end - obs[0].start_time)
    return {
        "id": trace_id, "timestamp": _iso(trace.timestamp if trace is not None else obs[0].start_time),
        "name": trace.name if trace is not None else (root.name if root is not None else None),
        "input": None, "output": None, "sessionId": pick("session_id"), "release": pick("release"),
        "version": pick("version"), "userId": pick("user_id"),
        "metadata": dict(trace.metadata) if trace is not None else {},
        "tags": list(trace.tags if trace is not None else (root.tags if root is not None else ())),
        "public": trace.public if trace is not None else False,
        "environment": trace.environment if trace is not None else obs[0].environment,
        "htmlPath": f"/project/{project}/traces/{trace_id}", "latency": latency,
        "totalCost": sum((o.total_cost for o in obs if o.total_cost is not None), Decimal(0)),
        "observations": [observation_to_langfuse(o) for o in obs],
        "scores": [score_to_langfuse(s) for s in scores],
    }


def observation_to_langfuse(obs: Observation) -> dict[str, Any]:
    """One ``ObservationsView``: usage in DISJOINT Langfuse buckets, costs per bucket and calculated costs."""
    usage, details = _usage_view(obs.usage)
    costs: dict[str, Decimal] = {}
    calculated: Sequence[Decimal | None] = (None, None, None)
    if obs.total_cost is not None:
        for unit, amount in obs.cost.items():
            if unit != "total":
                key = _BUCKETS.get(unit, unit)
                costs[key] = costs.get(key, Decimal(0)) + amount
        costs["total"] = obs.total_cost
        calculated = (*(sum((v for k, v in costs.items() if part in k.lower() and k != "total"), Decimal(0))
                        for part in ("input", "output")), obs.total_cost)
    first_token = obs.completion_start_time
    return {
        "id": obs.id, "traceId": obs.trace_id, "type": obs.type.upper(), "name": obs.name,
        "startTime": _iso(obs.start_time), "endTime": _iso(obs.end_time),
        "completionStartTime": _iso(first_token), "model": obs.model,
        "modelParameters": dict(obs.model_parameters) if obs.model_parameters is not None else None,
        "input": None, "output": None, "usage": usage, "usageDetails": details, "costDetails": costs,
        "calculatedInputCost": calculated[0], "calculatedOutputCost": calculated[1],
        "calculatedTotalCost": calculated[2], "inputPrice": None, "outputPrice": None, "totalPrice": None,
        "modelId": obs.price_id, "level": obs.level, "statusMessage": obs.status_message,
        "parentObservationId": obs.parent_id, "environment": obs.environment, "version": obs.version,
        "metadata": dict(obs.metadata),
        "latency": _seconds(obs.end_time - obs.start_time) if obs.end_time is not None else None,
        "timeToFirstToken": _seconds(first_token - obs.start_time) if first_token is not None else None,
        "promptId": None, "promptName": None, "promptVersion": None,
    }


def _usage_view(q: Mapping[str, int | Decimal]) -> tuple[dict[str, Any], dict[str, int | Decimal]]:
    """(legacy ``usage``, disjoint ``usageDetails``) of costline's inclusive quantities.

    ``input`` = input_tokens − cache read − cache write, ``input_cached_tokens`` = cache read,
    ``input_cache_creation`` = cache write outside the 5m/1h split, ``input_cache_creation_5m`` / ``_1h``,
    ``output`` = output_tokens − reasoning, ``output_reasoning_tokens``, ``total`` = input + output tokens.
    Modality parts (audio, image) stay inside input/output; other units appear under their own name.
    """
    details: dict[str, int | Decimal] = {}
    unit = "TOKENS"
    if "input_tokens" in q or "output_tokens" in q:
        inp, out = q.get("input_tokens", 0), q.get("output_tokens", 0)
        read, reasoning = q.get("cache_read_tokens", 0), q.get("output_reasoning_tokens", 0)
        w5, w1 = q.get("cache_write_5m_tokens", 0), q.get("cache_write_1h_tokens", 0)
        write = max(q.get("cache_write_tokens", 0), w5 + w1)
        parts = {"input": max(inp - read - write, 0), "input_cached_tokens": read,
                 "input_cache_creation": write - w5 - w1, "input_cache_creation_5m": w5,
                 "input_cache_creation_1h": w1, "output": out - reasoning, "output_reasoning_tokens": reasoning}
        details = {k: v for k, v in parts.items() if v or k in ("input", "output")}
    elif "input_characters" in q or "output_characters" in q:
        unit = "CHARACTERS"
        inp, out = q.get("input_characters", 0), q.get("output_characters", 0)
        details = {"input": inp, "output": out}
    else:
        inp = out = 0
    if details:
        details["total"] = inp + out
    for name, value in q.items():
        if name not in ("input_characters", "output_characters") and UNITS[name].family != "tokens":
            details[name] = value
    return {"input": inp, "output": out, "total": inp + out, "unit": unit}, details


def score_to_langfuse(score: Score) -> dict[str, Any]:
    """A Langfuse ``Score`` (NUMERIC / BOOLEAN with ``value``, CATEGORICAL / TEXT with ``stringValue``)."""
    numeric = isinstance(score.value, Decimal)
    data_type = score.data_type or ("NUMERIC" if numeric else "CATEGORICAL")
    out: dict[str, Any] = {
        "id": score.id, "traceId": score.trace_id, "observationId": score.observation_id,
        "sessionId": score.session_id, "name": score.name, "source": "API", "dataType": data_type,
        "value": score.value if numeric else None, "timestamp": _iso(score.timestamp),
        "createdAt": _iso(score.timestamp), "updatedAt": _iso(score.timestamp), "authorUserId": None,
        "comment": score.comment, "configId": None, "queueId": None, "environment": score.environment,
        "metadata": dict(score.metadata),
    }
    if data_type == "BOOLEAN" and numeric:
        out["stringValue"] = "True" if score.value == 1 else "False"
    elif not numeric:
        out["stringValue"] = score.value
    return out


# encoding --------------------------------------------------------------------------------------------------


def dumps_json(value: Any) -> bytes:
    """Compact JSON in which every ``Decimal`` is a JSON number with its exact digits (``decimal_str``)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(decimal_str(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        out.append(json.dumps(_iso(value)))
    else:
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))


def _iso(when: datetime | None) -> str | None:
    """UTC with milliseconds and ``Z``, as Langfuse writes times."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1)).scaleb(-6).normalize()
