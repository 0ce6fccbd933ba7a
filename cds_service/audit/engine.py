"""Database engines for the audit store: SQLite (embedded default) or PostgreSQL (several replicas)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from cds_service.errors import ConfigError

# Writers wait this long for SQLite's single write lock (several gunicorn workers share one file).
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 5


def parse_database_url(raw: str) -> URL:
    """CDS_DATABASE_URL as an SQLAlchemy URL with a real driver: pysqlite or psycopg 3."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("CDS_DATABASE_URL must look like sqlite:///path or "
                          "postgresql://user@host/db") from None
    if url.get_backend_name() in ("postgresql", "postgres"):
        # A bare postgresql:// means psycopg2 to SQLAlchemy; this project ships psycopg 3.
        driver = url.get_driver_name()
        if url.drivername in ("postgresql", "postgres") or driver == "psycopg":
            return url.set(drivername="postgresql+psycopg")
        raise ConfigError(f"CDS_DATABASE_URL: driver {driver!r} is not installed; use postgresql://")
    if url.get_backend_name() == "sqlite":
        return url
    raise ConfigError(f"CDS_DATABASE_URL: {url.get_backend_name()!r} is not supported; "
                      "use sqlite or postgresql")


def is_memory(url: URL) -> bool:
    """An in-memory SQLite database: one per process, for tests only."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def shown_url(url: URL) -> str:
    """The URL for logs and messages: never the password."""
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, read_only: bool = False) -> Engine:
    """An engine for the audit store; bound parameters never appear in errors or logs (they may be PHI).

    `read_only` (the report): SQLite opened read-only, never created; a snapshot per transaction.
    """
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=10,
                               hide_parameters=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
        return engine.execution_options(isolation_level="REPEATABLE READ") if read_only else engine
    memory = is_memory(url)
    if memory:
        engine = create_engine("sqlite://", poolclass=StaticPool, hide_parameters=True,
                               connect_args={"check_same_thread": False})
    elif read_only:
        uri = Path(url.database).expanduser().resolve().as_uri() + "?mode=ro"
        engine = create_engine("sqlite://", hide_parameters=True, creator=lambda: sqlite3.connect(
            uri, uri=True, check_same_thread=False))
    else:
        # Relative paths are taken from the working directory (sqlite:///var/… → ./var/…).
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True, pool_size=5, max_overflow=5,
                               connect_args={"check_same_thread": False})
    _sqlite_transactions(engine, wal=not memory and not read_only,
                         begin="BEGIN" if read_only else "BEGIN IMMEDIATE")
    return engine


def to_wal(cursor: Any, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
           clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep) -> None:
    """Switch a new connection's database to WAL, waiting for the lock as the busy timeout would.

    The switch needs the database to itself, and SQLite answers "database is locked" at once instead of
    calling the busy handler when another connection holds it: stores opened together on a fresh file
    (replicas, the report beside `serve`) then failed to start, 7 times in 160 in a loop under load.
    """
    deadline = clock() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock() >= deadline:
                raise
        pause(0.01)


def _sqlite_transactions(engine: Engine, wal: bool, begin: str) -> None:
    """Real transactions on SQLite: BEGIN IMMEDIATE takes the write lock up front.

    pysqlite otherwise begins lazily and a read that turns into a write fails at once with
    "database is locked" when another process wrote meanwhile, instead of waiting its turn.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            # WAL lets the report read while workers write; FULL makes a commit durable on return.
            to_wal(cursor)
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql(begin)
