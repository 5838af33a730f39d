"""One model call reported twice in a trace is counted once.

When two instrumentations both report the same call (LangChain's ``ChatOpenAI`` run and the OpenAI client
call it makes, from OpenLLMetry's LangChain and OpenAI instrumentations, or the Langfuse LangChain handler
next to ``langfuse.openai``), the trace holds a priced generation and, below it, a priced generation of the
same call: summing both doubles the cost (Langfuse issues #14754, #16409).

The rule: an observation of a priced type (generation, embedding) is a **duplicate** of a descendant of a
priced type in the same trace when

- both report input and output tokens and the counts are equal (and not both zero),
- the models are of one family: equal after dropping a routing prefix (``openai/``) and a snapshot date
  (``gpt-4o`` = ``gpt-4o-2024-08-06``), or the same resolved model,
- the descendant's time lies within the outer observation's (a second of slack for clocks of different
  processes).

The outer one is marked: status ``duplicate``, its cost components kept for display, its total NULL, its
reason naming the observation that is counted; the innermost (nearest the provider) keeps the cost. Every
total sums ``total_cost``, so queries, reports, budgets and exports count the call once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final, NamedTuple, Protocol

from costline.core.events import PRICED_TYPES, Observation
from costline.core.usage import Quantity

DUPLICATE: Final = "duplicate"
_SLACK: Final = timedelta(seconds=1)
_MAX_DEPTH: Final = 32
_SNAPSHOT: Final = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4})$")


class CallReport(Protocol):
    """What the rule reads of an observation: an ``Observation``, or the ``CallLink`` the store reads for it."""

    @property
    def id(self) -> str: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def resolved_model(self) -> str | None: ...
    @property
    def start_time(self) -> datetime: ...
    @property
    def end_time(self) -> datetime | None: ...
    @property
    def usage(self) -> Mapping[str, Quantity]: ...
    @property
    def pricing_status(self) -> str | None: ...


class CallLink(NamedTuple):
    """A stored observation as the rule reads it (``Store.trace_calls``): its usage holds the input and output
    token counts only; the times need only be comparable."""

    id: str
    trace_id: str
    parent_id: str | None
    type: str
    model: str | None
    resolved_model: str | None
    start_time: datetime
    end_time: datetime | None
    usage: Mapping[str, Quantity]
    pricing_status: str | None


def model_family(name: str | None) -> str | None:
    """``openai/gpt-4o-2024-08-06`` → ``gpt-4o``: the name without routing prefix and snapshot date."""
    if not name:
        return None
    base = name.strip().lower().rsplit("/", 1)[-1]
    return _SNAPSHOT.sub("", base) or base


def _tokens(obs: CallReport) -> tuple[int, int] | None:
    usage = obs.usage
    inp, out = int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)
    return (inp, out) if inp or out else None


def same_call(outer: CallReport, inner: CallReport) -> bool:
    """Whether ``inner`` (a descendant of ``outer``) reports the same model call as ``outer``."""
    if outer.type not in PRICED_TYPES or inner.type not in PRICED_TYPES:
        return False
    tokens = _tokens(outer)
    if tokens is None or tokens != _tokens(inner):
        return False
    families = {model_family(outer.model), model_family(inner.model)}
    resolved = outer.resolved_model is not None and outer.resolved_model == inner.resolved_model
    if not resolved and (len(families) != 1 or None in families):
        return False
    outer_end = outer.end_time or outer.start_time
    inner_end = inner.end_time or inner.start_time
    return outer.start_time - _SLACK <= inner.start_time and inner_end <= outer_end + _SLACK


def find_duplicates(observations: Iterable[CallReport]) -> dict[str, str]:
    """``{outer id: counted id}`` for the observations (of one or more traces) that duplicate a descendant."""
    by_id: Mapping[str, CallReport] = {o.id: o for o in observations}
    found: dict[str, str] = {}
    for inner in by_id.values():
        if inner.type not in PRICED_TYPES or _tokens(inner) is None:
            continue
        parent_id, depth = inner.parent_id, 0
        while parent_id is not None and depth < _MAX_DEPTH:
            outer = by_id.get(parent_id)
            if outer is None or outer.trace_id != inner.trace_id:
                break
            if same_call(outer, inner):
                # the innermost duplicate wins: an outer already matched to a deeper call keeps that one
                found.setdefault(outer.id, inner.id)
            parent_id, depth = outer.parent_id, depth + 1
    # a chain of three reports of one call: each outer one points at the one that is counted
    return {outer: _counted(inner, found) for outer, inner in found.items()}


def _counted(obs_id: str, found: Mapping[str, str]) -> str:
    seen = 0
    while obs_id in found and seen < _MAX_DEPTH:
        obs_id, seen = found[obs_id], seen + 1
    return obs_id


def mark_duplicate(obs: Observation, counted_id: str) -> Observation:
    """``obs`` with its total removed from every sum, its components kept, the counted call named."""
    return replace(obs, total_cost=None, pricing_status=DUPLICATE,
                   pricing_reason=f"the same call as observation {counted_id!r}, which is counted")
