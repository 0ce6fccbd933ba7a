"""Benchmark of the order-sign path with complete prefetch, on the real gunicorn of `make run`.

Prints two figures (targets from the dexamethasone issue), nothing asserted; `make bench` runs it:
1. a typical trial patient (~100 resources in the prefetch): p50 and p99 of the order-sign call over the
   p50 and p99 of a trivial JSON POST of the same size to the same server (the feedback endpoint with an
   empty feedback list and padding), measured interleaved in one run (targets ≤ 2× and ≤ 3×);
2. the same call for a patient with 2,000 resources over one with 100 (target ≤ 10×: linear growth).
Patients are generated with a fixed seed: an arm B ICARIA patient in cycle 4, with a regimen CarePlan,
isatuximab/pomalidomide/dexamethasone given cycle by cycle, and supportive medications that the
rules do not need (the bulk of a real medication list).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.rules.scenario import call, care_plan, day_of, dex_order  # noqa: E402
from tests.servers import cds_service  # noqa: E402

ROUNDS = 300
SUPPORTIVE = [
    "ondansetron 8 mg",
    "pantoprazole 40 mg",
    "aciclovir 400 mg",
    "cotrimoxazole 800/160 mg",
    "paracetamol 1 g",
    "cetirizine 10 mg",
    "enoxaparin 4000 IU",
    "zoledronic acid 4 mg",
    "loperamide 2 mg",
    "macrogol 10 g",
    "famotidine 20 mg",
    "diphenhydramine 25 mg",
]


def _request(rid: str, text: str, on: date) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "completed",
        "intent": "order",
        "subject": {"reference": "Patient/pat-42"},
        "authoredOn": on.isoformat(),
        "medicationCodeableConcept": {"text": text},
        "dosageInstruction": [
            {"text": "as directed", "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}
        ],
    }


def _administration(aid: str, text: str, on: date) -> dict:
    return {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": "Patient/pat-42"},
        "effectiveDateTime": f"{on.isoformat()}T09:00:00+01:00",
    }


def patient_body(size: int, seed: int = 7) -> dict:
    """An order-sign request for an arm B ICARIA patient whose prefetch holds about `size` resources."""
    rng = random.Random(seed)
    administrations, requests_ = [], []
    for cycle in range(1, 5):
        for day in (1, 8, 15, 22) if cycle == 1 else (1, 15):
            administrations.append(_administration(f"isa-{cycle}-{day}", "isatuximab", day_of(cycle, day)))
        for day in (1, 8, 15, 22):
            if cycle <= 2:
                administrations.append(
                    _administration(f"dex-{cycle}-{day}", "dexamethasone 40 mg", day_of(cycle, day))
                )
        requests_.append(_request(f"pom-{cycle}", "pomalidomide 4 mg", day_of(cycle, 1)))
    start = date(2024, 1, 1)
    while len(administrations) + len(requests_) + 4 < size:
        on = start + timedelta(days=rng.randrange(0, 1000))
        text = rng.choice(SUPPORTIVE)
        if rng.random() < 0.5:
            requests_.append(_request(f"rx-{len(requests_)}", text, on))
        else:
            administrations.append(_administration(f"ma-{len(administrations)}", text, on))
    return call(
        orders=(dex_order(day_of(4, 1)),),
        plans=(care_plan(),),
        administrations=tuple(administrations),
        requests=tuple(requests_),
    )


def _time_post(url: str, data: bytes) -> float:
    started = time.perf_counter()
    response = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


def _count(body: bytes) -> int:
    prefetch = json.loads(body)["prefetch"]
    return sum(len(v["entry"]) if v.get("resourceType") == "Bundle" else 1 for v in prefetch.values())


def main() -> None:
    with cds_service(env={"CDS_WORKERS": "1", "CDS_THREADS": "4", "CDS_LOG_LEVEL": "WARNING"}) as (
        base,
        _log,
    ):
        hook_url = f"{base}/cds-services/dex-free-order-sign"
        trivial_url = f"{base}/cds-services/dex-free-order-sign/feedback"
        typical = json.dumps(patient_body(100)).encode()
        large = json.dumps(patient_body(2000)).encode()
        check = requests.post(
            hook_url, data=typical, headers={"Content-Type": "application/json"}, timeout=30
        )
        cards = [c["extension"]["dexfree"]["rule"] for c in check.json()["cards"]]
        padding = len(typical) - len(b'{"feedback": [], "padding": ""}')
        trivial = json.dumps({"feedback": [], "padding": "x" * padding}).encode()
        for _ in range(30):  # warm-up: connections, caches, code paths
            _time_post(hook_url, typical)
            _time_post(trivial_url, trivial)
        hook_times, trivial_times = [], []
        for _ in range(ROUNDS):
            trivial_times.append(_time_post(trivial_url, trivial))
            hook_times.append(_time_post(hook_url, typical))
        large_times = [_time_post(hook_url, large) for _ in range(ROUNDS // 5)]
        small_times = [_time_post(hook_url, typical) for _ in range(ROUNDS // 5)]

    hook_p50, hook_p99 = _quantiles(hook_times)
    trivial_p50, trivial_p99 = _quantiles(trivial_times)
    print(f"typical patient: {_count(typical)} resources, {len(typical) / 1024:.0f} KiB, cards {cards}; "
          f"large: {_count(large)} resources")
    print(f"  order-sign   p50 {hook_p50 * 1000:7.2f} ms   p99 {hook_p99 * 1000:7.2f} ms")
    print(f"  trivial POST p50 {trivial_p50 * 1000:7.2f} ms   p99 {trivial_p99 * 1000:7.2f} ms")
    print(
        f"  ratio p50 {hook_p50 / trivial_p50:.2f} (target <= 2)   "
        f"p99 {hook_p99 / trivial_p99:.2f} (target <= 3)"
    )
    growth = statistics.median(large_times) / statistics.median(small_times)
    print(
        f"2,000 vs 100 resources: p50 {statistics.median(large_times) * 1000:.1f} ms vs "
        f"{statistics.median(small_times) * 1000:.1f} ms, ratio {growth:.2f} (target <= 10)"
    )


if __name__ == "__main__":
    main()
