"""Storage: one ``Store`` protocol, one module per backend, chosen by URL scheme and imported lazily.

``open_store("duckdb:///path/costline.duckdb")`` or ``open_store("postgresql://user@host/db")``.
"""

from __future__ import annotations

from costline.store.base import (
    ApiKey,
    AuditEntry,
    Project,
    Store,
    StoredPrice,
    open_store,
)

__all__ = ["ApiKey", "AuditEntry", "Project", "Store", "StoredPrice", "open_store"]
