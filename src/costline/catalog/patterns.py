"""Regular expressions that come from users, compiled by RE2 so that matching takes linear time.

Python's ``re`` backtracks: the pattern ``^(a+)+$`` takes 2.5 s on a 25-character name and twice as long with
each character more, holding the GIL all the while, so one project's price could stall every request of the
server. RE2 (google-re2) matches in time linear in the name whatever the pattern; it has no backreferences
(``\\1``) and no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), which a model-name pattern does not need.

Every pattern a user supplies goes through here: ``match.regex`` of price files and of project prices
(``POST /api/public/models``), ``matchPattern`` and ``usageDetailPattern`` of Langfuse model definitions
(imported files and the models API). The bundled genai-prices catalog is trusted package data and keeps
Python's ``re`` (one of its patterns uses a lookahead). A pattern is at most ``MAX_PATTERN_LENGTH`` characters.
"""

from __future__ import annotations

from typing import Any, Final

import re2

from costline.core.price import Match, Searcher
from costline.errors import PriceDataError

#: longest pattern accepted (characters); Langfuse's own model patterns are under 200
MAX_PATTERN_LENGTH: Final = 1000
#: RE2's memory budget for one compiled pattern (bytes): a pattern whose automaton needs more is refused
MAX_PATTERN_MEMORY: Final = 8 << 20
_SHOWN: Final = 80


class PatternError(PriceDataError):
    """A user-supplied pattern costline will not use; the message starts with the field's name."""


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= _SHOWN else pattern[:_SHOWN] + "…")


def compile_pattern(pattern: str, *, case_sensitive: bool, field: str) -> Searcher:
    """``pattern`` compiled by RE2 (searched anywhere in the text, like ``re.search``).

    Raises:
        PatternError: naming ``field``, when the pattern is too long or RE2 cannot compile it (backreferences,
            lookaround, other Perl-only syntax, or an automaton above ``MAX_PATTERN_MEMORY``).
    """
    if not isinstance(pattern, str):
        raise PatternError(f"{field}: expected a regular expression as a string, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"{field}: the pattern is {len(pattern)} characters long; at most "
                           f"{MAX_PATTERN_LENGTH} are accepted")
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    options.max_mem = MAX_PATTERN_MEMORY
    try:
        compiled = re2.compile(pattern, options)
    except (re2.error, UnicodeError) as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if len(reason) > _SHOWN:
            reason = reason[:_SHOWN] + "…"
        hint = ""
        if "perl operator" in reason or "escape sequence" in reason:
            hint = ("; costline matches names with RE2, in linear time, which has no backreferences (\\1) or "
                    "lookaround ((?=, (?!, (?<=, (?<!)")
        raise PatternError(f"{field}: {_shown(pattern)} is not a pattern costline can use ({reason}){hint}") from None
    return _Re2Searcher(compiled)


class _Re2Searcher:
    """An RE2 pattern searched in UTF-8 bytes: no offsets to map back, and a name with a lone surrogate (which
    JSON allows) is searched with it replaced instead of raising."""

    __slots__ = ("_compiled",)

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled

    def search(self, text: str) -> object | None:
        found: object | None = self._compiled.search(text.encode("utf-8", "replace"))
        return found


def regex_match(pattern: str, *, case_sensitive: bool, field: str) -> Match:
    """A ``regex`` match rule for a user-supplied pattern, compiled by RE2 (``compile_pattern``)."""
    searcher = compile_pattern(pattern, case_sensitive=case_sensitive, field=field)
    return Match("regex", pattern, case_sensitive=case_sensitive, searcher=searcher)
