"""The one way text from outside becomes part of an SQL statement's text: a string literal written here.

Values reach the databases as bound parameters. A few things cannot be parameters: the key of a JSON path
(DuckDB's JSON functions want a constant path, and the query compiler writes one statement for both stores), a
time-zone name in ``AT TIME ZONE``, the file of DuckDB's ``COPY ... TO``. Those are written by
``Dialect.literal`` (``duckdb_literal``/``postgres_literal``) and nowhere else, so any text at all, quotes,
backslashes, comment marks, placeholders and dots included, stays one literal:

- DuckDB: a standard SQL literal with ``'`` doubled (DuckDB reads backslashes in it as themselves).
- PostgreSQL: an escape string ``E'...'`` whose text holds only letters, digits and ``_ - : . /`` and space;
  every other character is written ``\\UXXXXXXXX``. The statement text therefore never holds a quote, a
  backslash of the input, a ``?`` or a ``%`` (which the ``?`` → ``%s`` translation and psycopg would read),
  and the literal means the same whatever ``standard_conforming_strings`` is.
- NUL and lone surrogates are refused with ``SqlTextError`` (neither database can hold them in text).

A JSON key is addressed as one key, never parsed as a path: DuckDB gets a JSON Pointer (RFC 6901, ``/`` then
the key with ``~`` as ``~0`` and ``/`` as ``~1``; no other character is special in a pointer), PostgreSQL's
``->``/``->>`` take the key itself. A nested path is a tuple of keys, one pointer segment (or one ``->``) each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from costline.errors import CostlineError

#: characters PostgreSQL literals carry as they are; everything else is a \U escape
_PLAIN: Final = re.compile(r"[A-Za-z0-9_\-:./ ]")
_UNSAFE: Final = re.compile(r"[\x00\ud800-\udfff]")


class SqlTextError(CostlineError, ValueError):
    """Text no SQL literal can carry (NUL, a lone surrogate)."""


def check_text(text: str, what: str = "text") -> str:
    """``text`` when both databases can hold it in a string; else ``SqlTextError`` naming ``what``."""
    if not isinstance(text, str):
        raise SqlTextError(f"{what}: expected text, got {type(text).__name__}")
    bad = _UNSAFE.search(text)
    if bad is not None:
        raise SqlTextError(f"{what}: contains the character U+{ord(bad.group()):04X}, which cannot be stored")
    return text


def duckdb_literal(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + check_text(text).replace("'", "''") + "'"


def postgres_literal(text: str) -> str:
    """``text`` as a PostgreSQL escape-string literal made of safe characters and ``\\U`` escapes only."""
    check_text(text)
    return "E'" + "".join(c if _PLAIN.fullmatch(c) else f"\\U{ord(c):08X}" for c in text) + "'"


def json_pointer(keys: str | Sequence[str]) -> str:
    """The RFC 6901 pointer to ``keys`` (one key, or a nested path of keys), each taken literally."""
    path = (keys,) if isinstance(keys, str) else tuple(keys)
    if not path:
        raise SqlTextError("a JSON path needs at least one key")
    return "".join("/" + check_text(k, "JSON key").replace("~", "~0").replace("/", "~1") for k in path)
