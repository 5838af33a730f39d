"""How the SQL backends spell the few expressions they differ on (JSON access, epoch microseconds, list
operations, text order). The query compiler (``query_sql.py``) writes everything else once.

A JSON key, a zone name or any other text that must sit in the statement's text is written by ``literal``
(``store/sqltext.py``), never pasted in: ``column`` arguments are the compiler's own column names.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from costline.store import sqltext

#: a JSON key, or a nested path of keys (each taken literally)
JsonKey = str | tuple[str, ...]


class Dialect:
    """Expressions the SQL backends spell differently. Subclasses: ``DuckDBDialect``, ``PostgresDialect``."""

    #: whether user/session equality filters add an index-friendly condition (store/query_sql.py)
    narrow_by_index = False

    def literal(self, text: str) -> str:
        """``text`` as a string literal of this database: the only way text reaches a statement's text."""
        raise NotImplementedError

    def json_text(self, column: str, key: JsonKey) -> str:
        raise NotImplementedError

    def json_number(self, column: str, key: JsonKey) -> str:
        raise NotImplementedError

    def json_scalar(self, column: str, key: JsonKey) -> str:
        """``column``'s value under ``key`` as text when it is a string, number or boolean; NULL for an object
        or array (whose text the databases spell differently)."""
        raise NotImplementedError

    def keys_sum(self, column: str, keys: Sequence[str]) -> str:
        """The sum of ``column``'s JSON values under ``keys`` (NULL when none is there)."""
        raise NotImplementedError

    def epoch_us(self, column: str) -> str:
        raise NotImplementedError

    def month_start_us(self, local_us: str) -> str:
        raise NotImplementedError

    def idiv(self, a: str, b: str) -> str:
        raise NotImplementedError

    def tags_union(self, a: str, b: str) -> str:
        raise NotImplementedError

    def tags_agg(self, expr: str) -> str:
        """All tags of a group's rows in one list (duplicates allowed); migration 0002 defines the aggregate."""
        return f"costline_array_cat_agg({expr})"

    def percentile(self, fraction: Decimal, expr: str) -> str:
        return f"percentile_disc({Decimal(fraction):f}) WITHIN GROUP (ORDER BY {expr})"

    def one_of(self, expr: str) -> str:
        raise NotImplementedError

    def among(self, expr: str) -> str:
        """``expr`` in the list parameter, as a semi-join (for a long list against a large table)."""
        raise NotImplementedError

    def has_any(self, tags: str) -> str:
        raise NotImplementedError

    def has_all(self, tags: str) -> str:
        raise NotImplementedError

    def text_order(self, expr: str) -> str:
        return expr

    def native_bucket(self, granularity: str, column: str, zone: str) -> str | None:
        """The local bucket start as a timestamp, when the database converts time zones fast; None to bucket
        from the offset table instead (same wall-clock semantics either way)."""
        return None

    def double(self, expr: str) -> str:
        return f"CAST({expr} AS DOUBLE PRECISION)"


class DuckDBDialect(Dialect):
    def literal(self, text: str) -> str:
        return sqltext.duckdb_literal(text)

    def json_path(self, key: JsonKey) -> str:
        """The literal JSON Pointer to ``key`` (a pointer takes every character but ``~`` and ``/`` as itself)."""
        return self.literal(sqltext.json_pointer(key))

    def json_text(self, column: str, key: JsonKey) -> str:
        return f"json_extract_string({column}, {self.json_path(key)})"

    def json_number(self, column: str, key: JsonKey) -> str:
        return f"CAST({self.json_text(column, key)} AS DECIMAL(38, 12))"

    def json_scalar(self, column: str, key: JsonKey) -> str:
        # json_type parses the document again: ask it only when the text looks like an object or array
        # (the extraction is computed once; measured 0.45 s instead of 0.60 s over 10M rows)
        text = self.json_text(column, key)
        return (f"CASE WHEN left({text}, 1) IN ('{{', '[') AND json_type({column}, {self.json_path(key)}) IN "
                f"('OBJECT', 'ARRAY') THEN NULL ELSE {text} END")

    def keys_sum(self, column: str, keys: Sequence[str]) -> str:
        wanted = ", ".join(self.literal(k) for k in keys)
        pointer = "'/' || replace(replace(k, '~', '~0'), '/', '~1')"
        return (f"list_sum(list_transform(list_filter(json_keys({column}), lambda k: list_contains([{wanted}], k)), "
                f"lambda k: CAST(json_extract_string({column}, {pointer}) AS DECIMAL(38, 12))))")

    def epoch_us(self, column: str) -> str:
        return f"epoch_us({column})"

    def month_start_us(self, local_us: str) -> str:
        return f"epoch_us(date_trunc('month', make_timestamp({local_us})))"

    def idiv(self, a: str, b: str) -> str:
        return f"({a}) // ({b})"

    def tags_union(self, a: str, b: str) -> str:
        return f"list_concat({a}, COALESCE({b}, []::VARCHAR[]))"

    def one_of(self, expr: str) -> str:
        return f"list_contains(?::VARCHAR[], {expr})"

    def among(self, expr: str) -> str:  # a hash semi-join: ~3x faster than list_contains over 10^5 rows
        return f"{expr} IN (SELECT unnest(?::VARCHAR[]))"

    def has_any(self, tags: str) -> str:
        return f"list_has_any({tags}, ?::VARCHAR[])"

    def has_all(self, tags: str) -> str:
        return f"list_has_all({tags}, ?::VARCHAR[])"


class PostgresDialect(Dialect):
    narrow_by_index = True

    def literal(self, text: str) -> str:
        return sqltext.postgres_literal(text)

    def _get(self, column: str, key: JsonKey, last: str) -> str:
        """``column -> k1 -> ... {last} kn``, each key a literal."""
        path = (key,) if isinstance(key, str) else key
        if not path:
            raise sqltext.SqlTextError("a JSON path needs at least one key")
        steps = [f" -> {self.literal(k)}" for k in path[:-1]]
        return f"({column}{''.join(steps)} {last} {self.literal(path[-1])})"

    def json_text(self, column: str, key: JsonKey) -> str:
        return self._get(column, key, "->>")

    def json_number(self, column: str, key: JsonKey) -> str:
        return f"{self.json_text(column, key)}::numeric(38, 12)"

    def json_scalar(self, column: str, key: JsonKey) -> str:
        return (f"CASE WHEN jsonb_typeof({self._get(column, key, '->')}) IN ('object', 'array') THEN NULL "
                f"ELSE {self.json_text(column, key)} END")

    def keys_sum(self, column: str, keys: Sequence[str]) -> str:
        wanted = ", ".join(self.literal(k) for k in keys)
        return f"(SELECT sum(e.value::numeric(38, 12)) FROM jsonb_each_text({column}) e WHERE e.key IN ({wanted}))"

    def epoch_us(self, column: str) -> str:
        return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"

    def month_start_us(self, local_us: str) -> str:
        return (f"(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(({local_us}) / 1000000.0) AT TIME ZONE 'UTC'))"
                " * 1000000)::bigint")

    def idiv(self, a: str, b: str) -> str:
        return f"div({a}, {b})"

    def tags_union(self, a: str, b: str) -> str:
        return f"({a} || COALESCE({b}, '{{}}'::text[]))"

    def one_of(self, expr: str) -> str:
        return f"{expr} = ANY(?::text[])"

    def among(self, expr: str) -> str:
        return self.one_of(expr)

    def has_any(self, tags: str) -> str:
        return f"{tags} && ?::text[]"

    def has_all(self, tags: str) -> str:
        return f"{tags} @> ?::text[]"

    def text_order(self, expr: str) -> str:
        return f'{expr} COLLATE "C"'

    def native_bucket(self, granularity: str, column: str, zone: str) -> str | None:
        # the zone name was validated by zoneinfo (which PostgreSQL's zone names follow)
        return f"date_trunc({self.literal(granularity)}, {column} AT TIME ZONE {self.literal(zone)})"
