"""The ``Store`` protocol every backend implements, its records, and ``open_store``.

Writes are idempotent by (project, id) and durable when the call returns (the transaction has committed),
so a 2xx sent after a write means the data survives a crash. Money columns are DECIMAL(38,12) / NUMERIC and
come back as ``Decimal``. Backends are synchronous; the server calls them from a thread pool.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from costline.core.duplicates import CallLink
from costline.core.enforce import CounterUsage
from costline.core.events import Observation, Score, Trace
from costline.core.query import Query, QueryResult
from costline.errors import CostlineError

T = TypeVar("T")

#: ``Store.merge_write``'s callback: (stored observations by id, stored traces by id) → the rows to write
Merge = Callable[
    [Mapping[str, Observation], Mapping[str, Trace]], tuple[Sequence[Observation], Sequence[Trace]]
]

#: scheme → module implementing ``connect(url) -> Store``
BACKENDS: Mapping[str, str] = {
    "duckdb": "costline.store.duckdb",
    "postgresql": "costline.store.postgres",
    "postgres": "costline.store.postgres",
}


#: ``Store.list_observations`` filters → the observation column each one is compared with (``=``)
OBSERVATION_FILTERS: Mapping[str, str] = MappingProxyType({
    "model": "model", "user": "user_id", "session": "session_id", "trace_id": "trace_id", "name": "name",
    "type": "type", "status": "pricing_status",
})


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; a directory it creates is 0700 (owner only: it holds the
    store and server.json with the admin token). An existing directory keeps its mode."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask; this does not
    return path


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``postgresql://user:***@host/db``, ``password=***``), for
    banners, logs and messages."""
    url = re.sub(r"(://[^:/@?\s]*:)[^@/?\s]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)


class StoreError(CostlineError):
    """The store could not be opened or a write failed; the message says what to do."""


class UnstorableTextError(CostlineError, ValueError):
    """A value the request sent holds text the store cannot keep (a NUL character): the request's fault."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: a text value contains a NUL character (\\u0000), which the store cannot hold; "
                         "nothing was stored")


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: datetime
    retention_days: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    project_id: str
    public_key: str
    #: sha256 hex digest of the secret key (secrets are 32 random bytes, so a fast hash is enough)
    secret_hash: str
    created_at: datetime
    #: when a server last accepted it (recorded at most once a minute per key and server); None: never
    last_used_at: datetime | None = None
    #: when it stops (stopped) working; a rotation with a grace period sets a future time; None: not revoked
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None or self.revoked_at > now


@dataclass(frozen=True, slots=True)
class StoredPrice:
    """A user price kept in the store (the Langfuse models API writes these): a costline price-file entry as
    JSON (see docs/prices.md), scoped to a project."""

    project_id: str
    id: str
    entry: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    kind: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ControlObject:
    """A budget, alert rule or channel: its validated spec (docs/budgets.md, docs/alerts.md) and where it came
    from (``api``, ``cli``, ``file:<path>``)."""

    project_id: str
    kind: str
    id: str
    spec: Mapping[str, Any]
    source: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on budget counters for a call not yet recorded; live until ``expires_at`` or its release."""

    project_id: str
    id: str
    counters: tuple[str, ...]
    amount: Decimal
    created_at: datetime
    expires_at: datetime
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AlertState:
    project_id: str
    rule_id: str
    subject: str
    state: Mapping[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    project_id: str
    id: str
    at: datetime
    rule_id: str
    channel: str
    status: str
    entry: Mapping[str, Any]


class Store(Protocol):
    """Persistence for projects, keys, observations, traces, scores, user prices and audit entries."""

    url: str

    def migrate(self) -> list[str]:
        """Apply pending named migrations in order, each in its own transaction; return the names applied."""
        ...

    def close(self) -> None: ...

    # projects and keys ------------------------------------------------------------------------------
    def create_project(self, project: Project, key: ApiKey) -> None: ...

    def list_projects(self) -> list[Project]: ...

    def get_project(self, project_id: str) -> Project | None: ...

    def find_key_by_public(self, public_key: str) -> ApiKey | None: ...

    def find_key_by_secret_hash(self, secret_hash: str) -> ApiKey | None: ...

    def list_keys(self, project_id: str | None = None) -> list[ApiKey]:
        """Every key (revoked ones too) with its last use and revocation time, by project and creation."""
        ...

    def create_key(self, key: ApiKey) -> None:
        """Add a key to an existing project (``StoreError`` when there is no such project)."""
        ...

    def revoke_key(self, public_key: str, at: datetime) -> ApiKey | None:
        """Make the key stop working at ``at`` (an earlier revocation stands); the stored key, or None."""
        ...

    def rotate_key(self, public_key: str, new_key: ApiKey, revoke_at: datetime) -> None:
        """Add ``new_key`` and make ``public_key`` stop working at ``revoke_at``, in one transaction."""
        ...

    def touch_key(self, public_key: str, at: datetime) -> None:
        """Record a use of the key at ``at`` (a later recorded use stands)."""
        ...

    # writes (each call is one transaction, committed before it returns) ----------------------------
    def get_observations(self, project_id: str, ids: Sequence[str]) -> dict[str, Observation]: ...

    def get_traces(self, project_id: str, ids: Sequence[str]) -> dict[str, Trace]: ...

    def write(
        self,
        observations: Sequence[Observation] = (),
        traces: Sequence[Trace] = (),
        scores: Sequence[Score] = (),
    ) -> None:
        """Upsert all of them in ONE transaction: a row with the same (project_id, id) is replaced."""
        ...

    def write_linked(self, observations: Sequence[Observation], scores: Sequence[Score], project_id: str,
                     trace_ids: Sequence[str]) -> list[str]:
        """``write(observations, (), scores)``, then the ids among ``trace_ids`` (of ``project_id``) of the traces
        holding an observation with a parent, read once the write has committed: the first read of the duplicate
        check (``traces_observations(linked_only=True)``), which DuckDB makes in the write's last statement."""
        ...

    def write_prepared(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                       trace_ids: Sequence[str], dirty_traces: Sequence[str] = ()) -> list[str] | None:
        """Insert new observations and traces of ``project_id`` given as the store's own JSON batches (built by a
        worker process: server/ingest_workers.py), the hours the observations start in (UTC, epoch seconds) and
        the new traces that attribute a user or metadata, marking both dirty for the rollups, then read what
        ``write_linked`` reads for ``trace_ids``. None, with nothing
        written, when one of the keys is already stored or the store takes no prepared batches (PostgreSQL):
        the caller then writes the objects."""
        ...

    def write_prepared_traces(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                              trace_ids: Sequence[str], traces_of: Sequence[str],
                              merge: Callable[[Mapping[str, Trace]], Sequence[Trace]]) -> list[str] | None:
        """``write_prepared`` of new observations (``payloads``: their batches only) whose traces may be stored:
        in the same transaction the stored traces among ``traces_of`` are read, ``merge`` gives the traces to
        write (new ones inserted, stored ones replaced, changes marked for the rollups), then what
        ``write_linked`` reads for ``trace_ids``. None, with nothing written, when an observation is already
        stored or the store takes no prepared batches."""
        ...

    def merge_write(
        self,
        project_id: str,
        observation_ids: Sequence[str],
        trace_ids: Sequence[str],
        merge: Merge,
        scores: Sequence[Score] = (),
    ) -> tuple[Sequence[Observation], Sequence[Trace]]:
        """Read-merge-write as one step per id, in ONE transaction: lock the named observation and trace ids
        of the project (another ``merge_write`` naming one of them waits until this one commits, on every
        server sharing the database), read their stored rows, call ``merge`` with them, and write the rows it
        returns plus ``scores``. Returns what ``merge`` returned. ``merge`` must not call the store."""
        ...

    # reads -------------------------------------------------------------------------------------------
    def trace_observations(self, project_id: str, trace_id: str) -> list[Observation]: ...

    def traces_observations(self, project_id: str, trace_ids: Sequence[str],
                            linked_only: bool = False) -> list[Observation]:
        """The observations of several traces of one project, in (trace id, start_time, id) order. With
        ``linked_only``, only of the traces holding an observation with a parent (the others hold no
        ancestor/descendant pair: what the duplicate check looks for)."""
        ...

    def trace_calls(self, project_id: str, trace_ids: Sequence[str], linked_only: bool = False) -> list[CallLink]:
        """``traces_observations`` as the duplicate check reads it (``core/duplicates.py``): the columns its rule
        reads, the input and output token counts for the usage; in no particular order."""
        ...

    def count_observations(self, project_id: str | None = None) -> int: ...

    def iter_observations(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        project_id: str | None = None,
        model_like: str | None = None,
        batch_size: int = 10_000,
        type_is: str | None = None,
    ) -> Iterator[Observation]:
        """Observations with ``start <= start_time < end``, ``model`` matching the SQL LIKE pattern, in
        (start_time, id) order, fetched in batches."""
        ...

    def list_observations(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        filters: Mapping[str, str] = MappingProxyType({}),
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Observation]:
        """The project's observations with ``start <= start_time < end``, each filter (a name from
        ``OBSERVATION_FILTERS``) equal to its value on the observation row itself, newest first by
        (start_time, id), strictly before the ``before`` key; at most ``limit``."""
        ...

    def query(self, query: Query) -> QueryResult:
        """Answer a query of the core query model; every backend gives the same rows, sums exact."""
        ...

    # user prices -------------------------------------------------------------------------------------
    def put_price(self, price: StoredPrice) -> None: ...

    def get_price(self, project_id: str, price_id: str) -> StoredPrice | None: ...

    def list_prices(self, project_id: str | None = None) -> list[StoredPrice]: ...

    def delete_price(self, project_id: str, price_id: str) -> bool: ...

    # maintenance -------------------------------------------------------------------------------------
    def add_audit(self, kind: str, details: Mapping[str, Any], at: datetime) -> None: ...

    def list_audit(self, kind: str | None = None) -> list[AuditEntry]: ...

    def purge(self, before: datetime, project_id: str | None = None) -> int:
        """Delete observations (and scores) that started before ``before`` and traces left without any;
        return the number of observations deleted."""
        ...


    def replace_groups(self, project_id: str, group_ids: Sequence[str], observations: Sequence[Observation]) -> int:
        """In ONE transaction: delete the project's ``cloud`` observations whose trace id is one of
        ``group_ids`` (imported billing periods), then write ``observations``; return the number deleted."""
        ...

    # budgets, alert rules and channels (store/control_sql.py) -----------------------------------------------
    def put_control(self, obj: ControlObject) -> None: ...

    def replace_control(self, project_id: str, source: str, objects: Sequence[ControlObject]) -> int: ...

    def get_control(self, project_id: str, kind: str, object_id: str) -> ControlObject | None: ...

    def list_control(self, kind: str, project_id: str | None = None) -> list[ControlObject]: ...

    def delete_control(self, project_id: str, kind: str, object_id: str) -> bool: ...

    def reserve(
        self,
        project_id: str,
        counters: Sequence[tuple[str, Query]],
        decide: Callable[[Mapping[str, CounterUsage]], tuple[T, Reservation | None]],
        now: datetime,
    ) -> T:
        """Atomically: lock the counters, read their usage in one snapshot, decide, write the reservation."""
        ...

    def get_reservation(self, project_id: str, reservation_id: str) -> Reservation | None: ...

    def release_reservations(self, project_id: str, ids: Sequence[str]) -> int: ...

    def purge_reservations(self, before: datetime) -> int: ...

    def set_user_tier(self, project_id: str, user_id: str, tier: str | None, now: datetime) -> None: ...

    def get_user_tier(self, project_id: str, user_id: str) -> str | None: ...

    def list_user_tiers(self, project_id: str, tier: str | None = None) -> dict[str, str]: ...

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew a named lease; False while another holder's is running (one server runs the job)."""
        ...

    def get_alert_states(self, project_id: str, rule_id: str | None = None) -> list[AlertState]: ...

    def put_alert_states(self, states: Sequence[AlertState]) -> None: ...

    def add_delivery(self, entry: DeliveryEntry) -> None: ...

    def list_deliveries(self, project_id: str, *, rule_id: str | None = None,
                        limit: int = 100) -> list[DeliveryEntry]: ...


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store at ``url`` (``duckdb:///path``, ``postgresql://...``) and apply pending migrations."""
    scheme = url.split(":", 1)[0].lower()
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        known = ", ".join(sorted({f"{s}://" for s in BACKENDS}))
        raise StoreError(f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}; use one of {known}")
    module = importlib.import_module(module_name)
    store: Store = module.connect(url)
    if migrate:
        store.migrate()
    return store
