"""OTel span attributes → costline observation fields (wire-formats.md B.2-B.7, C.1).

The attributes arrive flattened (``otlp.py``): strings, ints, floats, bools, lists and dicts. Every rule here
reads that flat mapping; none does I/O. Functions that can fail raise ``ExtractionError`` / ``UsageError`` with
a message that starts with the attribute it read (``attributes["gen_ai.usage.input_tokens"]: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costline.core.events import LEVELS
from costline.core.limits import iso_utc
from costline.ingest.otel_usage import COST_KEYS, GENERIC_USAGE, TOTAL_KEYS
from costline.ingest.otel_values import Attrs, first, loads, text

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
_LANGFUSE_MODEL_KEYS = (
    "langfuse.observation.model.name", "langfuse.observation.cost_details", "langfuse.observation.usage_details",
    "langfuse.observation.completion_start_time", "langfuse.observation.model.parameters",
)

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
        usage_units=tuple((unit, having(names)) for unit, names in GENERIC_USAGE if having(names)),
        total_keys=having(TOTAL_KEYS),
        model_keys=having(_MODEL_KEYS),
        fallback_model_keys=having(_FALLBACK_MODEL_KEYS),
        tool_keys=having(_TOOL_KEYS),
        langfuse_model=(any(key in present for key in _LANGFUSE_MODEL_KEYS)
                        or any(key.startswith("langfuse.observation.prompt.") for key in keys)),
        cost_details="langfuse.observation.cost_details" in present,
        cost_keys=having(COST_KEYS),
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
