"""Prometheus metrics: what the service counts, with labels from closed sets only, correct under gunicorn.

What is counted (the README's "What the metrics mean" explains each series):
hook calls by service and status with a latency histogram, feedback posts by service and status,
feedback entries by outcome and what the store made of them, cards by service, rule and indicator,
FHIR reads by outcome and cache hits, JWT refusals by reason code, the audit queue depth and the audit
rows lost. Every label value comes from a closed set (the registry's service ids, the knowledge's rule
ids, the three indicators, a fixed list of HTTP statuses, code-defined reason and outcome codes); any
other value is counted as `other`. No patient data, token, URL or free text can become a label.

The events come from the layers that know them through `cds_service.events` (an observer registry
that imports nothing): this module subscribes, so no lower layer imports ops/.

Several gunicorn workers (prometheus_client's multiprocess mode). gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client (the library picks its value class
at import), empties the folder in `on_starting` (`prepare_directory`) and calls `worker_exited` from
`child_exit`. The pitfalls reported in prometheus/client_python are bounded so:

- #275 and PR #411 (files pile up with recycled workers: every worker pid leaves `counter_<pid>.db`
  and `histogram_<pid>.db` behind, and scrapes get slower for ever). gunicorn's `max_requests`
  recycling is left off (deploy/gunicorn.conf.py), so workers are replaced only when they die or on a
  reload. When one is, `worker_exited` folds its counter and histogram files into one
  `counter_archive.db` / `histogram_archive.db` (values added, so totals never go backwards, which is
  why #411's plain deletion was refused upstream) and deletes them; its gauge files are removed
  (`mark_process_dead` does the live ones). The folder thus holds at most one file per type per live
  worker plus the two archives, whatever the number of restarts.
- #347 (corrupted .db files, after which every scrape failed with a struct error until the files were
  removed; also an empty file left by a worker killed while creating it, client_python #1199): the
  collector reads each file on its own and leaves out one it cannot read, instead of failing the whole
  scrape; `cds_metrics_unreadable_files` says how many were left out. Folding and scraping take a
  file lock on the folder (exclusive and shared), so a scrape never sees a worker's values twice or
  finds a file gone between its listing and its reading.

/metrics can be restricted to client networks (CDS_METRICS_ALLOW); see `allowed`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from cds_service import events

log = logging.getLogger(__name__)

OTHER = "other"
INDICATORS = frozenset({"info", "warning", "critical"})
FEEDBACK_OUTCOMES = frozenset({"accepted", "overridden"})
STATUSES = frozenset({"200", "400", "401", "403", "404", "405", "409", "412", "413", "415", "422", "429",
                      "500", "502", "503", "504"})
FHIR_OUTCOMES = frozenset({"ok", "unreachable", "refused", "not-found", "busy", "deadline", "redirect",
                           "invalid", "incomplete", "server"})
STORE_RESULTS = ("stored", "duplicates", "unknownCards")
# Reason codes are literals of the code (jwt_auth.py); the pattern keeps anything else out all the same.
_CODE = re.compile(r"[a-z][a-z_]{0,39}")
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ARCHIVE = "archive"
_LOCK_FILE = ".lock"
# Types whose values add up across processes: a dead worker's file can be folded into the archive.
_ADDITIVE = ("counter", "histogram")

HOOK_CALLS = Counter("cds_hook_calls_total", "Hook calls answered, by service and HTTP status",
                     ["service", "status"])
HOOK_SECONDS = Histogram("cds_hook_call_seconds", "Time to answer a hook call, by service", ["service"],
                         buckets=LATENCY_BUCKETS)
FEEDBACK_POSTS = Counter("cds_feedback_requests_total", "Feedback posts answered, by service and HTTP status",
                         ["service", "status"])
FEEDBACK_ENTRIES = Counter("cds_feedback_entries_total", "Feedback entries received, by the clinician's "
                           "outcome", ["outcome"])
FEEDBACK_STORED = Counter("cds_feedback_store_results_total", "Feedback entries by what the audit store "
                          "made of them: stored, duplicates (already stored), unknownCards (card not "
                          "found yet)", ["result"])
CARDS = Counter("cds_cards_total", "Cards returned, by service, rule and indicator",
                ["service", "rule", "indicator"])
FHIR_READS = Counter("cds_fhir_reads_total", "FHIR reads of hook calls, by outcome (ok, or why it failed)",
                     ["outcome"])
FHIR_CACHE_HITS = Counter("cds_fhir_cache_hits_total", "FHIR reads answered from the process's cache")
JWT_REFUSALS = Counter("cds_jwt_refusals_total", "Calls refused by the JWT check, by reason code",
                       ["reason"])
AUDIT_QUEUE = Gauge("cds_audit_queue_depth", "Cards waiting to be written to the audit store",
                    multiprocess_mode="livesum")
AUDIT_LOST = Counter("cds_audit_rows_lost_total", "Audit rows that will never be written (queue full, "
                     "store down past the retries, process stopping)")


# The folder gunicorn.conf.py made for this master when PROMETHEUS_MULTIPROC_DIR was unset (removed at exit).
temporary_dir: str | None = None


class _Closed:
    """The closed sets of the labels that depend on the deployment: service ids and rule ids."""

    services: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()


_closed = _Closed()


def _one_of(value: Any, allowed: Iterable[str]) -> str:
    text = str(value)
    return text if text in allowed else OTHER


def _code(value: Any) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else OTHER


def install(service_ids: Iterable[str], rule_ids: Iterable[str]) -> None:
    """Set the label sets of this deployment and start counting the events of cds_service.events."""
    _closed.services = frozenset(service_ids)
    _closed.rules = frozenset(rule_ids)
    events.subscribe(on_event)


def observe_request(route: str, service: str | None, status: int, seconds: float) -> None:
    """A request to a hook or feedback route has been answered (called by app.py)."""
    if route == "/cds-services/<service_id>":
        calls, latency = _hook_series(_one_of(service, _closed.services), _one_of(status, STATUSES))
        calls.inc()
        latency.observe(max(seconds, 0.0))
    elif route == "/cds-services/<service_id>/feedback":
        FEEDBACK_POSTS.labels(_one_of(service, _closed.services), _one_of(status, STATUSES)).inc()


@functools.lru_cache(maxsize=len(STATUSES) * 8)
def _hook_series(service: str, status: str) -> tuple[Any, Any]:
    # Every hook call counts in these two: looking their children up by label takes a lock and a
    # validation each time (half the cost of counting the call). The label values are from closed sets
    # and prometheus_client keeps a child for as long as its metric.
    return HOOK_CALLS.labels(service, status), HOOK_SECONDS.labels(service)


@functools.lru_cache(maxsize=512)
def _cards_series(service: str, rule: str, indicator: str) -> Any:
    # As _hook_series: every card counts here, and the label values are from closed sets.
    return CARDS.labels(service, rule, indicator)


def on_event(name: str, fields: dict[str, Any]) -> None:
    """Count one event of cds_service.events (unknown events are ignored)."""
    if name == "cards":
        service = _one_of(fields.get("service"), _closed.services)
        for card in fields.get("cards") or ():
            rule = ((card.get("extension") or {}).get("dexfree") or {}).get("rule")
            _cards_series(service, "none" if rule is None else _one_of(rule, _closed.rules),
                          _one_of(card.get("indicator"), INDICATORS)).inc()
    elif name == "fhir_read":
        FHIR_READS.labels(_one_of(fields.get("outcome"), FHIR_OUTCOMES)).inc()
        if fields.get("cached"):
            FHIR_CACHE_HITS.inc()
    elif name == "jwt_refused":
        JWT_REFUSALS.labels(_code(fields.get("reason"))).inc()
    elif name == "feedback":
        for outcome in fields.get("outcomes") or ():
            FEEDBACK_ENTRIES.labels(_one_of(outcome, FEEDBACK_OUTCOMES)).inc()
        result = fields.get("result") or {}
        for key in STORE_RESULTS:
            count = result.get(key)
            if isinstance(count, int) and count > 0:
                FEEDBACK_STORED.labels(key).inc(count)
    elif name == "audit_queue":
        AUDIT_QUEUE.set(float(fields.get("depth") or 0))
    elif name == "audit_lost":
        count = fields.get("count")
        if isinstance(count, int) and count > 0:
            AUDIT_LOST.inc(count)


# --- /metrics ---------------------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    """The multiprocess folder when the service runs under gunicorn's several workers, else None."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


def allowed(remote_addr: str | None, networks: Sequence[str]) -> bool:
    """Whether a client address may read /metrics: `*`, or inside one of the networks (CIDR or address)."""
    if "*" in networks:
        return True
    try:
        address = ipaddress.ip_address((remote_addr or "").strip("[]"))
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of every worker (multiprocess mode) or of this process."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    registry.register(SafeMultiProcessCollector(path))
    return generate_latest(registry), CONTENT_TYPE_LATEST


@contextlib.contextmanager
def _locked(path: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(path, _LOCK_FILE), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _readable(path: str) -> bool:
    try:
        list(MmapedDict.read_all_values_from_file(path))
    except FileNotFoundError:
        return False
    except Exception:  # a corrupted or empty file (client_python #347, #1199)
        return False
    return True


class SafeMultiProcessCollector(MultiProcessCollector):
    """The multiprocess collector, reading each file on its own: an unreadable one is left out and counted."""

    def __init__(self, path: str) -> None:
        super().__init__(None, path)

    def collect(self) -> Iterator[Any]:
        with _locked(self._path, exclusive=False):
            files = sorted(glob.glob(os.path.join(self._path, "*.db")))
            good = [f for f in files if _readable(f)]
            metrics = list(self.merge(good, accumulate=True))
        yield from metrics
        files_gauge = GaugeMetricFamily("cds_metrics_files", "Files in the multiprocess metrics folder")
        files_gauge.add_metric([], len(files))
        yield files_gauge
        unreadable = GaugeMetricFamily("cds_metrics_unreadable_files",
                                       "Multiprocess metrics files left out of this scrape (corrupted)")
        unreadable.add_metric([], len(files) - len(good))
        yield unreadable


# --- gunicorn hooks (deploy/gunicorn.conf.py) -----------------------------------------------------

def prepare_directory(path: str) -> None:
    """At the master's start: create the folder and remove the files of an earlier run (`on_starting`)."""
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def worker_exited(pid: int, path: str) -> None:
    """A worker died (`child_exit`, in the master): fold its counters into the archive, drop its files."""
    with _locked(path, exclusive=True):
        for typ in _ADDITIVE:
            dead = os.path.join(path, f"{typ}_{pid}.db")
            if not os.path.exists(dead):
                continue
            if _readable(dead):
                _fold(dead, os.path.join(path, f"{typ}_{ARCHIVE}.db"))
            else:
                log.warning("metrics file of a dead worker unreadable; dropped",
                            extra={"fields": {"type": typ}})
            with contextlib.suppress(FileNotFoundError):
                os.remove(dead)
        mark_process_dead(pid, path)
        for other in glob.glob(os.path.join(path, f"gauge_*_{pid}.db")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(other)


def _fold(dead: str, archive: str) -> None:
    values = list(MmapedDict.read_all_values_from_file(dead))
    if os.path.exists(archive) and not _readable(archive):
        # A corrupted archive cannot be added to; starting a new one loses only the dead workers' past.
        os.remove(archive)
    target = MmapedDict(archive)
    try:
        for key, value, timestamp, _ in values:
            old, _ = target.read_value(key)
            target.write_value(key, old + value, timestamp)
    finally:
        target.close()
