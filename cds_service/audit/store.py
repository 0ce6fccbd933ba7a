"""The audit store behind AuditSink: cards queued and written in the background, feedback written at once."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Insert, Table, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit import schema
from cds_service.audit.engine import is_memory, make_engine, parse_database_url, shown_url
from cds_service.audit.migrate import upgrade
from cds_service.audit.rows import card_rows, feedback_row
from cds_service.audit.writer import BatchWriter
from cds_service.config import Config
from cds_service.errors import CdsError, ConfigError, bad_request
from cds_service.hooks.feedback import FeedbackEntry
from cds_service.logs import log_event
from cds_service.security.caller import Caller

if TYPE_CHECKING:
    from cds_service.fhir.record import PatientRecord
    from cds_service.hooks.request import HookRequest

log = logging.getLogger(__name__)

SALT_SETTING = "pseudonym_salt"
# A fixed number naming the advisory lock taken by card and feedback writes (the migration's is another).
_CARD_FEEDBACK_LOCK = 0x64657866726565
# Feedback waits this long for this process's queued cards, so that it finds the card it answers.
FLUSH_BEFORE_FEEDBACK_S = 2.0
# At process exit (gunicorn worker stop, Ctrl-C), queued cards get this long to be written.
FLUSH_AT_EXIT_S = 5.0
RETRY_AFTER_S = "30"
# How long queued cards gather before they are written. A write's transaction costs about 1 ms of CPU
# whatever it holds, a row about 60 µs more (SQLite, bench/README.md): under load, cards gathered for a
# quarter of a second are written for a fraction of what a write every 20 ms costs, on the core the
# request threads need. Feedback and shutdown do not wait for it (they flush); a report run a moment
# after a card was shown may miss it by that much.
CARD_LINGER_S = 0.25


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditStore:
    """Cards shown and feedback received, in SQLite or PostgreSQL (CDS_DATABASE_URL).

    Opening it applies the schema migrations and settles the pseudonym salt; it is safe to open in a
    gunicorn master before workers are forked (each child drops the inherited connections).
    """

    def __init__(self, database_url: str, *, salt: str | None = None,
                 clock: Callable[[], datetime] = _utc_now, capacity: int = 10_000,
                 retry_delays: Sequence[float] = (0.1, 0.3, 1.0, 3.0)) -> None:
        self.url = parse_database_url(database_url)
        self.clock = clock
        self._memory = is_memory(self.url)
        # One SQLite connection serves an in-memory store: its transactions must take turns.
        self._serial = threading.RLock()
        self.engine = make_engine(self.url)
        try:
            with self._turn():
                self.revision = upgrade(self.engine)
            self.salt = salt or self._shared_salt()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise ConfigError(f"The audit store {shown_url(self.url)} (CDS_DATABASE_URL) cannot be opened: "
                              f"{_reason(exc, detail=True)}") from None
        self.writer = BatchWriter(self._insert_cards, capacity=capacity, linger=CARD_LINGER_S,
                                  retry_delays=retry_delays)
        self.feedback_failures = 0
        if not self._memory:
            # Workers forked after this must not share the master's sockets or file handles.
            self.engine.dispose()
        _OPEN_STORES.add(self)

    # --- AuditSink -------------------------------------------------------------------------------

    def cards_shown(self, service_id: str, request: HookRequest, record: PatientRecord,
                    cards: Sequence[dict[str, Any]], caller: Caller) -> None:
        """Queue one row per card; never raises (a failure here is counted as lost cards)."""
        if not cards:
            return
        try:
            rows = card_rows(service_id, request, record, cards, caller=caller, salt=self.salt,
                             now=self.clock())
        except Exception as exc:  # recording must never fail the hook call
            self.writer.lose(len(cards), type(exc).__name__)
            return
        # One row the database refuses would fail its whole batch: refuse it here instead.
        fitting = [row for row in rows if len(row["card_uuid"]) <= schema.CARD_UUID_MAX]
        if len(fitting) < len(rows):
            self.writer.lose(len(rows) - len(fitting), "card uuid too long")
        self.writer.submit(fitting)

    def feedback_received(self, service_id: str, entries: Sequence[FeedbackEntry],
                          caller: Caller) -> dict[str, int]:
        """Store the entries durably before answering; 503 if the store cannot take them."""
        for i, entry in enumerate(entries):
            if len(entry.card) > schema.CARD_UUID_MAX:
                raise bad_request(f"feedback[{i}].card is longer than {schema.CARD_UUID_MAX} characters",
                                  f"feedback[{i}].card")
        if not entries:
            return {"received": 0, "stored": 0, "duplicates": 0, "unknownCards": 0}
        self.writer.flush(FLUSH_BEFORE_FEEDBACK_S)
        now = self.clock()
        rows = [feedback_row(service_id, entry, caller, now) for entry in entries]
        try:
            stored, unknown = self._insert_feedback(rows)
        except SQLAlchemyError as exc:
            self.feedback_failures += 1
            log_event(log, "audit feedback not stored", logging.ERROR, entries=len(rows), reason=_reason(exc))
            raise CdsError(503, "The audit store is unavailable: the feedback was not stored. Send it again "
                           "later.", code="transient", headers={"Retry-After": RETRY_AFTER_S}) from None
        return {"received": len(rows), "stored": stored, "duplicates": len(rows) - stored,
                "unknownCards": unknown}

    def describe(self) -> dict[str, Any]:
        """For /healthz: the back end, schema, and what this process recorded or lost (no URL, no data)."""
        return {
            "store": self.engine.dialect.name,
            "schema": self.revision,
            "cardsWritten": self.writer.written,
            "cardsQueued": self.writer.queued,
            "cardsLost": self.writer.lost,
            "feedbackFailures": self.feedback_failures,
            "lastError": self.writer.last_error,
        }

    # --- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for the queued cards to be written (tests, shutdown)."""
        return self.writer.flush(timeout)

    def close(self, timeout: float = FLUSH_AT_EXIT_S) -> None:
        """Write what is queued, stop the writer and close the connections."""
        _OPEN_STORES.discard(self)
        self.writer.close(timeout)
        self.engine.dispose()

    def _after_fork_in_child(self) -> None:
        self.writer.after_fork_in_child()
        self._serial = threading.RLock()
        if not self._memory:
            # close=False: the parent still owns those connections; the child opens its own.
            self.engine.dispose(close=False)

    # --- database --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if self._memory:
            with self._serial:
                yield
        else:
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success."""
        with self._turn(), self.engine.begin() as connection:
            yield connection

    def _insert_ignoring(self, table: Table, key: str) -> Insert:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing(index_elements=[key])

    def _shared_salt(self) -> str:
        # The first process to get here makes the salt; every other worker and replica reads that one.
        with self.transaction() as connection:
            connection.execute(self._insert_ignoring(schema.setting, "name"),
                               {"name": SALT_SETTING, "value": secrets.token_hex(32)})
            return connection.execute(
                select(schema.setting.c.value).where(schema.setting.c.name == SALT_SETTING)).scalar_one()

    def _card_feedback_turn(self, connection: Connection) -> None:
        """Cards and feedback are written one transaction after the other (PostgreSQL: an advisory lock).

        Otherwise a card and its feedback, written at the same moment by two workers, would each miss the
        other (read committed) and leave the feedback flagged unknown for good. SQLite serialises writers
        itself.
        """
        if self.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CARD_FEEDBACK_LOCK})

    def _insert_cards(self, rows: list[dict[str, Any]]) -> None:
        feedback = schema.feedback
        with self.transaction() as connection:
            self._card_feedback_turn(connection)
            connection.execute(self._insert_ignoring(schema.card, "card_uuid"), rows)
            # Feedback can overtake its card (another replica's queue): it is no longer unknown.
            arrived = [row["card_uuid"] for row in rows]
            connection.execute(update(feedback).values(card_known=True).where(
                feedback.c.card_uuid.in_(arrived), feedback.c.card_known.is_(False)))

    def _insert_feedback(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        stored = unknown = 0
        with self.transaction() as connection:
            self._card_feedback_turn(connection)
            wanted = {row["card_uuid"] for row in rows}
            known = set(connection.execute(
                select(schema.card.c.card_uuid).where(schema.card.c.card_uuid.in_(wanted))).scalars())
            # RETURNING says whether the row went in: rowcount is not reliable for it on every driver.
            statement = self._insert_ignoring(schema.feedback, "dedup_key").returning(schema.feedback.c.id)
            for row in rows:
                row["card_known"] = row["card_uuid"] in known
                unknown += not row["card_known"]
                stored += len(connection.execute(statement, row).all())
        return stored, unknown


def _reason(exc: SQLAlchemyError, detail: bool = False) -> str:
    """An error's class and SQLSTATE; with `detail`, the driver's first line too (e.g. "connection refused").

    The detail is for start-up errors only: a driver's message about a row can quote a value.
    """
    original = getattr(exc, "orig", None)
    reason = type(exc).__name__
    code = getattr(original, "sqlstate", None)
    if code:
        reason += f" (SQLSTATE {code})"
    text = str(original).strip() if original is not None else ""
    if detail and text:
        reason += ": " + text.splitlines()[0][:200]
    return reason


def open_audit_store(config: Config) -> AuditStore:
    """The store named by CDS_DATABASE_URL, migrated and ready; a ConfigError says why it is not."""
    store = AuditStore(config.database_url, salt=config.pseudonym_salt)
    log_event(log, "audit store ready", store=store.engine.dialect.name, url=shown_url(store.url),
              schema=store.revision)
    return store


# Every open store, to reset in forked children and to flush at exit.
_OPEN_STORES: weakref.WeakSet[AuditStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._after_fork_in_child()


def _close_all() -> None:
    for store in list(_OPEN_STORES):
        store.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
