"""User-supplied patterns are matched by RE2 (linear time): a backtracking pattern cannot stall the server, and
what RE2 cannot do is refused with an error naming the field."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costline.catalog.langfuse import import_langfuse
from costline.catalog.patterns import MAX_PATTERN_LENGTH, PatternError, compile_pattern, regex_match
from costline.catalog.user_file import compile_price_data
from costline.core.resolve import PriceBook
from costline.errors import PriceDataError

AT = datetime(2026, 11, 1, tzinfo=UTC)
EVIL = "^(a+)+$"  # Python's re takes 2.5 s for 25 characters, doubling with each one more


def _entry(pattern: str) -> dict[str, object]:
    return {"model": "evil", "match": {"regex": pattern, "case_sensitive": True},
            "rates": {"input_tokens": 1, "output_tokens": 2}}


def test_a_backtracking_pattern_answers_at_once() -> None:
    """Resolve 40- and 4,000-character names against ``^(a+)+$`` from a price file, in a child process with a
    generous timeout: with Python's re the first alone would take about 2.5 s × 2**15 (a day)."""
    script = textwrap.dedent(f"""
        from datetime import UTC, datetime
        from costline.catalog.user_file import compile_price_data
        from costline.core.resolve import PriceBook
        book = PriceBook(compile_price_data({{"prices": [{_entry(EVIL)!r}]}}, "tenant"))
        at = datetime(2026, 11, 1, tzinfo=UTC)
        for n in (40, 4000):
            found = book.resolve("a" * n + "b", at=at)
            print(n, None if found is None else found.id)
        print("aaaa", book.resolve("aaaa", at=at).id)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["40 None", "4000 None", "aaaa user:tenant:evil"]


def test_user_patterns_are_compiled_by_re2() -> None:
    (record,) = compile_price_data({"prices": [_entry(EVIL)]}, "tenant")
    assert record.match.searcher is not None
    assert not isinstance(record.match.searcher, re.Pattern)


@pytest.mark.parametrize(("pattern", "why"), [
    (r"^(gpt)-\1$", "invalid escape sequence: \\1"),
    ("^gpt(?=-4)", "invalid perl operator: (?="),
    ("^(?!claude)", "invalid perl operator: (?!"),
    ("(?<=x)gpt", "invalid perl operator: (?<"),
    ("gpt(", "missing )"),
    ("a{1001}", "invalid repetition size"),
])
def test_unsupported_patterns_are_refused_naming_the_field(pattern: str, why: str) -> None:
    with pytest.raises(PriceDataError) as info:
        compile_price_data({"prices": [_entry(pattern)]}, "tenant.yaml")
    message = str(info.value)
    assert message.startswith(f"tenant.yaml: prices[0]: match.regex: {pattern!r} is not a pattern costline can use")
    assert why in message


def test_lookaround_error_says_why() -> None:
    with pytest.raises(PatternError, match=r"RE2, in linear time, which has no backreferences"):
        compile_pattern("(?=x)", case_sensitive=False, field="matchPattern")


def test_pattern_length_is_bounded() -> None:
    compile_pattern("a" * MAX_PATTERN_LENGTH, case_sensitive=True, field="f")
    with pytest.raises(PatternError, match=f"^f: the pattern is {MAX_PATTERN_LENGTH + 1} characters long; at most "):
        compile_pattern("a" * (MAX_PATTERN_LENGTH + 1), case_sensitive=True, field="f")


def test_case_flag_and_odd_names() -> None:
    insensitive = regex_match("^gpt-4o", case_sensitive=False, field="f")
    sensitive = regex_match("^gpt-4o", case_sensitive=True, field="f")
    assert insensitive.matches("GPT-4o-mini", "gpt-4o-mini")
    assert not sensitive.matches("GPT-4o-mini", "gpt-4o-mini")
    # JSON allows a lone surrogate in a model name: it is searched with it replaced, never an exception
    assert regex_match("^x.y$", case_sensitive=True, field="f").matches("x\ud800y", "x\ud800y")
    assert regex_match("é", case_sensitive=False, field="f").matches("MODÈLE-É", "modèle-é")


def test_langfuse_import_skips_a_lookaround_pattern_and_keeps_the_rest() -> None:
    tiers = [{"id": "t0", "name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
              "prices": {"input": Decimal("1E-6"), "output": Decimal("2E-6")}}]
    models = [{"id": "good", "modelName": "good", "matchPattern": "(?i)^good$", "pricingTiers": tiers},
              {"id": "look", "modelName": "look", "matchPattern": "^(?!bad)look", "pricingTiers": tiers}]
    got = import_langfuse(models, source_name="x")
    assert [r.model for r in got.records] == ["good"]
    reasons = dict(got.skipped)
    assert reasons["look"].startswith("matchPattern: '^(?!bad)look' is not a pattern costline can use "
                                      "(invalid perl operator: (?!)")
    assert PriceBook(got.records).resolve("GOOD", at=AT) is not None
