"""BatchedLines writes log lines in batches, in order: a warning at once with what waits before it, the rest
within its delay, at exit and before a fork; a forked child never writes its parent's lines."""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest

from cds_service.logs import BatchedLines, JsonFormatter, log_event


class Stream:
    """A stream that keeps each write apart, and says when one came."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.written = threading.Event()

    def write(self, text: str) -> None:
        self.writes.append(text)
        self.written.set()

    def flush(self) -> None:
        pass

    def events(self) -> list[str]:
        return [json.loads(line)["event"] for text in self.writes for line in text.splitlines()]


@pytest.fixture
def logger():
    made: list[tuple[logging.Logger, BatchedLines]] = []

    def make(stream: Stream, **kwargs) -> logging.Logger:
        handler = BatchedLines(stream, **kwargs)
        handler.setFormatter(JsonFormatter())
        log = logging.getLogger(f"tests.batched.{len(made)}")
        log.propagate, log.level = False, logging.INFO
        log.handlers[:] = [handler]
        made.append((log, handler))
        return log

    yield make
    for log, handler in made:
        handler.close()
        log.handlers.clear()


def test_info_lines_wait_and_go_in_one_write_in_order(logger):
    stream = Stream()
    log = logger(stream, size=3, delay=60)
    for n in range(2):
        log_event(log, f"line {n}")
    assert stream.writes == []
    log_event(log, "line 2")
    assert len(stream.writes) == 1
    assert stream.events() == ["line 0", "line 1", "line 2"]


def test_a_warning_is_written_at_once_after_what_waits(logger):
    stream = Stream()
    log = logger(stream, size=100, delay=60)
    log_event(log, "before")
    log_event(log, "trouble", logging.WARNING)
    assert stream.events() == ["before", "trouble"]
    log_event(log, "after")
    assert stream.events() == ["before", "trouble"]


def test_what_waits_is_written_by_flush_and_by_close(logger):
    stream = Stream()
    log = logger(stream, size=100, delay=60)
    log_event(log, "one")
    log.handlers[0].flush()
    log_event(log, "two")
    log.handlers[0].close()
    assert stream.events() == ["one", "two"]
    assert len(stream.writes) == 2


def test_a_line_is_written_by_the_writer_thread_within_its_delay(logger):
    stream = Stream()
    log = logger(stream, size=100, delay=0.01)
    log_event(log, "waiting")
    # An event, not a timed assertion: the writer thread writes it, or the wait gives up.
    assert stream.written.wait(10)
    assert stream.events() == ["waiting"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_lines_and_never_its_parents(logger, tmp_path):
    path = tmp_path / "log"
    with open(path, "a", encoding="utf-8") as stream:
        log = logger(stream, size=100, delay=60)
        log_event(log, "parent before the fork")
        pid = os.fork()
        if pid == 0:  # the child: one line of its own, written at its exit
            log_event(log, "child")
            log.handlers[0].flush()
            os._exit(0)
        os.waitpid(pid, 0)
        log_event(log, "parent after the fork")
        log.handlers[0].flush()
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert sorted(events) == ["child", "parent after the fork", "parent before the fork"]
    assert events[0] == "parent before the fork"  # written by the parent before it forked
