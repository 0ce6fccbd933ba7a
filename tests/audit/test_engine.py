"""Switching a SQLite file to WAL waits for the lock instead of failing the start."""

from __future__ import annotations

import sqlite3

import pytest

from cds_service.audit.engine import to_wal
from tests.fhir.support import FakeClock


class _Cursor:
    """A cursor whose first `locked` executions fail as SQLite fails a WAL switch it cannot lock."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked, self.error, self.statements = locked, error, []

    def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if len(self.statements) <= self.locked:
            raise sqlite3.OperationalError(self.error)


def test_a_locked_switch_is_tried_again_until_it_succeeds():
    cursor, clock = _Cursor(locked=3), FakeClock()
    to_wal(cursor, timeout_s=1, clock=clock, pause=clock.sleep)
    assert cursor.statements == ["PRAGMA journal_mode = WAL"] * 4
    assert len(clock.slept) == 3


def test_a_switch_locked_past_the_timeout_fails_with_sqlites_error():
    cursor, clock = _Cursor(locked=10_000), FakeClock()
    started = clock.now
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        to_wal(cursor, timeout_s=0.1, clock=clock, pause=clock.sleep)
    assert 0.1 <= clock.now - started <= 0.12


def test_another_error_is_not_waited_for():
    cursor, clock = _Cursor(locked=1, error="disk I/O error"), FakeClock()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        to_wal(cursor, timeout_s=1, clock=clock, pause=clock.sleep)
    assert clock.slept == []


def test_a_fresh_file_held_by_another_connection_switches_once_it_is_free(tmp_path):
    path = tmp_path / "audit.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    clock = FakeClock()

    def release_after_the_first_refusal(seconds: float) -> None:
        clock.sleep(seconds)
        if holder.in_transaction:
            holder.execute("COMMIT")

    to_wal(opener.cursor(), timeout_s=1, clock=clock, pause=release_after_the_first_refusal)
    assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(clock.slept) == 1
    holder.close()
    opener.close()
