"""OTel span attributes → costline observation fields (wire-formats.md B.2-B.7, C.1).

The attributes arrive flattened (``otlp.py``): strings, ints, floats, bools, lists and dicts. Every rule here
reads that flat mapping; none does I/O. Functions that can fail raise ``ExtractionError`` / ``UsageError`` with
a message that starts with the attribute it read (``attributes["gen_ai.usage.input_tokens"]: ...``).

Usage is costline's INCLUSIVE usage (``input_tokens`` counts cached tokens, ``output_tokens`` counts reasoning):

1. ``langfuse.observation.usage_details`` (JSON) is read by the Langfuse extractor (disjoint Langfuse buckets, or
   the raw OpenAI usage dict of the Langfuse OpenAI integration); a flat Chat Completions dict
   (``prompt_tokens`` + ``completion_tokens``) goes through the OpenAI extractor, so OpenRouter's ``cost`` and
   xAI/DeepSeek quirks are read too.
2. Otherwise the generic ``gen_ai.usage.*`` / ``llm.token_count.*`` attributes, which semconv defines as
   inclusive. **Anthropic rule**: some instrumentations (OpenLLMetry's anthropic) pass Anthropic's EXCLUSIVE
   ``input_tokens`` through. When the provider is ``anthropic`` or ``aws`` and either cache read + cache write
   exceed the input, or the reported total equals input + output + cache read + cache write, the input is taken
   as exclusive and the cache tokens are added to it. Any other subset above its parent is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from costline.core.events import LEVELS
from costline.core.limits import MAX_INTEGER, iso_utc, parse_count, preview
from costline.core.money import to_decimal
from costline.core.units import ANCESTORS, DIRECT_PARENTS, ROOT_OF, UNITS
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError
from costline.extract import extract_usage

Attrs = Mapping[str, Any]

OBSERVATION_TYPES = frozenset(
    {"generation", "embedding", "span", "event", "agent", "tool", "chain", "retriever", "evaluator", "guardrail"}
)
_OPENINFERENCE_KINDS = {
    "llm": "generation", "embedding": "embedding", "chain": "chain", "retriever": "retriever", "agent": "agent",
    "tool": "tool", "guardrail": "guardrail", "evaluator": "evaluator",
}
_OPERATIONS = {
    **dict.fromkeys(("chat", "completion", "text_completion", "generate_content", "generate"), "generation"),
    "embeddings": "embedding",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
}
#: operations whose model/usage/cost describe their children (B.4): not read, so nothing is counted twice
_AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "agent_step"})
_MODEL_KEYS = (
    "langfuse.observation.model.name", "gen_ai.response.model", "ai.model.id", "gen_ai.request.model",
    "llm.response.model", "llm.model_name", "model",
)
_FALLBACK_MODEL_KEYS = (
    "langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "model",
)
_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
#: OTel / OpenInference provider names -> genai-prices provider ids (unknown names are kept as sent)
_PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic",
    "aws.bedrock": "aws", "aws": "aws", "bedrock": "aws",
    **dict.fromkeys(("azure.ai.openai", "az.ai.openai", "azure"), "azure"),
    **dict.fromkeys(("gcp.vertex_ai", "gcp.gemini", "gcp.gen_ai", "google", "vertex_ai", "vertexai", "gemini"),
                    "google"),
    "cohere": "cohere", "mistral_ai": "mistral", "mistralai": "mistral", "mistral": "mistral",
    "groq": "groq", "deepseek": "deepseek", "x_ai": "x-ai", "xai": "x-ai", "x-ai": "x-ai",
    "perplexity": "perplexity",
}
_EXCLUSIVE_INPUT_PROVIDERS = frozenset({"anthropic", "aws"})
_LANGFUSE_MODEL_KEYS = (
    "langfuse.observation.model.name", "langfuse.observation.cost_details", "langfuse.observation.usage_details",
    "langfuse.observation.completion_start_time", "langfuse.observation.model.parameters",
)

# generic usage: costline unit <- attributes, first present wins (C.1 current names, then deprecated/vendor ones)
_GENERIC_USAGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")),
    ("output_tokens",
     ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")),
    ("cache_read_tokens", (
        "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read", "gen_ai.usage.prompt_tokens_details.cached_tokens",
    )),
    ("cache_write_tokens", (
        "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    )),
    ("output_reasoning_tokens", (
        "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    )),
    ("input_audio_tokens", ("gen_ai.usage.audio.input_tokens", "llm.token_count.prompt_details.audio")),
    ("output_audio_tokens", ("gen_ai.usage.audio.output_tokens", "llm.token_count.completion_details.audio")),
    ("input_text_tokens", ("gen_ai.usage.text.input_tokens",)),
    ("input_image_tokens", ("gen_ai.usage.image.input_tokens",)),
    ("input_video_tokens", ("gen_ai.usage.video.input_tokens",)),
    ("output_text_tokens", ("gen_ai.usage.text.output_tokens",)),
)
_TOTAL_KEYS = ("gen_ai.usage.total_tokens", "llm.token_count.total")

# Langfuse cost_details keys -> costline units (a costline unit name maps to itself)
_COST_UNITS: Mapping[str, str] = {
    **dict.fromkeys(("input", "input_tokens", "prompt_tokens"), "input_tokens"),
    **dict.fromkeys(("output", "output_tokens", "completion_tokens"), "output_tokens"),
    **dict.fromkeys(("input_cached_tokens", "input_cache_read", "cache_read_input_tokens", "cache_read_tokens"),
                    "cache_read_tokens"),
    **dict.fromkeys(
        ("input_cache_creation", "input_cache_write", "cache_creation_input_tokens", "cache_write_tokens"),
        "cache_write_tokens",
    ),
    **dict.fromkeys(("output_reasoning_tokens", "output_reasoning", "reasoning_tokens"), "output_reasoning_tokens"),
    **{
        f"{direction}_{modality}{suffix}": f"{direction}_{modality}_tokens"
        for direction in ("input", "output") for modality in ("text", "audio", "image") for suffix in ("", "_tokens")
    },
}
_SERVICE_TIER_KEYS = (
    "gen_ai.openai.response.service_tier", "openai.response.service_tier",
    "gen_ai.openai.request.service_tier", "gen_ai.request.service_tier",
)
ENVIRONMENT_KEYS = ("langfuse.environment", "deployment.environment.name", "deployment.environment")
_ENVIRONMENT = re.compile(r"^[a-z0-9_-]+$")


_TOOL_KEYS = ("gen_ai.tool.name", "gen_ai.tool.call.id")
USER_KEYS = ("langfuse.user.id", "user.id")
SESSION_KEYS = ("langfuse.session.id", "session.id", "gen_ai.conversation.id")
OBSERVATION_METADATA = "langfuse.observation.metadata"
TRACE_METADATA = "langfuse.trace.metadata"
_COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")
_PARAMETER_JSON_KEYS = ("langfuse.observation.model.parameters", "llm.invocation_parameters")
_REQUEST = "gen_ai.request."
_INVOCATION = "llm.invocation_parameters."


@dataclass(frozen=True, slots=True)
class Plan:
    """Which of the rules' attributes one key set holds, worked out once per distinct key set (``plan_for``).

    Instrumentations send the same attribute names on every span, so a batch of 1,000 spans has a handful of
    key sets. The rules below take the plan and look up only the keys it lists: a key that is absent reads as
    ``None``, which every rule skips, so reading the present keys only, in the same order, gives the same
    answers as reading every key.
    """

    langfuse: bool  # some key starts with "langfuse." (only the Langfuse SDKs send these)
    environment: bool  # an environment key is present (else the scope's environment applies)
    provider_keys: tuple[str, ...]
    langfuse_usage: bool
    #: generic usage: (unit, its keys present, in precedence order) for every unit sent
    usage_units: tuple[tuple[str, tuple[str, ...]], ...]
    total_keys: tuple[str, ...]
    model_keys: tuple[str, ...]
    fallback_model_keys: tuple[str, ...]
    tool_keys: tuple[str, ...]
    langfuse_model: bool  # a key the Langfuse Python SDK <= 3.3 sends on generations
    cost_details: bool
    cost_keys: tuple[str, ...]
    tier_keys: tuple[str, ...]
    parameter_json_keys: tuple[str, ...]
    #: (attribute, parameter name) for every ``gen_ai.request.*`` / ``llm.invocation_parameters.*`` key
    parameters: tuple[tuple[str, str], ...]
    user_keys: tuple[str, ...]
    session_keys: tuple[str, ...]
    #: (attribute, metadata key) for every ``langfuse.observation.metadata.<key>`` / ``langfuse.trace.metadata.<key>``
    observation_metadata: tuple[tuple[str, str], ...]
    trace_metadata: tuple[tuple[str, str], ...]


def plan_for(keys: tuple[str, ...]) -> Plan:
    """The plan of one key set (keys in the span's order)."""
    present = frozenset(keys)

    def having(candidates: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(key for key in candidates if key in present)

    def dotted(prefix: str) -> tuple[tuple[str, str], ...]:
        start = prefix + "."
        return tuple((key, key[len(start):]) for key in keys if key.startswith(start) and len(key) > len(start))

    return Plan(
        langfuse=any(key.startswith("langfuse.") for key in keys),
        environment=not present.isdisjoint(ENVIRONMENT_KEYS),
        provider_keys=having(_PROVIDER_KEYS),
        langfuse_usage="langfuse.observation.usage_details" in present,
        usage_units=tuple((unit, having(names)) for unit, names in _GENERIC_USAGE if having(names)),
        total_keys=having(_TOTAL_KEYS),
        model_keys=having(_MODEL_KEYS),
        fallback_model_keys=having(_FALLBACK_MODEL_KEYS),
        tool_keys=having(_TOOL_KEYS),
        langfuse_model=(any(key in present for key in _LANGFUSE_MODEL_KEYS)
                        or any(key.startswith("langfuse.observation.prompt.") for key in keys)),
        cost_details="langfuse.observation.cost_details" in present,
        cost_keys=having(_COST_KEYS),
        tier_keys=having(_SERVICE_TIER_KEYS),
        parameter_json_keys=having(_PARAMETER_JSON_KEYS),
        parameters=tuple(
            (key, key[len(_REQUEST if key.startswith(_REQUEST) else _INVOCATION):]) for key in keys
            if key.startswith((_REQUEST, _INVOCATION)) and key != "gen_ai.request.model"
        ),
        user_keys=having(USER_KEYS),
        session_keys=having(SESSION_KEYS),
        observation_metadata=dotted(OBSERVATION_METADATA),
        trace_metadata=dotted(TRACE_METADATA),
    )


def attr(key: str) -> str:
    return f'attributes["{key}"]'


def first(attrs: Attrs, *keys: str) -> Any:
    """The first value among ``keys`` that is present and not empty."""
    for key in keys:
        value = attrs.get(key)
        if value is None:  # the common case first: most keys looked up are absent
            continue
        if value != "" and value != [] and value != {}:
            return value
    return None


def text(attrs: Attrs, *keys: str) -> str | None:
    """The first non-empty string (or number, as text) among ``keys``."""
    for key in keys:
        value = attrs.get(key)
        if value is None:  # the common case first: most keys looked up are absent
            continue
        if isinstance(value, str):
            if value.strip():
                return value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None


def is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def loads(value: object) -> Any:
    """``value`` JSON-decoded when it is a string holding JSON, else as is."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # also past 4300 digits, or nested past the parser's stack
            return value
    return value


def version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def langfuse_sdk(scope_name: str, scope_version: str, resource: Attrs) -> tuple[bool, bool]:
    """For an instrumentation scope: (Langfuse SDK >= 5, which JSON-encodes every metadata value;
    Langfuse Python SDK <= 3.3, which sent generations as spans with generation attributes)."""
    if scope_name != "langfuse-sdk":
        return False, False
    version = version_tuple(scope_version)
    return version[:1] >= (5,), resource.get("telemetry.sdk.language") == "python" and version[:2] <= (3, 3)


def observation_type(attrs: Attrs, old_langfuse_python: bool, plan: Plan) -> str:
    """B.3, first match wins; lower-case costline names. ``old_langfuse_python``: see ``langfuse_sdk``."""
    declared = attrs.get("langfuse.observation.type")
    declared = declared.strip().lower() if isinstance(declared, str) else None
    if declared == "span" and old_langfuse_python and plan.langfuse_model:
        return "generation"
    if declared in OBSERVATION_TYPES:
        return declared
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.strip().lower() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[kind.strip().lower()]
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str):
        found = _OPERATIONS.get(operation.strip().lower())
        if found is not None:
            return found
    if plan.tool_keys and first(attrs, *plan.tool_keys) is not None:
        return "tool"
    if plan.fallback_model_keys and text(attrs, *plan.fallback_model_keys) is not None:
        return "generation"
    return "span"


def is_aggregate(attrs: Attrs) -> bool:
    operation = attrs.get("gen_ai.operation.name")
    return isinstance(operation, str) and operation in _AGGREGATE_OPERATIONS


def model(attrs: Attrs, aggregate: bool, plan: Plan) -> str | None:
    """``aggregate``: ``is_aggregate(attrs)``, worked out once per span by the caller."""
    if aggregate:
        return text(attrs, "langfuse.observation.model.name")
    return text(attrs, *plan.model_keys)


def provider(attrs: Attrs, plan: Plan) -> str | None:
    name = text(attrs, *plan.provider_keys)
    if name is None:
        return None
    name = name.strip()
    return _PROVIDERS.get(name.lower(), name)


def _token_count(attrs: Attrs, key: str) -> int | None:
    value = attrs.get(key)
    if type(value) is int and value >= 0:  # the common case first
        return value
    if value is None or value == "":
        return None
    number: object = value
    if isinstance(value, str):
        number = parse_count(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ExtractionError(f"{attr(key)}: expected a non-negative integer token count, got {preview(value)}")
    return number


def _langfuse_usage(attrs: Attrs) -> tuple[Usage | None, Mapping[str, Decimal] | None] | None:
    """From ``langfuse.observation.usage_details``; ``None`` when absent or not JSON (generic extraction runs)."""
    key = "langfuse.observation.usage_details"
    raw = attrs.get(key)
    if raw is None:
        return None
    details = loads(raw)
    if isinstance(details, str):
        return None  # not JSON: fall through, as Langfuse does
    if not isinstance(details, Mapping) or not details:
        return None, None
    shape = "openai" if "prompt_tokens" in details and "completion_tokens" in details else "langfuse"
    try:
        got = extract_usage(details, shape)
    except CostlineError as exc:
        raise type(exc)(f"{attr(key)}.{exc}") from None
    return got.usage, got.provided_cost


def _generic_usage(attrs: Attrs, provider_id: str | None, plan: Plan) -> Usage | None:
    q: dict[str, int] = {}
    for unit, keys in plan.usage_units:  # only the units sent, each with its keys present, in precedence order
        for key in keys:
            number = _token_count(attrs, key)
            if number is not None:
                q[unit] = number
                break
    if not q:
        return None
    total = None
    for key in plan.total_keys:
        total = _token_count(attrs, key)
        if total is not None:
            break
    if provider_id in _EXCLUSIVE_INPUT_PROVIDERS:  # Anthropic's exclusive input_tokens passed through (docstring)
        cache = q.get("cache_read_tokens", 0) + q.get("cache_write_tokens", 0)
        given = q.get("input_tokens", 0)
        if cache and (cache > given or total == given + cache + q.get("output_tokens", 0)):
            q["input_tokens"] = given + cache
    return token_usage(q)


_SubsetChecks = tuple[
    tuple[str, ...],  # units that need their root unit, which is not among them: must be 0
    tuple[tuple[str, str], ...],  # (unit, an ancestor among them): unit <= ancestor
    tuple[tuple[str, tuple[str, ...]], ...],  # (parent, its children along one axis, 2 or more): sum <= parent
]
_SUBSET_CHECKS: dict[tuple[str, ...], _SubsetChecks] = {}


def _subset_checks(units: tuple[str, ...]) -> _SubsetChecks:
    """The comparisons ``Usage`` makes for this set of units (its ``_check_subsets``, from the same tables)."""
    checks = _SUBSET_CHECKS.get(units)
    if checks is None:
        present = set(units)
        sums: dict[tuple[str, str], list[str]] = {}
        for unit in units:
            for parent, axis in DIRECT_PARENTS[unit]:
                if parent in present:
                    sums.setdefault((parent, axis), []).append(unit)
        checks = _SUBSET_CHECKS[units] = (
            tuple(unit for unit in units if unit in ROOT_OF and ROOT_OF[unit] not in present),
            tuple((unit, ancestor) for unit in units for ancestor in sorted(ANCESTORS[unit]) if ancestor in present),
            tuple((parent, tuple(children)) for (parent, _), children in sums.items() if len(children) > 1),
        )
    return checks


def token_usage(q: dict[str, int]) -> Usage:
    """``Usage(q)`` for token counts already read as non-negative ints of known units (``_generic_usage``).

    ``Usage`` validates every quantity and its subsets. Here the counts are ints of known token units, so what
    is left to check is the range and the subset comparisons, compiled once per set of units from the tables
    ``Usage`` reads; when they all hold the validated record is built directly, otherwise ``Usage(q)`` runs and
    raises its own error.
    """
    needs_root, ordered, sums = _subset_checks(tuple(q))
    valid = max(q.values()) <= MAX_INTEGER  # plain loops below: generator expressions cost more than the checks
    for unit in needs_root:
        if q[unit]:
            valid = False
    for unit, ancestor in ordered:
        if q[unit] > q[ancestor]:
            valid = False
    for parent, children in sums:
        if sum([q[child] for child in children]) > q[parent]:
            valid = False
    if not valid:
        return Usage(q)  # raises the error naming the units (or, were these checks stricter, accepts)
    return Usage.validated({unit: number for unit, number in q.items() if number})


def usage(
    attrs: Attrs, provider_id: str | None, aggregate: bool, plan: Plan
) -> tuple[Usage | None, Mapping[str, Decimal] | None]:
    """(usage, cost the usage dict itself reported); ``UsageError`` when a subset exceeds its parent."""
    found = _langfuse_usage(attrs) if plan.langfuse_usage else None
    if found is not None:
        return found
    if aggregate:
        return None, None
    return _generic_usage(attrs, provider_id, plan), None


def _amount(value: object, where: str) -> Decimal:
    try:
        number = to_decimal(value, field=where)
    except CostlineError as exc:
        raise ExtractionError(str(exc)) from None
    if number < 0:
        raise ExtractionError(f"{where}: expected a non-negative cost, got {preview(value)}")
    return number


def langfuse_cost(details: Mapping[str, Any], where: str) -> dict[str, Decimal] | None:
    """Langfuse ``cost_details`` -> costline provided cost.

    Bucket keys map to costline units where unambiguous (``input`` -> input_tokens, ``input_cached_tokens`` ->
    cache_read_tokens, ...); as in Langfuse, provided costs are authoritative, so ``total`` is the given total,
    else the sum of every entry (keys with no costline unit are only folded into it).
    """
    cost: dict[str, Decimal] = {}
    total: Decimal | None = None
    summed = Decimal(0)
    seen = False
    for key, value in details.items():
        if value is None:
            continue
        seen = True
        amount = _amount(value, f"{where}.{key}")
        if key == "total":
            total = amount
            continue
        summed += amount
        unit = key if key in UNITS else _COST_UNITS.get(key)
        if unit is not None:
            cost[unit] = cost.get(unit, Decimal(0)) + amount
    if not seen:
        return None
    cost["total"] = summed if total is None else total
    return cost


def provided_cost(attrs: Attrs, aggregate: bool, plan: Plan) -> dict[str, Decimal] | None:
    """B.6: ``langfuse.observation.cost_details`` > ``gen_ai.usage.cost`` > ``llm.cost.total``.

    A zero ``gen_ai.usage.cost`` / ``llm.cost.total`` is ignored: OpenLIT reports 0 for models missing from its
    own price table, and costline's price would otherwise be overridden by it.
    """
    key = "langfuse.observation.cost_details"
    details = attrs.get(key) if plan.cost_details else None
    if details is not None:
        details = loads(details)
        if isinstance(details, Mapping) and details:
            return langfuse_cost(details, attr(key))
    if aggregate:
        return None
    for key in plan.cost_keys:
        value = attrs.get(key)
        if value is not None and value != "":
            amount = _amount(value, attr(key))
            if amount:
                return {"total": amount}
    return None


def metadata(attrs: Attrs, prefix: str, decode: bool, dotted: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``<prefix>`` (a JSON object) plus every ``<prefix>.<key>``; values JSON-decoded when ``decode`` (v5).

    ``dotted``: the (attribute, key) pairs of the ``<prefix>.<key>`` attributes, in order (``Plan``).
    """
    out: dict[str, Any] = {}
    bare = attrs.get(prefix)
    if bare is not None:
        parsed = loads(bare)
        if isinstance(parsed, Mapping):
            out.update(parsed)
        else:
            out["metadata"] = parsed
    for key, name in dotted:
        value = attrs[key]
        out[name] = loads(value) if decode else value
    return out


def model_parameters(attrs: Attrs, plan: Plan) -> dict[str, Any] | None:
    for key in plan.parameter_json_keys:
        raw = attrs.get(key)
        if raw is None:
            continue
        parsed = loads(raw)
        if isinstance(parsed, Mapping) and parsed:
            return dict(parsed)
    if not plan.parameters:
        return None
    params: dict[str, Any] = {}
    for key, name in plan.parameters:  # in the attributes' order: of two keys naming one parameter, the last wins
        params[name] = attrs[key]
    return params or None


def price_attributes(attrs: Attrs, plan: Plan) -> dict[str, str] | None:
    """The OpenAI service tier actually applied (response first; a requested ``auto`` is not a tier)."""
    for key in plan.tier_keys:
        tier = text(attrs, key)
        if tier is not None and tier.strip().lower() != "auto":
            return {"service_tier": tier.strip()}
    return None


def level(attrs: Attrs, status_code: int) -> str:
    declared = attrs.get("langfuse.observation.level")
    if isinstance(declared, str) and declared.strip().upper() in LEVELS:
        return declared.strip().upper()
    return "ERROR" if status_code == 2 else "DEFAULT"


def iso_time(value: object) -> datetime | None:
    """A plain or JSON-quoted ISO 8601 time; naive times are UTC; unreadable values are ``None``."""
    parsed = loads(value)
    if not isinstance(parsed, str) or not parsed.strip():
        return None
    try:
        return iso_utc(parsed)
    except ValueError:
        return None


def environment(attrs: Attrs, resource: Attrs) -> str | None:
    """B.2: first of the environment keys (span, then resource, per key), normalised; ``None`` when not sent."""
    for key in ENVIRONMENT_KEYS:
        value = text(attrs, key) or text(resource, key)
        if value is not None:
            env = _ENVIRONMENT_NAMES.get(value)
            if env is None:
                env = _LANGFUSE_PREFIX.sub("", value.strip().lower())[:40]
                env = env if _ENVIRONMENT.match(env) else "default"
                if len(value) <= 64:  # one SDK sends the same value on every span; a bounded cache of short ones
                    if len(_ENVIRONMENT_NAMES) >= 256:
                        _ENVIRONMENT_NAMES.clear()
                    _ENVIRONMENT_NAMES[value] = env
            return env
    return None


_LANGFUSE_PREFIX = re.compile(r"^langfuse[-_]")
#: environment value as sent -> its normalised name
_ENVIRONMENT_NAMES: dict[str, str] = {}


def tags(value: object) -> tuple[str, ...] | None:
    """An OTel string array, a JSON array string, a comma-separated list or one tag."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        parsed = loads(stripped) if stripped.startswith("[") else None
        value = parsed if isinstance(parsed, list) else stripped.split(",")
    if isinstance(value, list | tuple):
        found = tuple(dict.fromkeys(str(t).strip() for t in value if t is not None and str(t).strip()))
        return found or None
    return (str(value),)
