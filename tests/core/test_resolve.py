"""Price resolution: precedence, providers, aliases, dates, match rules."""

from datetime import UTC, datetime
from decimal import Decimal as D

from costline.core.price import Match, PriceRecord, Source
from costline.core.resolve import PriceBook, ProviderInfo

RATES = {"input_tokens": D("1"), "output_tokens": D("2")}


def rec(id: str, match: Match, *, source: Source = Source.BUNDLED, provider: str | None = None,
        valid_from: datetime | None = None, valid_to: datetime | None = None, alias_of: str | None = None,
        model: str = "m") -> PriceRecord:
    return PriceRecord(id=id, model=model, match=match, rates={} if alias_of else RATES, source=source,
                       provider=provider, valid_from=valid_from, valid_to=valid_to, alias_of=alias_of)


def d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PROVIDERS = (
    ProviderInfo("openai", provider_match=Match("contains", "openai"), model_match=Match("prefix", "gpt-")),
    ProviderInfo("azure", provider_match=Match("contains", "azure"), fallbacks=("openai",)),
    ProviderInfo("anthropic", model_match=Match("contains", "claude")),
)


def test_precedence_user_over_imported_over_bundled() -> None:
    book = PriceBook([
        rec("bundled", Match("exact", "gpt-4o"), provider="openai"),
        rec("imported", Match("exact", "gpt-4o"), source=Source.IMPORTED, provider="openai"),
        rec("user", Match("exact", "gpt-4o"), source=Source.USER),
    ], PROVIDERS)
    at = d("2026-11-01")
    assert book.resolve("gpt-4o", at=at).id == "user"  # type: ignore[union-attr]
    assert [r.id for r in book.candidates("gpt-4o")] == ["user", "imported", "bundled"]


def test_lookup_as_of_event_time() -> None:
    book = PriceBook([
        rec("old", Match("exact", "o3"), provider="openai", valid_to=d("2025-06-10")),
        rec("new", Match("exact", "o3"), provider="openai", valid_from=d("2025-06-10")),
    ], PROVIDERS)
    assert book.resolve("o3", at=d("2025-05-01")).id == "old"  # type: ignore[union-attr]
    assert book.resolve("o3", at=d("2025-06-10")).id == "new"  # type: ignore[union-attr]


def test_user_price_not_yet_valid_falls_back_to_catalog() -> None:
    book = PriceBook([
        rec("user-2027", Match("exact", "gpt-4o"), source=Source.USER, valid_from=d("2027-01-01")),
        rec("bundled", Match("exact", "gpt-4o"), provider="openai"),
    ], PROVIDERS)
    assert book.resolve("gpt-4o", at=d("2026-11-01")).id == "bundled"  # type: ignore[union-attr]
    assert book.resolve("gpt-4o", at=d("2027-02-01")).id == "user-2027"  # type: ignore[union-attr]


def test_exact_beats_prefix_beats_regex() -> None:
    book = PriceBook([
        rec("regex", Match("regex", "^gpt-4", case_sensitive=True)),
        rec("prefix", Match("prefix", "gpt-4o")),
        rec("exact", Match("exact", "gpt-4o-mini")),
    ])
    at = d("2026-11-01")
    assert book.resolve("gpt-4o-mini", at=at).id == "exact"  # type: ignore[union-attr]
    assert book.resolve("gpt-4o-2024-08-06", at=at).id == "prefix"  # type: ignore[union-attr]
    assert book.resolve("gpt-4-turbo", at=at).id == "regex"  # type: ignore[union-attr]


def test_regex_case_flag_is_explicit() -> None:
    book = PriceBook([rec("cs", Match("regex", "^LTX2$", case_sensitive=True)),
                      rec("ci", Match("regex", "^ltx3$", case_sensitive=False))])
    at = d("2026-11-01")
    assert book.resolve("LTX2", at=at) is not None
    assert book.resolve("ltx2", at=at) is None
    assert book.resolve("LTX3", at=at).id == "ci"  # type: ignore[union-attr]


def test_alias_maps_deployment_to_base_model() -> None:
    book = PriceBook([
        rec("alias", Match("exact", "prod-chat"), source=Source.USER, provider="azure", alias_of="gpt-4o"),
        rec("gpt-4o", Match("exact", "gpt-4o"), provider="openai", model="gpt-4o"),
    ], PROVIDERS)
    at = d("2026-11-01")
    # azure falls back to openai's prices
    assert book.resolve("prod-chat", "azure", at=at).id == "gpt-4o"  # type: ignore[union-attr]
    explained = book.explain("prod-chat", "azure", at=at)
    assert explained.alias_chain == ("prod-chat → gpt-4o",)


def test_alias_cycle_does_not_loop() -> None:
    book = PriceBook([
        rec("a", Match("exact", "a"), source=Source.USER, alias_of="b"),
        rec("b", Match("exact", "b"), source=Source.USER, alias_of="a"),
    ])
    assert book.resolve("a", at=d("2026-11-01")) is None


def test_provider_scope_and_normalisation() -> None:
    book = PriceBook([
        rec("openai", Match("exact", "gpt-4o"), provider="openai"),
        rec("azure", Match("exact", "gpt-4o"), provider="azure"),
    ], PROVIDERS)
    at = d("2026-11-01")
    assert book.resolve("gpt-4o", at=at).id == "openai"  # type: ignore[union-attr]  # guessed from gpt-
    assert book.resolve("gpt-4o", "Azure_OpenAI", at=at).id == "azure"  # type: ignore[union-attr]
    assert book.normalize_provider("azure_openai") == "azure"
    assert book.resolve("gpt-4o", "anthropic", at=at) is None


def test_routing_prefix_names_the_provider() -> None:
    book = PriceBook([rec("openai", Match("exact", "gpt-4o"), provider="openai")], PROVIDERS)
    assert book.resolve("openai/gpt-4o", at=d("2026-11-01")).id == "openai"  # type: ignore[union-attr]


def test_explain_a_miss_lists_nearest_names() -> None:
    book = PriceBook([rec("x", Match("exact", "gpt-4o"), model="gpt-4o")], PROVIDERS)
    explained = book.explain("gpt4o", at=d("2026-11-01"))
    assert explained.record is None
    assert "gpt-4o" in explained.nearest
