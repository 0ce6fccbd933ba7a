"""The FHIR gateway of a process: allowlist, cache, pooled HTTP client and the threads reads run on."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests

from cds_service import events
from cds_service.config import Config
from cds_service.fhir.cache import ReadCache, cache_key
from cds_service.fhir.client import Deadline, FhirClient, FhirReadError, Target, new_session, spent
from cds_service.fhir.prefetch import TEMPLATES
from cds_service.logs import log_event
from cds_service.security.allowlist import check_fhir_server, relative_to

log = logging.getLogger(__name__)

# A late thread gets this long past the deadline before its read counts as not done.
_GRACE_SECONDS = 0.05


@dataclass(frozen=True)
class Read:
    """One thing to get from the server: a record part's search, a paged prefetch's remaining pages,
    or one referenced resource. `queries` are tried in order; the next one only after a 400."""

    name: str
    queries: tuple[str, ...]
    search: bool = True
    # The first query is an absolute next-page URL of a prefetched Bundle, not a relative request.
    continuation: bool = False


@dataclass
class Outcome:
    """What one Read gave: its resources, or the error that stopped it; and what it cost."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    # What the caller's `prepare` made of the resources on the read's thread (e.g. parsed models).
    prepared: Any = None
    error: FhirReadError | None = None
    requests: int = 0
    cached: bool = False


class FhirGateway:
    """Everything a process needs to read FHIR servers, built once (see Runtime) and shared by calls.

    The thread pool is bounded and per process, not per call: CDS_THREADS concurrent calls can each
    have all their parts in flight at once. Threads start on first use, so a gunicorn master that
    loads the app before forking holds none (and a forked worker builds its own).
    """

    def __init__(self, config: Config, *, session: requests.Session | None = None,
                 executor: Executor | None = None, clock: Callable[[], float] = time.monotonic,
                 sleeper: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.pool_size = min(64, max(8, config.threads * len(TEMPLATES)))
        self.client = FhirClient(session or new_session(self.pool_size),
                                 connect_timeout=config.fhir_connect_timeout,
                                 read_timeout=config.fhir_read_timeout,
                                 retries=config.fhir_retries, max_pages=config.fhir_max_pages)
        self.cache = ReadCache(config.cache_size, config.cache_ttl_seconds, timer=clock)
        self.clock = clock
        self.sleeper = sleeper
        self._executor = executor
        self._owned_executor: tuple[int, ThreadPoolExecutor] | None = None
        self._lock = threading.Lock()
        # (server, part) whose search with `_include` got a 400: asked without it from then on.
        self._no_include: set[tuple[str, str]] = set()

    def check_server(self, url: str | None) -> None:
        """403 for a fhirServer outside CDS_ALLOWED_FHIR_SERVERS (see security/allowlist.py)."""
        check_fhir_server(url, self.config.allowed_fhir_servers)

    def deadline(self) -> Deadline:
        """The deadline of one call's reads, starting now."""
        return Deadline.after(self.config.call_deadline_ms, self.clock, self.sleeper)

    def fetch(self, target: Target, reads: Iterable[Read], deadline: Deadline,
              prepare: Callable[[Read, list[dict[str, Any]]], Any] | None = None) -> dict[str, Outcome]:
        """Run the reads concurrently; every read ends with resources or an error by the deadline.

        `prepare` runs on the read's thread once its resources are in (thread-safe work only: it
        must not touch shared state); its result is `Outcome.prepared`.
        """
        pool = self._pool()
        futures: dict[str, Future] = {read.name: pool.submit(self._run, target, read, deadline, prepare)
                                      for read in reads}
        if not futures:
            return {}
        wait(futures.values(), timeout=max(0.0, deadline.remaining()) + _GRACE_SECONDS)
        outcomes = {}
        for name, future in futures.items():
            if future.done():
                outcomes[name] = future.result()
            else:
                future.cancel()
                outcomes[name] = Outcome(error=spent())
            events.emit("fhir_read", outcome=outcomes[name].error.kind if outcomes[name].error else "ok",
                        cached=outcomes[name].cached)
        return outcomes

    def _run(self, target: Target, read: Read, deadline: Deadline,
             prepare: Callable[[Read, list[dict[str, Any]]], Any] | None = None) -> Outcome:
        outcome = Outcome()

        def counted() -> None:
            outcome.requests += 1

        queries = read.queries
        if len(queries) > 1 and (target.base, read.name) in self._no_include:
            queries = tuple(q for q in queries if "_include=" not in q) or queries
        for index, query in enumerate(queries):
            relative: str | None = query
            if read.continuation and index == 0:
                relative = relative_to(query, target.base)
                if relative is None:
                    outcome.error = FhirReadError("a next-page link of the prefetch points outside "
                                                  "fhirServer; it was not followed", "redirect")
                    break
            key = cache_key(target.base, relative, target.access_token)
            try:
                value, outcome.cached = self.cache.get_or_load(
                    key, lambda q=query: self._load(target, read, q, deadline, counted),
                    deadline.remaining())
            except FhirReadError as exc:
                if exc.status == 400 and index + 1 < len(queries):
                    if "_include=" in query:
                        with self._lock:
                            self._no_include.add((target.base, read.name))
                    continue
                outcome.error = exc
                break
            except TimeoutError:
                outcome.error = spent()
                break
            outcome.resources = value if read.search else [value]
            if prepare is not None:
                outcome.prepared = prepare(read, outcome.resources)
            return outcome
        if outcome.error is not None:
            # The read's name is a record part or a `Type/id` reference: neither is patient data.
            log_event(log, "fhir read failed", logging.WARNING, read=read.name.split("/")[0],
                      kind=outcome.error.kind, status=outcome.error.status)
        return outcome

    def _load(self, target: Target, read: Read, query: str, deadline: Deadline,
              counted: Callable[[], None]) -> Any:
        if read.continuation:
            first = self.client.get_json(target, query, deadline, counted)
            return self.client.follow_pages(target, first, deadline, counted, followed=1)
        if read.search:
            return self.client.search(target, query, deadline, counted)
        return self.client.read(target, query, deadline, counted)

    def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        with self._lock:
            pid = os.getpid()
            if self._owned_executor is None or self._owned_executor[0] != pid:
                self._owned_executor = (pid, ThreadPoolExecutor(max_workers=self.pool_size,
                                                                thread_name_prefix="fhir-read"))
            return self._owned_executor[1]
