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
    with pytest.raises(ReplayStoreError, match=r"^redis: ConnectionError$"):  # the kind of failure, for the log
        store.first_use("k", 4e9)


# --- the store contract at its edges (each test kills mutants that `make mutation` found alive) ----------

@pytest.mark.parametrize("make", [
    lambda tmp_path, clock: MemoryReplayStore(clock=clock),
    lambda tmp_path, clock: SqliteReplayStore(tmp_path / "replay.sqlite3", clock=clock),
], ids=["memory", "sqlite"])
def test_an_id_is_kept_until_its_expiry_and_not_a_second_longer(tmp_path, make):
    clock = Clock()
    store = make(tmp_path, clock)
    assert store.first_use("k", clock.now + 300) is True
    clock.now += 299.5
    assert store.first_use("k", clock.now + 300) is False  # still alive half a second before
    clock.now = 1_000_300.0
    assert store.first_use("k", clock.now + 300) is True  # gone at its expiry itself


@pytest.mark.parametrize("start", [0.0, 0.5])
def test_an_unseen_id_is_a_first_use_whatever_the_clock(start):
    clock = Clock()
    clock.now = start
    assert MemoryReplayStore(clock=clock).first_use("k", start + 300) is True


def test_the_memory_store_purges_at_1024_ids_and_then_at_twice_the_live_ones():
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    for i in range(1024):  # expiring exactly now + 10: gone at that instant
        store.first_use(f"old-{i}", clock.now + 10)
    assert len(store._seen) == 1024
    clock.now += 10
    store.first_use("new", clock.now + 10)  # the 1025th call finds 1024 ids: purges before adding
    assert (len(store._seen), store._purge_at) == (1, 1024)  # never below 1024
    for i in range(1023):
        store.first_use(f"live-{i}", clock.now + 1000)
    store.first_use("one-more", clock.now + 1000)  # 1024 live ids: purge keeps them all
    assert (len(store._seen), store._purge_at) == (1025, 2048)


def test_describe_says_what_each_store_shares():
    assert MemoryReplayStore().describe() == "memory (this process only)"
    assert RedisReplayStore(RecordingRedis()).describe() == "redis (shared by every worker and replica)"


def test_the_sqlite_store_creates_its_folders(tmp_path):
    path = tmp_path / "var" / "lib" / "dexfree" / "replay.sqlite3"
    assert SqliteReplayStore(path).first_use("k", 4e9) is True
    assert path.is_file()
    assert SqliteReplayStore(path).describe() == f"sqlite {path} (shared by this host's workers)"


def test_the_sqlite_store_keeps_one_connection_per_thread(tmp_path):
    store = SqliteReplayStore(tmp_path / "replay.sqlite3")
    mine = store._connect()
    assert store._connect() is mine  # not a new connection (and its pragmas) for every token
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(store._connect()))
    thread.start()
    thread.join()
    assert other[0] is not mine


def test_a_failed_sqlite_transaction_is_rolled_back_and_the_store_recovers(tmp_path):
    import sqlite3

    path = tmp_path / "replay.sqlite3"
    store = SqliteReplayStore(path)
    assert store.first_use("before", 4e9) is True
    other = sqlite3.connect(path, isolation_level=None)
    # The INSERT inside the store's transaction fails (as a full disk would make it).
    other.execute("CREATE TRIGGER refuse BEFORE INSERT ON seen_jti BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(ReplayStoreError, match=r"^sqlite: disk trouble$"):
        store.first_use("k", 4e9)
    other.execute("DROP TRIGGER refuse")
    other.close()
    # Had the failed transaction been left open, every later BEGIN on this thread would fail too.
    assert store.first_use("k", 4e9) is True


class PingingRedis(RecordingRedis):
    """A Redis that answers PING (or fails it with `error`), standing in for the real one in unit tests."""

    def __init__(self, error: Exception | None = None):
        super().__init__()
        self.error = error

    def ping(self):
        if self.error:
            raise self.error
        return True


def test_redis_store_wires_its_client_prefix_clock_and_redacted_label(monkeypatch):
    client, clock, urls = PingingRedis(), Clock(), []
    monkeypatch.setattr("cds_service.security.replay.redis_client", lambda url: urls.append(url) or client)
    store = redis_store("redis://:hunter2-secret@cache.internal:6380/2", prefix="px:", clock=clock)
    assert urls == ["redis://:hunter2-secret@cache.internal:6380/2"]
    assert store.describe() == "redis redis://:***@cache.internal:6380/2 (shared by every worker and replica)"
    assert store.first_use("k", clock.now + 120) is True
    assert client.sets == [("px:k", b"1", True, 120)]  # its prefix, and TTL from its clock


def test_the_default_prefix_is_shared_by_every_version(monkeypatch):
    # Replicas of two releases during a rolling deploy must see each other's ids: the prefix is fixed.
    client = PingingRedis()
    monkeypatch.setattr("cds_service.security.replay.redis_client", lambda url: client)
    redis_store("redis://127.0.0.1:6379/0").first_use("k", 4e9)
    RedisReplayStore(client).first_use("k", 4e9)
    assert [name for name, *_ in client.sets] == ["dexfree:jti:k", "dexfree:jti:k"]


def test_unreachable_redis_says_why_without_the_password(monkeypatch):
    error = redis.ConnectionError("Error 111 connecting to cache.internal:6380. Connection refused.")  # redis-py's
    monkeypatch.setattr("cds_service.security.replay.redis_client", lambda url: PingingRedis(error))
    with pytest.raises(ConfigError) as raised:
        redis_store("redis://:hunter2-secret@cache.internal:6380/2")
    assert str(raised.value) == (
        "CDS_REDIS_URL=redis://:***@cache.internal:6380/2: Redis cannot be reached "
        "(ConnectionError: Error 111 connecting to cache.internal:6380. Connection refused.)")


def test_the_redis_client_gives_up_fast():
    # The check runs inside a clinician's call: 1 s time-outs and one immediate retry, not redis-py's defaults.
    client = redis_client("redis://127.0.0.1:6379/0")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (1.0, 1.0)
    retry = kwargs["retry"]
    assert retry._retries == 1 and type(retry._backoff).__name__ == "NoBackoff"
