"""Replay stores: remember each JWT id until its token expires, so a captured token works only once."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cds_service.errors import ConfigError
from cds_service.security.urls import redact_url

log = logging.getLogger(__name__)


class ReplayStoreError(Exception):
    """The store could not answer (e.g. Redis is down): the token can be neither accepted nor refused."""


class ReplayStore(Protocol):
    """Ids of tokens already used, each kept until `expires_at` (epoch seconds)."""

    def first_use(self, token_id: str, expires_at: float) -> bool:
        """Record `token_id`; True if it was not seen before (and has not expired since)."""
        ...

    def describe(self) -> str: ...

    @property
    def shared(self) -> bool:
        """Whether every worker process of this host sees the same ids."""
        ...

    @property
    def kind(self) -> str:
        """memory, sqlite or redis."""
        ...


def token_key(issuer: str, jti: str) -> str:
    """The stored key of a token id: ids are unique per issuer; hashed to a fixed length."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


class MemoryReplayStore:
    """Ids kept in this process: right for one worker; with several, a replay sent to another passes."""

    shared = False
    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._purge_at = 1024

    def first_use(self, token_id: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) >= self._purge_at:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                # Purge again only once the store has doubled: constant cost per id on average.
                self._purge_at = max(1024, 2 * len(self._seen))
            if self._seen.get(token_id, 0.0) > now:
                return False
            self._seen[token_id] = expires_at
            return True

    def describe(self) -> str:
        return "memory (this process only)"


class SqliteReplayStore:
    """Ids kept in a SQLite file, shared by the worker processes of one host (not by several hosts)."""

    shared = True
    kind = "sqlite"

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = self._open()
            try:
                db.execute("CREATE TABLE IF NOT EXISTS seen_jti "
                           "(id TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID")
                db.execute("CREATE INDEX IF NOT EXISTS seen_jti_expiry ON seen_jti (expires_at)")
            finally:
                db.close()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"CDS_REPLAY_DB {path}: cannot create the replay store ({exc})") from None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        # The ids are not worth an fsync each: losing the last few on a power cut is harmless.
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and per process: gunicorn forks its workers after the app is
        # loaded, and a SQLite connection must not cross a fork.
        key = (os.getpid(), threading.get_ident())
        if getattr(self._local, "key", None) != key:
            self._local.key, self._local.db = key, self._open()
        return self._local.db

    def first_use(self, token_id: str, expires_at: float) -> bool:
        now = self._clock()
        try:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM seen_jti WHERE expires_at <= ?", (now,))
                inserted = db.execute("INSERT OR IGNORE INTO seen_jti (id, expires_at) VALUES (?, ?)",
                                      (token_id, expires_at)).rowcount
                db.execute("COMMIT")
            except sqlite3.Error:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ReplayStoreError(f"sqlite: {exc}") from None
        return inserted == 1

    def describe(self) -> str:
        return f"sqlite {self.path} (shared by this host's workers)"


class RedisReplayStore:
    """Ids kept in Redis (SET NX with an expiry): shared by every worker and every replica."""

    shared = True
    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str = "dexfree:jti:",
                 clock: Callable[[], float] = time.time, label: str = "redis") -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._label = label

    def first_use(self, token_id: str, expires_at: float) -> bool:
        ttl = max(1, math.ceil(expires_at - self._clock()))
        try:
            return bool(self._client.set(self._prefix + token_id, b"1", nx=True, ex=ttl))
        except redis.RedisError as exc:
            raise ReplayStoreError(f"redis: {type(exc).__name__}") from None

    def describe(self) -> str:
        return f"{self._label} (shared by every worker and replica)"


def redis_client(url: str) -> redis.Redis:
    """A client with short time-outs and one immediate retry: the check runs inside a client's call,
    and redis-py's default retries with backoff would hold it for seconds."""
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                retry=Retry(NoBackoff(), 1))


def redis_store(url: str, prefix: str = "dexfree:jti:", clock: Callable[[], float] = time.time,
                ) -> RedisReplayStore:
    """A Redis store for CDS_REDIS_URL, checked now: an unreachable Redis stops the start-up."""
    label = redact_url(url)
    try:
        client = redis_client(url)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"CDS_REDIS_URL={label}: Redis cannot be reached ({type(exc).__name__}: "
                          f"{redact_url(str(exc))})") from None
    return RedisReplayStore(client, prefix=prefix, clock=clock, label=f"redis {label}")

