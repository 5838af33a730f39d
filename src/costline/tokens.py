"""Token counting for cost estimates before a request is sent.

OpenAI models are counted exactly with the encoding they use (``o200k_base`` or ``cl100k_base``), from the
``bpe-openai`` package, which ships both encodings (nothing is downloaded). Every other model is counted
with ``o200k_base`` as an approximation and the result says so (``exact=False``): other vendors' tokenizers
are not public or not shipped, and a modern BPE vocabulary is a closer guess than characters / 4.

Text is encoded as ordinary text: special-token strings such as ``<|endoftext|>`` are counted as the
characters they are, never rejected. Long text is encoded in pieces cut only where the tokenizer's own
pre-tokenization has a boundary, so the count is the same as encoding the whole text at once.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

O200K: Final = "o200k_base"
CL100K: Final = "cl100k_base"

#: The encoding used to approximate models whose tokenizer is not shipped.
APPROXIMATION: Final = O200K

_O200K_MODEL = re.compile(r"^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o[134](?:-|$))")
_CL100K_MODEL = re.compile(r"^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-3-|text-embedding-ada-002)")

# ``bpe_openai.Encoding.encode*`` refuses text of 1,000,000 characters or more, and results above 200,000
# tokens. A character is at most 4 UTF-8 bytes and a token at least 1 byte, so a piece of 50,000 characters
# is at most 200,000 tokens.
_MAX_PIECE: Final = 50_000
_FORCED_CUT: Final = f"text cut without a token boundary (no whitespace in {_MAX_PIECE:,} characters)"

# OpenAI chat framing, from the OpenAI cookbook "How to count tokens with tiktoken"
# (https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken, ``num_tokens_from_messages``):
# every message costs 3 tokens (<|start|>{role/name}\n{content}<|end|>\n), a ``name`` 1 more, and every reply
# is primed with <|start|>assistant<|message|>, 3 tokens.
TOKENS_PER_MESSAGE: Final = 3
TOKENS_PER_NAME: Final = 1
REPLY_PRIMING_TOKENS: Final = 3


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was obtained."""

    tokens: int
    #: True only for OpenAI models whose encoding is shipped
    exact: bool
    #: the encoding used (``o200k_base``, ``cl100k_base``), or None when no encoding was used
    encoding: str | None
    #: a human label: ``exact (o200k_base)``, ``estimate: o200k_base used as an approximation for ...``
    method: str


def _bare_model_name(model: str) -> str:
    """``openai/gpt-4o`` → ``gpt-4o``, ``azure/gpt-4.1`` → ``gpt-4.1``, ``ft:gpt-4o:org::x`` → ``gpt-4o``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = name.removeprefix("ft:")
    return name.removeprefix("openai.")  # Bedrock: openai.gpt-oss-120b-1:0


def encoding_for_model(model: str) -> str | None:
    """The encoding an OpenAI model uses, or None for any other model (routing prefixes are ignored)."""
    name = _bare_model_name(model)
    if _O200K_MODEL.match(name):
        return O200K
    if _CL100K_MODEL.match(name):
        return CL100K
    return None


@cache
def _encoding(name: str) -> Any:
    # imported on first use: loading the encodings takes over a second, which `import costline` must not pay
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 loads its data with importlib.resources.open_binary, deprecated since Python 3.11;
        # the DeprecationWarning is about its code, not ours, and must not fail programs run with -W error.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(name)


# Safe cut positions (see ``_split_points``). Python's ``\s`` is a superset of Unicode White_Space (the
# tokenizer's ``\s``), so "not ``\s``" here is never whitespace to the tokenizer either.
_CUT = re.compile(r"(?<=\S)(?= \S)|(?<=[\r\n])(?=[^\s/])")


def _split_points(text: str) -> list[tuple[int, bool]]:
    """Where to cut ``text`` into pieces of at most ``_MAX_PIECE`` characters: (position, at a boundary).

    Both encodings' pre-tokenization (tiktoken's regexes) starts a new pre-token (1) at a space between two
    non-whitespace characters (``word word`` → ``word`` + `` word``) and (2) after a newline followed by a
    character other than whitespace or ``/``. BPE never merges across pre-tokens, so the pieces' counts add
    up to the count of the whole. A stretch of ``_MAX_PIECE`` characters with no such point is cut anyway
    (flagged False: the count can then be off by a token at that cut).
    """
    cuts: list[tuple[int, bool]] = []
    start = 0
    while len(text) - start > _MAX_PIECE:
        limit = start + _MAX_PIECE
        window = text[start : limit + 2]  # the lookahead of a cut at ``limit`` needs two more characters
        last = 0
        for m in _CUT.finditer(window):
            if m.start() > _MAX_PIECE:
                break
            last = m.start()
        cut = start + last if last > 0 else limit
        cuts.append((cut, last > 0))
        start = cut
    return cuts


def _count(text: str, encoding: str) -> tuple[int, bool]:
    """(token count, True unless a piece had to be cut without a pre-token boundary)."""
    enc = _encoding(encoding)
    if len(text) <= _MAX_PIECE:
        return len(enc.encode_ordinary(text)), True
    total = 0
    clean = True
    start = 0
    for cut, at_boundary in _split_points(text):
        clean = clean and at_boundary
        total += len(enc.encode_ordinary(text[start:cut]))
        start = cut
    total += len(enc.encode_ordinary(text[start:]))
    return total, clean


def count_tokens(text: str, model: str) -> TokenCount:
    """Tokens of ``text`` for ``model``: exact for OpenAI models, an ``o200k_base`` estimate otherwise."""
    encoding = encoding_for_model(model)
    if encoding is None:
        tokens, _ = _count(text, APPROXIMATION)
        return TokenCount(
            tokens, False, APPROXIMATION, f"estimate: {APPROXIMATION} used as an approximation for {model}"
        )
    tokens, clean = _count(text, encoding)
    if clean:
        return TokenCount(tokens, True, encoding, f"exact ({encoding})")
    return TokenCount(tokens, False, encoding, f"estimate: {encoding}, {_FORCED_CUT}")


def count_chat_tokens(messages: Sequence[Mapping[str, str]], model: str) -> TokenCount:
    """Prompt tokens of chat ``messages`` (``{"role": ..., "content": ..., "name": ...}``) with OpenAI's
    framing: the text of every value, plus 3 tokens per message, 1 per ``name``, and 3 for the reply."""
    base = count_tokens("", model)  # which encoding, and how it is labelled
    tokens = REPLY_PRIMING_TOKENS
    exact = base.exact
    for message in messages:
        tokens += TOKENS_PER_MESSAGE
        for key, value in message.items():
            counted = count_tokens(value, model)
            tokens += counted.tokens
            exact = exact and counted.exact
            if key == "name":
                tokens += TOKENS_PER_NAME
    method = base.method if exact == base.exact else f"estimate: {base.encoding}, {_FORCED_CUT}"
    framing = (
        f"{TOKENS_PER_MESSAGE} per message, {TOKENS_PER_NAME} per name, {REPLY_PRIMING_TOKENS} for the reply"
    )
    return TokenCount(tokens, exact, base.encoding, f"{method}; OpenAI chat framing ({framing})")
