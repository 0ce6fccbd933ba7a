"""Structured logs: one JSON object per line, with secrets scrubbed as a last line of defence."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import traceback
import weakref
from datetime import UTC, datetime
from typing import Any

from cds_service import jsonio

# Callers never pass tokens or patient data to a logger; these patterns catch a mistake before it
# reaches disk: compact JWS/JWT, bearer credentials and `access_token` values.
# Each with the text it cannot match without (in the lower-cased line when it ignores case): a line
# without it is not searched (every request writes a line, and the three searches cost twice its encoding).
_SECRET_PATTERNS = (
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), "[jwt]", "eyJ", False),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1[token]", "bearer", True),
    (re.compile(r"(?i)(\"?access_token\"?\s*[:=]\s*\"?)[^\s\"',;}]+"), r"\1[token]", "access_token", True),
)


def scrub(text: str) -> str:
    """Replace anything shaped like a token in a log text."""
    lowered = text.lower()
    for pattern, replacement, needed, ignore_case in _SECRET_PATTERNS:
        if needed in (lowered if ignore_case else text):
            text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, event, then the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(jsonio.dumps(entry, default=str))

    def formatException(self, ei) -> str:
        """Where the error happened (frames, exception types), never what it said.

        An exception's message may quote request data (pydantic and json errors quote their input,
        a KeyError its key): it stays out of the log. No locals are printed either.
        """
        lines: list[str] = []
        seen: set[int] = set()
        current: BaseException | None = ei[1]
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if lines:
                lines.append("While handling, or caused by:\n")
            lines.append("Traceback (most recent call last):\n")
            lines.extend(_frames(current.__traceback__))
            kind = type(current)
            lines.append(f"{kind.__module__}.{kind.__qualname__} (message withheld from the log)\n")
            current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        return "".join(lines).rstrip("\n")


# A RecursionError has a thousand frames: keep where it entered and where it broke.
_HEAD_FRAMES, _TAIL_FRAMES = 10, 20


def _frames(tb: Any) -> list[str]:
    frames = traceback.extract_tb(tb)
    if len(frames) <= _HEAD_FRAMES + _TAIL_FRAMES:
        return frames.format()
    omitted = len(frames) - _HEAD_FRAMES - _TAIL_FRAMES
    head = traceback.StackSummary.from_list(frames[:_HEAD_FRAMES]).format()
    tail = traceback.StackSummary.from_list(frames[-_TAIL_FRAMES:]).format()
    return [*head, f"  ... {omitted} frames omitted ...\n", *tail]


class BatchedLines(logging.Handler):
    """Formatted records written to a stream in batches, one system call for many lines.

    A request line written on its own cost a write system call per hook call, and a write lets go of the
    interpreter lock: under load the request threads then took turns for it, and the service's CPU per
    arm B call was a tenth higher with the request log on than off (bench/README.md, "Hook latency").
    Here a line waits until `size` are pending or for at most `delay` seconds (a writer thread of the
    process); a warning or an error is written at once, after what is pending, so the order holds and
    no error waits. What is pending is written at exit (logging.shutdown), on `flush`, and before the
    process forks; a process killed outright (SIGKILL) loses at most `delay` seconds of info lines.
    """

    def __init__(self, stream: Any, size: int = 256, delay: float = 0.2) -> None:
        super().__init__()
        self.stream = stream
        self.size = size
        self.delay = delay
        self._pending: list[str] = []
        self._writing = False  # whether this process has started the writer thread
        _BATCHED.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (Handler.handle).
        try:
            self._pending.append(self.format(record))
            if record.levelno >= logging.WARNING or len(self._pending) >= self.size:
                self._write()
            elif not self._writing:
                self._start_writer()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write what is pending."""
        with self.lock:
            self._write()

    def close(self) -> None:
        self.flush()
        _BATCHED.discard(self)
        super().close()

    def _write(self) -> None:
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            self.stream.write(text)
            self.stream.flush()

    def _start_writer(self) -> None:
        # One per process: a forked gunicorn worker has no thread of its parent's (`_after_fork`).
        self._writing = True
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def _run(self) -> None:
        while self in _BATCHED:
            time.sleep(self.delay)
            try:
                self.flush()
            except Exception:  # noqa: S112 - a broken stream must not end the process's logging for good
                continue

    def _after_fork(self) -> None:
        self._pending.clear()  # the parent's, written by the parent
        self._writing = False


_BATCHED: weakref.WeakSet[BatchedLines] = weakref.WeakSet()


def _flush_batched() -> None:
    for handler in list(_BATCHED):
        handler.flush()


def _reset_batched() -> None:
    for handler in list(_BATCHED):
        handler._after_fork()


os.register_at_fork(before=_flush_batched, after_in_child=_reset_batched)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every log record of the process, as JSON lines, to stderr (or the given stream), in batches
    (`BatchedLines`)."""
    # JsonFormatter writes none of the caller's file and line, thread or process: the logging HOWTO's
    # "Optimization" switches spare each record the frame walk and lookups (a line per hook call).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchedLines(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (connection pools, werkzeug's request lines with full URLs) adds nothing and
    # could carry query strings: keep only their warnings.
    for noisy in ("urllib3", "werkzeug", "gunicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; `fields` must hold no patient data or secrets."""
    logger.log(level, event, extra={"fields": fields})
