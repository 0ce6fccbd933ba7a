"""A bounded in-process queue and one background thread that writes its rows in batches.

The hook call only appends to the queue, so a slow or unavailable store never delays or fails it.
What cannot be written (queue full, store down past the retries, process stopping) is counted as lost
and logged by count and error type, never by content.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from cds_service import events
from cds_service.logs import log_event

log = logging.getLogger(__name__)

Row = dict[str, Any]


class BatchWriter:
    """Queues rows and writes them with `write(batch)` on a thread of its own, started on first use."""

    def __init__(self, write: Callable[[list[Row]], None], *, capacity: int = 10_000, batch_size: int = 200,
                 linger: float = 0.02, retry_delays: Sequence[float] = (0.1, 0.3, 1.0, 3.0)) -> None:
        self._write = write
        self.capacity = capacity
        self.batch_size = batch_size
        # How long the writer lets rows gather before a write: one transaction for many cards costs the
        # request threads far less CPU than one per call. A flush does not wait for it.
        self.linger = linger
        self.retry_delays = tuple(retry_delays)
        self.written = 0
        self.lost = 0
        self.last_error: str | None = None
        self._count_lock = threading.Lock()  # request threads and the writer both count losses
        self._reset_state()

    def _reset_state(self) -> None:
        self._cond = threading.Condition()
        self._pending: deque[Row] = deque()
        self._in_flight = 0
        self._flushing = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def after_fork_in_child(self) -> None:
        """A forked child (a gunicorn worker) inherits no thread and maybe a held lock: start afresh.

        Rows queued in the parent stay the parent's to write.
        """
        self._reset_state()
        self._count_lock = threading.Lock()
        self.written = 0
        self.lost = 0

    @property
    def queued(self) -> int:
        return len(self._pending) + self._in_flight

    def submit(self, rows: Sequence[Row]) -> None:
        """Queue rows for writing; those over the capacity are counted as lost at once."""
        if not rows:
            return
        with self._cond:
            if self._stopping.is_set():
                dropped, reason = len(rows), "stopped"
            else:
                was_empty = not self._pending
                room = max(0, self.capacity - len(self._pending))
                self._pending.extend(rows[:room])
                dropped, reason = max(0, len(rows) - room), "queue full"
                self._start()
                # A writer already gathering rows needs no wake-up until its batch is full.
                if was_empty or len(self._pending) >= self.batch_size:
                    self._cond.notify()
        events.emit("audit_queue", depth=self.queued)
        if dropped:
            self.lose(dropped, reason)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued row was written or given up; False if that took longer than `timeout`."""
        with self._cond:
            if self._pending:
                self._start()
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float) -> None:
        """Write what is queued (within `timeout`), then stop the thread; what is left is counted lost."""
        self.flush(timeout)
        with self._cond:
            self._stopping.set()
            left = len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        if left:
            self.lose(left, "stopped before written")

    def _start(self) -> None:
        # Called with the condition held.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping.is_set())
                self._cond.wait_for(lambda: len(self._pending) >= self.batch_size or self._flushing
                                    or self._stopping.is_set(), self.linger)
                if self._stopping.is_set():
                    return
                batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
                self._in_flight = len(batch)
            try:
                self._write_with_retries(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
                events.emit("audit_queue", depth=self.queued)

    def _write_with_retries(self, batch: list[Row]) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            try:
                self._write(batch)
            except Exception as exc:  # the store's failure must never end the thread
                self.last_error = type(exc).__name__
                if attempt == len(self.retry_delays) or self._stopping.is_set():
                    self.lose(len(batch), type(exc).__name__)
                    return
                self._stopping.wait(self.retry_delays[attempt])
            else:
                self.written += len(batch)
                self.last_error = None
                return

    def lose(self, count: int, reason: str) -> None:
        """Count rows that will never be written, and say so in the log (by count and reason only)."""
        with self._count_lock:
            self.lost += count
        events.emit("audit_lost", count=count)
        log_event(log, "audit cards lost", logging.ERROR, count=count, reason=reason, totalLost=self.lost)
