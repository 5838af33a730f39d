"""Price resolution: which record prices a model reference, as of an event's time.

Order of preference: source (per-call override > user prices > imported files > bundled default), then
provider (the one named, its fallbacks such as Azure → OpenAI, then records scoped to no provider), then how
specific the match is (exact > longest prefix > regex), then the newest ``valid_from``. The first record in
that order that is valid at the event's time wins, so an old event keeps the price that applied to it.
Candidate lists are memoised per (model, provider); a lookup is a dict hit plus a short scan.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from costline.core.price import Match, PriceRecord, Source

_MAX_MEMO = 100_000
_MAX_ALIAS_HOPS = 8


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """A provider: its id, the names it goes by, the models it is presumed to serve, where to fall back."""

    id: str
    name: str = ""
    provider_match: Match | None = None
    model_match: Match | None = None
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    record: PriceRecord
    valid: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``PriceBook.explain`` found: the winner, every candidate in order, and near names on a miss."""

    model: str
    provider: str | None
    at: datetime
    record: PriceRecord | None
    alias_chain: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    nearest: tuple[str, ...] = ()


@dataclass
class PriceBook:
    """An immutable set of price records with memoised lookup."""

    records: Sequence[PriceRecord]
    providers: Sequence[ProviderInfo] = ()
    _exact: dict[str, list[PriceRecord]] = field(default_factory=dict, init=False, repr=False)
    _scan: list[PriceRecord] = field(default_factory=list, init=False, repr=False)
    _memo: dict[tuple[str, str | None], tuple[PriceRecord, ...]] = field(
        default_factory=dict, init=False, repr=False
    )
    # keyed by the provider as given (before normalising), so a hit skips normalisation
    _raw_memo: dict[tuple[str, str | None], tuple[PriceRecord, ...]] = field(
        default_factory=dict, init=False, repr=False
    )
    _provider_memo: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)
    _provider_by_id: dict[str, ProviderInfo] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._provider_by_id = {p.id: p for p in self.providers}
        self.records = tuple(self._scope_routed(r) for r in self.records)
        for record in self.records:
            names = record.match.exact_names()
            if names:
                for name in names:
                    self._exact.setdefault(name, []).append(record)
            else:
                self._scan.append(record)

    def _scope_routed(self, record: PriceRecord) -> PriceRecord:
        """A user or imported record named with a routing prefix (``openai/gpt-4o-mini``, as LiteLLM names
        models) also prices the bare name under that provider, so it outranks the bundled record of the same
        model whether the call names ``openai/gpt-4o-mini``, or ``gpt-4o-mini`` with or without the provider."""
        if record.source is Source.BUNDLED or record.alias_of is not None:
            return record
        names = record.match.exact_names()
        routed: set[str | None] = set()
        bare: list[str] = []
        for name in names:
            prefix, slash, rest = name.partition("/")
            scoped = self.normalize_provider(prefix) if slash and rest else None
            if scoped not in self._provider_by_id:
                return record  # a name without a known provider prefix: the record stays as written
            routed.add(scoped)
            bare.append(rest)
        if len(routed) != 1:
            return record
        provider = routed.pop()
        if record.provider is not None and self.normalize_provider(record.provider) != provider:
            return record
        clauses = tuple(Match("exact", n) for n in dict.fromkeys((*names, *bare)))
        return replace(record, provider=provider, match=Match("any", clauses=clauses))

    # -- providers -------------------------------------------------------------------------------------
    def normalize_provider(self, provider: str | None) -> str | None:
        """Map a provider name as sent (``Bedrock``, ``azure_openai``, ``vertex_ai``) to a provider id."""
        if provider is None:
            return None
        key = provider.strip().lower()
        if not key:
            return None
        if key in self._provider_memo:
            return self._provider_memo[key]
        found: str | None = key if key in self._provider_by_id else None
        if found is None:
            # "azure_openai" names both azure and openai: the name that comes first in it wins
            matching = [
                info for info in self.providers
                if info.provider_match is not None and info.provider_match.matches(key, key)
            ]
            if matching:
                found = min(matching, key=lambda i: (key.find(i.id) % (len(key) + 1), i.id)).id
        result = found or key
        self._provider_memo[key] = result
        return result

    def _provider_order(self, model: str, provider: str | None) -> list[str | None]:
        lowered = model.lower()
        order: list[str | None] = []
        if provider is not None:
            order.append(provider)
            info = self._provider_by_id.get(provider)
            if info is not None:
                order.extend(info.fallbacks)
        else:
            for info in self.providers:
                if info.model_match is not None and info.model_match.matches(lowered, lowered):
                    order.append(info.id)
                    order.extend(info.fallbacks)
        order.append(None)
        seen: set[str | None] = set()
        return [p for p in order if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]

    def infer_provider(self, model: str) -> str | None:
        """The provider a model name implies (a known routing prefix, else the first provider whose model rule
        matches: ``gpt-`` → openai), or None; for calls priced by a record scoped to no provider."""
        prefix, slash, rest = model.partition("/")
        if slash and rest:
            scoped = self.normalize_provider(prefix)
            if scoped in self._provider_by_id:
                return scoped
        lowered = model.lower()
        return next((p.id for p in self.providers
                     if p.model_match is not None and p.model_match.matches(lowered, lowered)), None)

    # -- lookup ----------------------------------------------------------------------------------------
    def _matching(self, name: str) -> list[PriceRecord]:
        lowered = name.lower()
        found = list(self._exact.get(lowered, ()))
        found.extend(r for r in self._scan if r.match.matches(name, lowered))
        return found

    def candidates(self, model: str, provider: str | None = None) -> tuple[PriceRecord, ...]:
        """Every record that could price ``model``, best first (before checking dates)."""
        provider = self.normalize_provider(provider)
        key = (model, provider)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        result: tuple[PriceRecord, ...] = ()
        if "/" in model:
            # "openai/gpt-4o", "bedrock/anthropic.claude-...": a routing prefix that names a known provider
            prefix, _, rest = model.partition("/")
            scoped = self.normalize_provider(prefix)
            if scoped in self._provider_by_id and (provider is None or provider == scoped):
                result = self._rank(rest, scoped)
        if not result:
            result = self._rank(model, provider)
        if len(self._memo) >= _MAX_MEMO:
            self._memo.clear()
        self._memo[key] = result
        return result

    def _rank(self, model: str, provider: str | None) -> tuple[PriceRecord, ...]:
        order = self._provider_order(model, provider)
        position = {p: i for i, p in enumerate(order)}
        unscoped_rank = len(order)
        matching = self._matching(model)
        if provider is not None:
            matching = [r for r in matching if r.provider in position]
        resellers = self._resellers(matching) if provider is None else frozenset()
        ranked = sorted(
            matching,
            key=lambda r: (
                r.source.rank,
                position.get(r.provider, unscoped_rank + (r.provider in resellers)),
                -r.match.specificity(),
                -(r.valid_from.timestamp() if r.valid_from else float("-inf")),
            ),
        )
        return tuple(ranked)

    def _resellers(self, matching: Sequence[PriceRecord]) -> frozenset[str | None]:
        """Providers that resell another matching provider's model: with no provider given, the model's
        originator comes first (``text-embedding-3-small`` is OpenAI's, though Azure lists it too), known from
        the provider's fallbacks (Azure falls back to OpenAI, Anthropic, ...)."""
        present = {r.provider for r in matching}
        if len(present) < 2:
            return frozenset()
        found: set[str | None] = set()
        for name in present:
            info = self._provider_by_id.get(name) if name is not None else None
            if info is not None and any(f in present for f in info.fallbacks):
                found.add(name)
        return frozenset(found)

    def resolve(self, model: str, provider: str | None = None, *, at: datetime) -> PriceRecord | None:
        """The record that prices ``model`` at ``at``, following aliases; None if nothing matches."""
        candidates = self._raw_memo.get((model, provider))
        if candidates is None:
            candidates = self.candidates(model, provider)
            if len(self._raw_memo) >= _MAX_MEMO:
                self._raw_memo.clear()
            self._raw_memo[(model, provider)] = candidates
        for record in candidates:
            if record.valid_at(at):
                if record.alias_of is None:
                    return record
                return self._follow_alias(record, at, 0)
        return None

    def _follow_alias(self, record: PriceRecord, at: datetime, hops: int) -> PriceRecord | None:
        if hops >= _MAX_ALIAS_HOPS or record.alias_of is None:
            return None if record.alias_of else record
        for target in self.candidates(record.alias_of, record.provider):
            if target is not record and target.valid_at(at):
                return target if target.alias_of is None else self._follow_alias(target, at, hops + 1)
        return None

    def explain(self, model: str, provider: str | None = None, *, at: datetime) -> Explanation:
        """Every candidate, in order, with why it was or was not chosen; near names when none matched."""
        provider_id = self.normalize_provider(provider)
        candidates = self.candidates(model, provider_id)
        chosen = self.resolve(model, provider_id, at=at)
        listed: list[Candidate] = []
        for record in candidates:
            valid = record.valid_at(at)
            note = "" if valid else f"not valid at {at.isoformat()}"
            listed.append(Candidate(record, valid, note))
        chain: list[str] = []
        first = next((c.record for c in listed if c.valid), None)
        hops = 0
        name = model
        while first is not None and first.alias_of is not None and hops < _MAX_ALIAS_HOPS:
            chain.append(f"{name} → {first.alias_of}")
            name = first.alias_of
            first = next(
                (r for r in self.candidates(first.alias_of, first.provider) if r.valid_at(at) and r is not first),
                None,
            )
            hops += 1
        nearest: tuple[str, ...] = ()
        if chosen is None:
            nearest = tuple(difflib.get_close_matches(model.lower(), self.model_names(), n=5, cutoff=0.6))
        return Explanation(model, provider_id, at, chosen, tuple(chain), tuple(listed), nearest)

    def model_names(self) -> list[str]:
        names = {r.model.lower() for r in self.records}
        names.update(self._exact)
        return sorted(names)

    def with_records(self, records: Iterable[PriceRecord]) -> PriceBook:
        """A new book with ``records`` added (for per-call overrides or layering)."""
        return PriceBook([*records, *self.records], self.providers)
