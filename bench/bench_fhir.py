"""Benchmark of the no-prefetch path: a hook call against a local FHIR server that waits 50 ms per request.

Prints, per hook, the whole call's time over the slowest single read the call makes (target ≤ 1.3:
the reads run side by side, not one after another), and how many FHIR requests a repeated call
within CDS_CACHE_TTL_SECONDS makes (target 0). Not a test: `make bench` runs it; nothing is asserted.

Two servers, both loaded with the test patients (tests/fhir/patients.py):
1. the test FHIR server itself (Medplum's router, tests/fhir_server) with `--delay-ms 50`. Node runs
   the router on one thread and its searches cost 3–16 ms of CPU each here, so concurrent requests
   queue inside the server: this row includes that server-side queueing;
2. the same server with `--replay`: each answer is computed once (during the warm-up) and replayed,
   so a request costs the 50 ms and no search work: a server whose time is latency, not CPU, as a
   remote EHR is to one client. This row measures the service's own parallelism.
Times are medians of several rounds, each call with an empty cache.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from cds_service.app import create_app  # noqa: E402
from cds_service.config import Config  # noqa: E402
from cds_service.fhir.client import Target  # noqa: E402
from cds_service.fhir.prefetch import server_queries  # noqa: E402
from cds_service.logs import configure_logging  # noqa: E402
from cds_service.runtime import Runtime  # noqa: E402
from tests.fhir.patients import SCREENED_PATIENT, TRIAL_PATIENT, transaction  # noqa: E402
from tests.servers import fhir_requests, fhir_server  # noqa: E402

DELAY_MS = 50
ROUNDS = 15
TOKEN = "bench-token"  # noqa: S105 - the local test server's token


def body(hook: str, patient_id: str, base: str) -> dict:
    context = {"userId": "Practitioner/bench", "patientId": patient_id}
    if hook != "patient-view":
        order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
                 "subject": {"reference": f"Patient/{patient_id}"},
                 "medicationReference": {"reference": "Medication/dex-4mg"}}
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": order}]}
        if hook == "order-select":
            context["selections"] = ["MedicationRequest/draft-1"]
    return {"hook": hook, "hookInstance": "0e5c7a7e-5b1e-4d8e-9d7c-bench0000001", "context": context,
            "fhirServer": base, "prefetch": {},
            "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "user/*.read", "subject": "bench"}}


def single_reads(runtime: Runtime, base: str, relatives: list[str]) -> float:
    """The median time of the slowest of the call's reads, each made alone by the service's own client."""
    client, target = runtime.fhir.client, Target(base, TOKEN)
    times: dict[str, list[float]] = {r: [] for r in relatives}
    for _ in range(ROUNDS):
        for relative in relatives:
            started = time.perf_counter()
            if "?" in relative:
                client.search(target, relative, runtime.fhir.deadline())
            else:
                client.read(target, relative, runtime.fhir.deadline())
            times[relative].append(time.perf_counter() - started)
    return max(statistics.median(t) for t in times.values())


def whole_calls(client, runtime: Runtime, service: str, payload: dict) -> float:
    durations = []
    data = json.dumps(payload)
    for _ in range(ROUNDS):
        runtime.fhir.cache.clear()
        started = time.perf_counter()
        response = client.post(f"/cds-services/{service}", data=data, content_type="application/json")
        durations.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{service}: {response.status_code} {response.get_data(as_text=True)[:500]}")
    return statistics.median(durations)


def table(title: str, base: str, count_requests) -> None:
    runtime = Runtime(config=Config(), clock=lambda: datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    client = create_app(runtime=runtime).test_client()
    # Warm-up: threads started, connections open, models built, the proxy's answers fetched.
    for hook, service in (("patient-view", "dex-free-patient-view"), ("order-sign", "dex-free-order-sign")):
        for patient in (SCREENED_PATIENT, TRIAL_PATIENT):
            runtime.fhir.cache.clear()
            client.post(f"/cds-services/{service}", data=json.dumps(body(hook, patient, base)),
                        content_type="application/json")
    print(f"\n{title}")
    print(f"{'hook':<14}{'reads':>6}{'slowest read':>15}{'whole call':>13}{'ratio':>8}{'repeat reads':>15}")
    for hook in ("patient-view", "order-select", "order-sign"):
        service = f"dex-free-{hook}"
        parts = runtime.registry.get(service).prefetch
        relatives = [server_queries(part, TRIAL_PATIENT)[0] for part in parts]
        if hook != "patient-view":
            relatives.append("Medication/dex-4mg")
        slowest = single_reads(runtime, base, relatives)
        payload = body(hook, TRIAL_PATIENT, base)
        whole = whole_calls(client, runtime, service, payload)
        runtime.fhir.cache.clear()
        client.post(f"/cds-services/{service}", data=json.dumps(payload), content_type="application/json")
        before = count_requests()
        client.post(f"/cds-services/{service}", data=json.dumps(payload), content_type="application/json")
        repeated = count_requests() - before
        print(f"{hook:<14}{len(relatives):>6}{slowest * 1000:>12.1f} ms{whole * 1000:>10.1f} ms"
              f"{whole / slowest:>8.2f}{repeated:>15}")


def main() -> None:
    configure_logging("ERROR")  # the test data's malformed Condition is logged when skipped: not news here
    print(f"No-prefetch hook calls, {DELAY_MS} ms per FHIR request; medians of {ROUNDS} rounds")
    with fhir_server("/fhir/r4", delay_ms=DELAY_MS, token=TOKEN) as (base, _log):
        requests.post(base, json=transaction(), timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        table("1. Medplum router, delay in node (one CPU thread: its search work queues)", base,
              lambda: fhir_requests(base))
    with fhir_server("/fhir/r4", delay_ms=DELAY_MS, token=TOKEN, replay=True) as (base, _log):
        requests.post(base, json=transaction(), timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        table("2. The same server replaying its answers (latency only: 50 ms, no search work)", base,
              lambda: fhir_requests(base))
    print("\ntargets: ratio <= 1.3 (reads in parallel); repeat reads = 0 (cache within the TTL)")


if __name__ == "__main__":
    main()
