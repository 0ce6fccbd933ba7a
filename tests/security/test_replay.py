"""Replay stores: a token id is accepted once until it expires; SQLite is shared by processes, Redis by hosts."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest
import redis

from cds_service.errors import ConfigError
from cds_service.security.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStoreError,
    SqliteReplayStore,
    redis_client,
    redis_store,
    token_key,
)
from tests.servers import REDIS_URL, REPO, free_port, redis_or_require


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_token_keys_are_per_issuer_and_fixed_length():
    assert token_key("https://a", "1") != token_key("https://b", "1")
    assert token_key("https://a", "1") == token_key("https://a", "1")
    assert len(token_key("x" * 500, "y" * 500)) == 64
    # No ambiguity between where the issuer ends and the jti begins.
    assert token_key("ab", "c") != token_key("a", "bc")


def check_once_until_expiry(store, clock):
    key = token_key("https://a", str(uuid.uuid4()))
    assert store.first_use(key, clock.now + 300) is True
    assert store.first_use(key, clock.now + 300) is False
    clock.now += 301
    assert store.first_use(key, clock.now + 300) is True


def test_memory_store():
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    check_once_until_expiry(store, clock)
    assert store.shared is False


def test_memory_store_forgets_expired_ids():
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    for minute in range(10):
        for i in range(1000):
            store.first_use(f"{minute}-{i}", clock.now + 10)
        clock.now += 11
    assert len(store._seen) <= 2048  # 10,000 ids seen, at most 1,000 of them alive at once


def test_sqlite_store(tmp_path):
    clock = Clock()
    check_once_until_expiry(SqliteReplayStore(tmp_path / "replay.sqlite3", clock=clock), clock)


def test_sqlite_store_is_shared_by_two_workers(tmp_path):
    path = tmp_path / "var" / "replay.sqlite3"
    worker_1, worker_2 = SqliteReplayStore(path), SqliteReplayStore(path)
    key = token_key("https://a", "jti-1")
    assert worker_1.first_use(key, 4_000_000_000) is True
    assert worker_2.first_use(key, 4_000_000_000) is False
    # And by another process, as gunicorn's workers are.
    code = ("import sys; from pathlib import Path; from cds_service.security.replay import SqliteReplayStore;"
            "print(SqliteReplayStore(Path(sys.argv[1])).first_use(sys.argv[2], 4e9))")
    other = subprocess.run([sys.executable, "-c", code, str(path), key], cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=True)
    assert other.stdout.strip() == "False"


def test_sqlite_store_lets_exactly_one_of_many_threads_through(tmp_path):
    store = SqliteReplayStore(tmp_path / "replay.sqlite3")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(store.first_use("same-id", 4_000_000_000))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_sqlite_store_in_an_unwritable_place_stops_the_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="CDS_REPLAY_DB"):
        SqliteReplayStore(blocker / "sub" / "replay.sqlite3")


# --- Redis (the real one on this machine) -------------------------------------------------------------

@pytest.fixture
def redis_prefix():
    client = redis_or_require()  # fails under CI, skips elsewhere, when Redis does not answer
    prefix = f"dexfree-test-{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.mark.integration
def test_redis_store(redis_prefix):
    clock = Clock()
    store = redis_store(REDIS_URL, prefix=redis_prefix, clock=clock)
    key = token_key("https://a", "jti-1")
    assert store.first_use(key, clock.now + 300) is True
    assert store.first_use(key, clock.now + 300) is False
    # Another replica with its own connection sees it too.
    assert redis_store(REDIS_URL, prefix=redis_prefix).first_use(key, clock.now + 300) is False
    ttl = redis.Redis.from_url(REDIS_URL).ttl(redis_prefix + key)
    assert 290 <= ttl <= 300


class RecordingRedis:
    """Stands for redis.Redis: records each SET and answers as SET NX does (None when the key exists)."""

    def __init__(self):
        self.sets: list[tuple[str, bytes, bool, int]] = []

    def set(self, name, value, nx=False, ex=None):
        known = any(key == name for key, *_ in self.sets)
        self.sets.append((name, value, nx, ex))
        return None if nx and known else True


@pytest.mark.parametrize(("expires_in", "ttl"), [
    (300, 300), (299.2, 300),  # whole seconds, rounded up: an id is never forgotten before its token expires
    (0.4, 1), (0, 1), (-50, 1),  # (nearly) expired: the minimum Redis accepts, one second, not forever
])
def test_redis_store_keeps_an_id_as_long_as_its_token_lives(expires_in, ttl):
    clock, client = Clock(), RecordingRedis()
    store = RedisReplayStore(client, prefix="p:", clock=clock)
    assert store.first_use("k", clock.now + expires_in) is True
    assert store.first_use("k", clock.now + expires_in) is False
    # SET NX with the expiry (not a SET that would overwrite, nor one without EX that would keep it forever).
    assert client.sets == [("p:k", b"1", True, ttl)] * 2


def test_unreachable_redis_stops_the_start_without_its_password():
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError, match="Redis cannot be reached") as raised:
        redis_store(url)
    assert "hunter2-secret" not in str(raised.value)


def test_redis_going_down_is_a_store_error_not_an_acceptance():
    store = RedisReplayStore(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(ReplayStoreError):
        store.first_use("k", 4e9)
