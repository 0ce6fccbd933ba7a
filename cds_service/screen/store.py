"""A temporary SQLite file holding the kept resources by patient, read back one patient at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

_BATCH = 2000


class PatientStore:
    """Resources (JSON text) keyed by patient, and shared resources (Medication, ResearchStudy) by reference.

    Rows are written in batches and indexed once at the end; reading walks the index in patient order, so
    neither direction holds more than a batch, one patient's resources and SQLite's page cache in memory.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "screen.sqlite3"
        self._db = sqlite3.connect(self.path)
        # A scratch file: no journal, no fsync; a crash loses nothing that matters.
        self._db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -2000;
            CREATE TABLE resource (seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE shared (key TEXT PRIMARY KEY, body TEXT NOT NULL);
        """)
        self._rows: list[tuple[str, str]] = []
        self._shared: list[tuple[str, str]] = []

    def add(self, patient: str, body: str) -> None:
        self._rows.append((patient, body))
        if len(self._rows) >= _BATCH:
            self._flush()

    def add_shared(self, keys: list[str], body: str) -> None:
        self._shared += [(key, body) for key in keys]
        if len(self._shared) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        with self._db:
            self._db.executemany("INSERT INTO resource (patient, body) VALUES (?, ?)", self._rows)
            self._db.executemany("INSERT OR REPLACE INTO shared (key, body) VALUES (?, ?)", self._shared)
        self._rows.clear()
        self._shared.clear()

    def finish(self) -> int:
        """Write what is buffered, index by patient; the number of patients."""
        self._flush()
        with self._db:
            self._db.execute("CREATE INDEX by_patient ON resource (patient, seq)")
        return self._db.execute("SELECT COUNT(DISTINCT patient) FROM resource").fetchone()[0]

    def shared(self, key: str) -> str | None:
        row = self._db.execute("SELECT body FROM shared WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def patients(self) -> Iterator[tuple[str, list[str]]]:
        """(patient, the JSON texts of their resources), in patient order."""
        cursor = self._db.execute("SELECT patient, body FROM resource ORDER BY patient, seq")
        current, bodies = None, []
        for patient, body in cursor:
            if patient != current and current is not None:
                yield current, bodies
                bodies = []
            current = patient
            bodies.append(body)
        if current is not None:
            yield current, bodies

    def close(self) -> None:
        self._db.close()
