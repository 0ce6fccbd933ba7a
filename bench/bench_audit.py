"""What recording the audit trail costs a hook call: the same call without audit, with the queued store
(what the service runs), and with a synchronous insert (the alternative), on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_audit.py [--calls N] [--postgres URL]

PostgreSQL is measured when a server answers at --postgres (default: CDS_TEST_POSTGRES_URL or the
machine's 127.0.0.1:5432), in a throwaway database dropped at the end. Prints times and ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cds_service.audit.rows import card_rows  # noqa: E402
from cds_service.audit.sink import NullAudit  # noqa: E402
from cds_service.audit.store import AuditStore  # noqa: E402
from cds_service.config import Config  # noqa: E402
from cds_service.fhir.record import PatientRecord  # noqa: E402
from cds_service.hooks.registry import Registry, ServiceDefinition  # noqa: E402
from cds_service.hooks.request import parse_hook_request  # noqa: E402
from cds_service.hooks.response import card  # noqa: E402
from cds_service.runtime import Runtime  # noqa: E402
from cds_service.security.caller import Caller  # noqa: E402

SERVICE = "bench-order-sign"
PAUSE = 0.005
ROUNDS = 10
CALLER = Caller(issuer="https://ehr.example", tenant="site-a")


def _cards(call) -> list[dict]:
    finding = {"study": "NCT06561854", "arm": "B", "regimen": "ICARIA", "cycle": 3, "cycleDay": 1}
    return [card(summary="Arm B: no dexamethasone from cycle 3", indicator="warning",
                 source={"label": "Bench"}, extension={"dexfree": {**finding, "rule": "dex-after-cycle-2"}}),
            card(summary="Trial status", indicator="info", source={"label": "Bench"},
                 extension={"dexfree": {**finding, "rule": "trial-status"}})]


def _request() -> dict:
    body = json.loads((REPO / "tests/fixtures/requests/spec-order-sign.json").read_text())
    # Without a server to read from: the study's reference is noted unresolved instead of read (the
    # fixture's fhirServer refuses connections, and each call would wait out its read deadline).
    body.pop("fhirServer", None)
    body.pop("fhirAuthorization", None)
    body["prefetch"]["researchSubjects"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "ResearchSubject", "id": "rs-1", "status": "on-study",
                      "identifier": [{"value": "DXF-0042"}],
                      "study": {"reference": "ResearchStudy/NCT06561854"},
                      "individual": {"reference": "Patient/pat-1"}}}]}
    return body


class SyncAudit:
    """The alternative design: insert the rows in the request thread before answering."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def cards_shown(self, service_id, request, record, cards, caller) -> None:
        self.store._insert_cards(card_rows(service_id, request, record, cards, caller=caller,
                                           salt=self.store.salt, now=self.store.clock()))


def _time_calls(runtime: Runtime, calls: int, pause: float = 0.0) -> list[float]:
    """Seconds per call; `pause` idles between calls (a service is rarely called back to back)."""
    body = _request()
    times = []
    for _ in range(calls):
        request = copy.deepcopy(body)
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        runtime.call(SERVICE, request, {}, CALLER)
        times.append(time.perf_counter() - started)
    return times


def _runtime(audit) -> Runtime:
    registry = Registry([ServiceDefinition(id=SERVICE, hook="order-sign", title="b", description="b",
                                           prefetch={}, evaluate=_cards)])
    return Runtime(config=Config(), registry=registry, audit=audit)


def _compare(variants: dict[str, Runtime], calls: int, pause: float, store: AuditStore) -> dict[str, list]:
    """Blocks of calls of each variant in turn, so that the machine's drift hits them all alike."""
    for runtime in variants.values():
        _time_calls(runtime, 20)  # warm-up: models, connections
    store.flush(60)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, runtime in variants.items():
            times[name] += _time_calls(runtime, calls // ROUNDS, pause)
            store.flush(60)  # untimed: the next block starts with an idle writer
    return times


def _line(name: str, times: list[float], base: list[float] | None) -> str:
    median, p90 = statistics.median(times) * 1e3, statistics.quantiles(times, n=10)[-1] * 1e3
    ratio = f"  ratio {statistics.median(times) / statistics.median(base):.3f}" if base else ""
    return f"  {name:<36} median {median:6.3f} ms  p90 {p90:6.3f} ms{ratio}"


def _measure(label: str, url: str, calls: int) -> None:
    print(f"{label}:")
    store = AuditStore(url)
    try:
        variants = {"no audit": _runtime(NullAudit()), "queued (the service)": _runtime(store),
                    "synchronous insert (alternative)": _runtime(SyncAudit(store))}
        for pause in (0.0, PAUSE):
            print(f" {'back to back' if not pause else f'a call every {pause * 1e3:g} ms'}:")
            times = _compare(variants, calls, pause, store)
            for name, measured in times.items():
                print(_line(name, measured, None if name == "no audit" else times["no audit"]))
        started = time.perf_counter()
        _time_calls(variants["queued (the service)"], 100)
        store.flush(60)
        print(f"  100 calls and their 200 cards written: {(time.perf_counter() - started) * 1e3:.0f} ms; "
              f"written in all {store.writer.written}, lost {store.writer.lost}")
        _writer_cost(store)
    finally:
        store.close()


def _writer_cost(store: AuditStore) -> None:
    """The writer thread's CPU per row by rows per write: what gathering cards (CARD_LINGER_S) saves."""
    request = parse_hook_request(_request(), "order-sign", SERVICE)
    row = card_rows(SERVICE, request, PatientRecord(patient_id=request.patient_id), _cards(None)[:1],
                    caller=CALLER, salt=store.salt, now=store.clock())[0]
    rows = 600
    print("  the writer's CPU per card row, by rows per write:")
    for size in (1, 3, 10, 30, 100):
        started = time.thread_time()
        for _ in range(rows // size):
            store._insert_cards([{**row, "card_uuid": secrets.token_hex(16)} for _ in range(size)])
        print(f"    {size:4d} rows a write: {(time.thread_time() - started) / rows * 1e6:6.0f} µs per row")


def _with_postgres(url: str, run: Callable[[str], None]) -> None:
    try:
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL: not measured ({type(exc).__name__}: no server at the given URL)")
        return
    name = f"dexfree_bench_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        run(make_url(url).set(database=name).render_as_string(hide_password=False))
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--postgres", default=os.environ.get("CDS_TEST_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(f"Hook call (order-sign, 2 cards) through Runtime.call: {args.calls} calls per variant, in "
          f"{ROUNDS} interleaved blocks; ratio = median with audit / median without.")
    with tempfile.TemporaryDirectory() as folder:
        _measure("SQLite (file, WAL, synchronous=FULL)", f"sqlite:///{folder}/audit.sqlite3", args.calls)
    _with_postgres(args.postgres, lambda url: _measure("PostgreSQL (loopback)", url, args.calls))

if __name__ == "__main__":
    main()
