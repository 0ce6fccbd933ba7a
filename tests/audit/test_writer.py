"""The background writer: batches, retries, and counting what it cannot write."""

from __future__ import annotations

import threading

from cds_service.audit.writer import BatchWriter


class Target:
    """A write function that can be held (to fill the queue) or made to fail a number of times."""

    def __init__(self, failures: int = 0) -> None:
        self.rows: list[dict] = []
        self.failures = failures
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, batch: list[dict]) -> None:
        self.entered.set()
        self.release.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        self.rows.extend(batch)


def test_rows_are_written_in_order_and_in_batches():
    target = Target()
    writer = BatchWriter(target, batch_size=7)
    for i in range(50):
        writer.submit([{"n": i}])
    assert writer.flush(10)
    assert [r["n"] for r in target.rows] == list(range(50))
    assert (writer.written, writer.lost, writer.queued) == (50, 0, 0)
    writer.close(1)


def test_a_full_queue_loses_the_overflow_and_counts_it(caplog):
    target = Target()
    target.release.clear()
    writer = BatchWriter(target, capacity=3, batch_size=1)
    writer.submit([{"n": 0}])
    assert target.entered.wait(10)  # the writer holds row 0; the queue is empty again
    writer.submit([{"n": i} for i in range(1, 6)])
    assert writer.lost == 2
    target.release.set()
    assert writer.flush(10)
    assert [r["n"] for r in target.rows] == [0, 1, 2, 3]
    assert any(r.getMessage() == "audit cards lost" and r.fields["reason"] == "queue full" for r in caplog.records)
    writer.close(1)


def test_a_short_outage_is_retried_without_loss():
    target = Target(failures=2)
    writer = BatchWriter(target, retry_delays=(0, 0, 0))
    writer.submit([{"n": 1}, {"n": 2}])
    assert writer.flush(10)
    assert (len(target.rows), writer.written, writer.lost, writer.last_error) == (2, 2, 0, None)
    writer.close(1)


def test_a_long_outage_loses_the_batch_and_says_why(caplog):
    target = Target(failures=10)
    writer = BatchWriter(target, retry_delays=(0, 0))
    writer.submit([{"n": 1}, {"n": 2}, {"n": 3}])
    assert writer.flush(10)
    assert (writer.written, writer.lost, writer.last_error) == (0, 3, "ConnectionError")
    (record,) = [r for r in caplog.records if r.getMessage() == "audit cards lost"]
    assert record.fields == {"count": 3, "reason": "ConnectionError", "totalLost": 3}
    # The thread survived: the store is back, the next rows go in.
    target.failures = 0
    writer.submit([{"n": 4}])
    assert writer.flush(10) and [r["n"] for r in target.rows] == [4]
    writer.close(1)


def test_close_writes_what_is_queued_then_refuses_more():
    target = Target()
    writer = BatchWriter(target)
    writer.submit([{"n": i} for i in range(20)])
    writer.close(10)
    assert len(target.rows) == 20
    writer.submit([{"n": 99}])
    assert writer.lost == 1 and len(target.rows) == 20

