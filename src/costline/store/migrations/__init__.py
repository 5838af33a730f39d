"""Named, ordered SQL migrations, one folder per backend (``duckdb/``, ``postgres/``), shipped as package data.

A migration is a file ``NNNN_short_name.sql``; it is applied once, in name order, in its own transaction, and
its name (without ``.sql``) is recorded in ``schema_migrations``. The backends run them; this module only
finds and orders them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import resources

NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: The bookkeeping table, created by the runner before it reads which migrations are applied.
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    number: int
    sql: str


def load_migrations(backend: str) -> list[Migration]:
    """The migrations for ``backend`` ("duckdb" or "postgres") in name order.

    Raises:
        ValueError: a ``.sql`` file whose name is not ``NNNN_name.sql``.
    """
    folder = resources.files(__name__).joinpath(backend)
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {backend}/{entry.name} must be named NNNN_lower_snake_name.sql")
        found.append(Migration(entry.name.removesuffix(".sql"), int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.name)


def pending_migrations(migrations: Sequence[Migration], applied: Collection[str]) -> list[Migration]:
    return [m for m in migrations if m.name not in applied]
