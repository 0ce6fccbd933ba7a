"""Metrics under several gunicorn workers: totals over workers, dead workers folded, bad files left out.

The unit cases play several worker processes in one by giving prometheus_client's multiprocess value
class a pid of the test's choosing; the last case runs gunicorn itself with two workers and kills one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.parser import text_string_to_metric_families

from cds_service.ops import metrics
from tests.conftest import load_fixture
from tests.servers import cds_service


class Workers:
    """Metric values written as if by the process `pid` (set it, then use the metrics)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = 1000
        self.value_class = values.MultiProcessValue(process_identifier=lambda: self.pid)


@pytest.fixture
def workers(tmp_path, monkeypatch) -> Iterator[Workers]:
    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    played = Workers(folder)
    monkeypatch.setattr(values, "ValueClass", played.value_class)
    registry = CollectorRegistry()  # the metrics of these tests are not the service's
    played.calls = Counter("t_calls_total", "calls", ["status"], registry=registry)
    played.seconds = Histogram("t_seconds", "latency", buckets=(0.1, 1.0), registry=registry)
    played.queue = Gauge("t_queue", "queue", multiprocess_mode="livesum", registry=registry)
    yield played
    played.value_class.close_all_files()


def scrape(folder: Path) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(metrics.SafeMultiProcessCollector(str(folder)))
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_totals_add_up_over_workers_and_survive_recycled_workers(workers):
    for pid in range(1000, 1060):  # sixty workers, one after the other, each serving three calls
        workers.pid = pid
        for _ in range(3):
            workers.calls.labels("200").inc()
            workers.seconds.observe(0.5)
        workers.queue.set(2)
        if pid < 1058:  # the last two are still alive
            metrics.worker_exited(pid, str(workers.folder))
    found = scrape(workers.folder)
    assert found[("t_calls_total", (("status", "200"),))] == 180
    assert found[("t_seconds_count", ())] == 180
    assert found[("t_seconds_bucket", (("le", "1.0"),))] == 180
    assert found[("t_seconds_bucket", (("le", "0.1"),))] == 0
    assert found[("t_queue", ())] == 4  # live workers only
    # Bounded whatever the number of restarts: two live workers' files, plus one archive per type.
    names = sorted(p.name for p in workers.folder.glob("*.db"))
    assert names == ["counter_1058.db", "counter_1059.db", "counter_archive.db", "gauge_livesum_1058.db",
                     "gauge_livesum_1059.db", "histogram_1058.db", "histogram_1059.db", "histogram_archive.db"]
    assert found[("cds_metrics_files", ())] == 8


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b""),  # created, never sized: a worker killed at that moment (#1199)
    lambda path: path.write_bytes(b"\xff\xff\xff\x7f" + b"\x00" * 60),  # claims more than it holds (#347)
    lambda path: path.write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00" + b"\xfe" * 20),
])
def test_a_corrupted_file_is_left_out_not_the_whole_scrape(workers, damage):
    workers.pid = 1
    workers.calls.labels("200").inc(5)
    damage(workers.folder / "counter_2.db")
    found = scrape(workers.folder)
    assert found[("t_calls_total", (("status", "200"),))] == 5
    assert found[("cds_metrics_unreadable_files", ())] == 1
    # When that worker's exit is reported, its unreadable file goes; the archive is not harmed.
    metrics.worker_exited(2, str(workers.folder))
    assert not (workers.folder / "counter_2.db").exists()
    assert scrape(workers.folder)[("cds_metrics_unreadable_files", ())] == 0


def test_a_corrupted_archive_is_replaced_rather_than_blocking_the_fold(workers):
    (workers.folder / "counter_archive.db").write_bytes(b"\xff\xff\xff\x7f")
    workers.pid = 7
    workers.calls.labels("500").inc(2)
    metrics.worker_exited(7, str(workers.folder))
    assert scrape(workers.folder)[("t_calls_total", (("status", "500"),))] == 2


def test_the_start_empties_the_folder_of_an_earlier_run(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "counter_99.db").write_bytes(b"x")
    (folder / "histogram_archive.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("not ours")
    metrics.prepare_directory(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    metrics.prepare_directory(str(tmp_path / "new"))
    assert (tmp_path / "new").is_dir()


@pytest.mark.integration
def test_gunicorn_with_two_workers_counts_every_call_even_after_a_worker_is_killed(tmp_path):
    folder = tmp_path / "metrics"
    body = json.dumps(load_fixture("golden/order-sign-arm-b-cycle-3.request.json"))
    env = {"CDS_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with cds_service(env=env) as (base, _log):
        url = f"{base}/cds-services/dex-free-order-sign"

        def call_on_new_connections(count: int) -> set[int]:
            pids = set()
            for _ in range(count):
                with requests.Session() as session:  # new connections spread over the workers
                    response = session.post(url, data=body, headers={"Content-Type": "application/json"},
                                            timeout=30)
                    assert response.status_code == 200
            for path in folder.glob("counter_*.db"):
                if path.stem.split("_")[1].isdigit():
                    pids.add(int(path.stem.split("_")[1]))
            return pids

        pids = call_on_new_connections(12)
        assert _hook_calls(base) == 12
        # SIGKILL one worker: the master reaps it, folds its counts, and starts another.
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        for _ in range(300):  # bounded readiness polling (~30 s)
            if not (folder / f"counter_{victim}.db").exists():
                break
            requests.get(base + "/livez", timeout=5)
            time.sleep(0.1)  # polling, not a timing assumption
        assert not (folder / f"counter_{victim}.db").exists()
        call_on_new_connections(6)
        assert _hook_calls(base) == 18
        assert (folder / "counter_archive.db").exists()
        text = requests.get(base + "/metrics", timeout=10).text
        assert re.search(r"^cds_metrics_unreadable_files 0\.0$", text, re.M)


def _hook_calls(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    match = re.search(r'^cds_hook_calls_total\{service="dex-free-order-sign",status="200"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0
