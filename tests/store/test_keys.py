"""Key lifecycle in the store, on both backends: list with creation and last use, revoke, rotate; and the
server's key cache (server/auth.py) over a real store, with the monotonic clock passed in."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from costline.server import keys
from costline.server.auth import Authenticator, create_project, new_key
from costline.store.base import Store, StoreError

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


def test_keys_are_listed_with_creation_last_use_and_revocation(store: Store) -> None:
    first = create_project(store, "one", AT)
    second = keys.create_key(store, first.project.id, AT + timedelta(minutes=1))
    other = create_project(store, "two", AT + timedelta(minutes=2))
    listed = store.list_keys(first.project.id)
    assert [k.public_key for k in listed] == [first.public_key, second.key.public_key]
    assert [k.created_at for k in listed] == [AT, AT + timedelta(minutes=1)]
    assert all(k.last_used_at is None and k.revoked_at is None for k in listed)
    assert {k.public_key for k in store.list_keys()} == {first.public_key, second.key.public_key, other.public_key}

    store.touch_key(first.public_key, AT + timedelta(hours=1))
    store.touch_key(first.public_key, AT + timedelta(minutes=30))  # an older use does not move it back
    found = store.find_key_by_public(first.public_key)
    assert found is not None and found.last_used_at == AT + timedelta(hours=1)

    revoked = keys.revoke_key(store, second.key.public_key, AT + timedelta(hours=2))
    assert revoked.revoked_at == AT + timedelta(hours=2)
    assert not revoked.active(AT + timedelta(hours=2)) and revoked.active(AT + timedelta(hours=1))
    again = keys.revoke_key(store, second.key.public_key, AT + timedelta(hours=3))  # the earlier time stands
    assert again.revoked_at == AT + timedelta(hours=2)
    by_hash = store.find_key_by_secret_hash(second.key.secret_hash)
    assert by_hash is not None and by_hash.revoked_at == AT + timedelta(hours=2)
    as_json = keys.key_json(again, AT + timedelta(hours=3))
    assert as_json["active"] is False and "secret" not in str(as_json) and second.key.secret_hash not in str(as_json)


def test_rotation_adds_a_key_and_revokes_the_old_one_after_the_grace(store: Store) -> None:
    made = create_project(store, "one", AT)
    old, issued = keys.rotate_key(store, made.public_key, AT, timedelta(hours=1))
    assert issued.key.project_id == made.project.id and issued.secret_key.startswith("sk-cl-")
    assert old.revoked_at == AT + timedelta(hours=1)
    assert old.active(AT + timedelta(minutes=59)) and not old.active(AT + timedelta(hours=1))
    assert store.find_key_by_public(issued.key.public_key) is not None
    with pytest.raises(keys.KeyStateError, match="was revoked"):
        keys.rotate_key(store, made.public_key, AT + timedelta(hours=2))
    with pytest.raises(keys.KeyNotFoundError):
        keys.rotate_key(store, "pk-cl-nope", AT)
    with pytest.raises(keys.KeyNotFoundError):
        keys.revoke_key(store, "pk-cl-nope", AT)
    with pytest.raises(keys.KeyNotFoundError):
        keys.create_key(store, "no-such-project", AT)


def test_a_key_for_a_missing_project_is_refused_by_the_store(store: Store) -> None:
    create_project(store, "one", AT)
    key, _ = new_key("missing", AT)  # the store checks too, in the same transaction as the insert
    with pytest.raises(StoreError, match="no project"):
        store.create_key(key)
    assert all(k.project_id != "missing" for k in store.list_keys())


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800),
                                               (15, 15), (1.5, 1.5)])
def test_grace_periods(text: str | float, seconds: float) -> None:
    assert keys.parse_grace(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["1w", "-1h", "31d", "", "soon", True, None])
def test_bad_grace_periods_name_the_field(text: object) -> None:
    with pytest.raises(keys.KeyStateError, match="grace"):
        keys.parse_grace(text)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_trusts_a_lookup_for_its_ttl_only(store: Store) -> None:
    made = create_project(store, "one", AT)
    ticks = Ticks()
    wall = [AT]
    auth = Authenticator(store, lambda: wall[0], ttl_s=5.0, monotonic=ticks)
    header = basic(made.public_key, made.secret_key)
    assert auth.authenticate(header) is not None
    assert auth.authenticate(f"Bearer {made.secret_key}") is not None
    keys.revoke_key(store, made.public_key, AT)  # through the store, as another server would
    ticks.now += 4.9
    assert auth.fast(header)
    assert auth.authenticate(header) is not None  # still cached
    ticks.now += 0.2
    assert not auth.fast(header)  # the entry expired: the next call asks the store
    assert auth.authenticate(header) is None
    assert auth.authenticate(f"Bearer {made.secret_key}") is None
    assert auth.authenticate(basic(made.public_key, "sk-cl-wrong")) is None


def test_a_grace_period_ends_even_while_the_key_is_cached(store: Store) -> None:
    made = create_project(store, "one", AT)
    ticks = Ticks()
    wall = [AT]
    auth = Authenticator(store, lambda: wall[0], ttl_s=60.0, monotonic=ticks)
    keys.rotate_key(store, made.public_key, AT, timedelta(seconds=30))
    header = basic(made.public_key, made.secret_key)
    assert auth.authenticate(header) is not None
    wall[0] = AT + timedelta(seconds=30)
    assert auth.authenticate(header) is None


def test_last_use_is_written_at_most_once_a_minute(store: Store) -> None:
    made = create_project(store, "one", AT)
    ticks = Ticks()
    wall = [AT]
    auth = Authenticator(store, lambda: wall[0], ttl_s=0, monotonic=ticks)
    header = basic(made.public_key, made.secret_key)

    def last_used() -> datetime | None:
        found = store.find_key_by_public(made.public_key)
        assert found is not None
        return found.last_used_at

    assert last_used() is None
    auth.authenticate(header)
    assert last_used() == AT
    wall[0] = AT + timedelta(seconds=59)
    auth.authenticate(header)
    assert last_used() == AT  # not yet a minute: not written
    wall[0] = AT + timedelta(seconds=61)
    auth.authenticate(header)
    assert last_used() == AT + timedelta(seconds=61)
