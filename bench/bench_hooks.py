"""Hook latency under concurrent load, as an EHR sends it, against the bare framework on the same gunicorn.

    python bench/bench_hooks.py [--seconds 15] [--rounds 3] [--connections 4] [--kinds …] [--sizes …]

Method (bench/README.md, "Hook latency"): the service is started as `make run` starts it (`cds-service
serve`: deploy/gunicorn.conf.py, the default workers, threads, log level and audit store, here a fresh
SQLite file), and beside it the floor, bench/floor_app.py (Flask parsing the JSON body and answering
`{"cards": []}`), with the same gunicorn binary and configuration file. wrk (Debian's package) sends the
same body to both, with a fresh `hookInstance` in every request (bench/wrk_post.lua), with 4 connections;
wrk is pinned to one core and both servers to another where the machine has two or more. Rounds
alternate service and floor, so a change in the machine's load hits both. Each call kind and size is
checked first for the cards it must give (the arm-B warning must be there, the others must have none).

Printed per call kind and record size: the median over the rounds of p50, p99, requests per second and
CPU time per request of each server, the ratios service / floor of those medians, and ("paired") the
median of each round's ratio to the floor round beside it. Goals (issue 21), for 100 resources: the
arm-B warning and the enrolled patient p50 ≤ 2× and p99 ≤ 3×; the patient outside the trial p50 ≤ 1.3×.
Nothing is asserted: a benchmark measures, tests decide.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from random import Random

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.rules.scenario import (  # noqa: E402
    care_plan,
    day_of,
    dex_order,
    medication_request,
    patient,
    research_study,
    research_subject,
)
from tests.servers import free_port, start_logged, stop, wait_until_up  # noqa: E402

KINDS = ("not-enrolled", "enrolled-no-dex", "arm-b-warning")
SIZES = (10, 100, 2000)
# The cards each kind must give, by rule: the benchmark refuses to measure a call that answers otherwise.
EXPECTED = {"not-enrolled": [], "enrolled-no-dex": [], "arm-b-warning": ["dex-after-cycle-2"]}
# What the wrk script replaces in every request by a fresh id.
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
SUPPORTIVE = (
    "ondansetron 8 mg", "pantoprazole 40 mg", "aciclovir 400 mg", "cotrimoxazole 800/160 mg",
    "paracetamol 1 g", "cetirizine 10 mg", "enoxaparin 4000 IU", "zoledronic acid 4 mg",
    "loperamide 2 mg", "macrogol 10 g", "famotidine 20 mg", "diphenhydramine 25 mg",
)
SERVICE_PATH = "/cds-services/dex-free-order-sign"


def _administration(aid: str, text: str, on: date) -> dict:
    return {
        "resourceType": "MedicationAdministration", "id": aid, "status": "completed",
        "medicationCodeableConcept": {"text": text}, "subject": {"reference": "Patient/pat-42"},
        "effectiveDateTime": f"{on.isoformat()}T09:00:00+01:00",
    }


def _bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                       "resource": r} for r in resources]}


def body(kind: str, size: int, today: date, seed: int = 7) -> dict:
    """An order-sign request with complete prefetch holding about `size` resources.

    The trial patients are the protocol's arm B ICARIA patient in cycle 4 on `today`, with a regimen
    CarePlan and isatuximab, pomalidomide and (cycles 1–2) dexamethasone given; the patient outside the
    trial has no enrolment. Every record is filled up with supportive medications the rules do not read
    (the bulk of a real medication list). The draft: dexamethasone 40 mg (the warning; for the patient
    outside the trial, an antiemetic course as any ward orders it), or ondansetron for the enrolled
    patient without a dexamethasone order.
    """
    rng = Random(seed)
    c1d1 = today - timedelta(days=3 * 28)
    trial = kind != "not-enrolled"
    administrations: list[dict] = []
    orders: list[dict] = []
    if trial:
        for cycle in range(1, 5):
            for day in (1, 8, 15, 22) if cycle == 1 else (1, 15):
                if day_of(cycle, day, c1d1) <= today:
                    administrations.append(_administration(f"isa-{cycle}-{day}", "isatuximab",
                                                           day_of(cycle, day, c1d1)))
            orders.append(medication_request("pomalidomide 4 mg", day_of(cycle, 1, c1d1), f"pom-{cycle}",
                                             status="completed"))
            if cycle <= 2:
                administrations += [_administration(f"dex-{cycle}-{day}", "dexamethasone 40 mg",
                                                    day_of(cycle, day, c1d1)) for day in (1, 8, 15, 22)]
    subjects = [research_subject(enrolled=(c1d1 - timedelta(days=10)).isoformat())] if trial else []
    plans = [care_plan(start=c1d1)] if trial else []
    fixed = 1 + len(subjects) + len(plans) + 1 + 1  # patient, enrolment, plan, study, draft
    room = max(size - fixed, 0)
    history = (administrations + orders)[:room]
    while len(history) < room:
        on = today - timedelta(days=rng.randrange(1, 1000))
        text = rng.choice(SUPPORTIVE)
        if rng.random() < 0.5:
            history.append(medication_request(text, on, f"rx-{len(history)}", status="completed"))
        else:
            history.append(_administration(f"ma-{len(history)}", text, on))
    if kind == "enrolled-no-dex":
        draft = medication_request("ondansetron 8 mg", today, "draft-1", status="draft")
    else:
        draft = dex_order(today, 8 if kind == "not-enrolled" else 40, days=3 if kind == "not-enrolled" else 1)
    return {
        "hook": "order-sign",
        "hookInstance": PLACEHOLDER,
        "context": {"userId": "Practitioner/dr-1", "patientId": "pat-42",
                    "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                    "entry": [{"resource": draft}]}},
        "prefetch": {
            "patient": patient(),
            "medicationRequests": _bundle([r for r in history if r["resourceType"] == "MedicationRequest"]),
            "medicationAdministrations": _bundle([r for r in history
                                                  if r["resourceType"] == "MedicationAdministration"]),
            "researchSubjects": _bundle(subjects),
            "carePlans": _bundle(plans),
            "researchStudy": _bundle([research_study()]),
        },
    }


def count(request: dict) -> int:
    """Resources in a request, as the service counts them (prefetch Bundle entries and draft orders)."""
    parts = [*request["prefetch"].values(), request["context"]["draftOrders"]]
    return sum(len(p["entry"]) if p.get("resourceType") == "Bundle" else 1 for p in parts)


def _pinned(cpus: set[int] | None):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def _server(command: list[str], env: dict[str, str], cpus: set[int] | None) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = start_logged(command, cwd=REPO, env={**os.environ, **env, "PORT": str(port)},
                           preexec_fn=_pinned(cpus))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/healthz", process, timeout=60)
        yield base, process.pid
    finally:
        stop(process)


def _cpu_ticks(root: int) -> int:
    """CPU time (clock ticks, user + system) used so far by a server: the gunicorn master and its workers."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # After the name: state, ppid, …; utime and stime are the 12th and 13th.
            if int(stat.parent.name) == root or int(fields[1]) == root:
                total += int(fields[11]) + int(fields[12])
    return total


def _wrk(url: str, body_file: Path, seconds: float, connections: int, cpus: set[int] | None, *,
         server: int | None = None) -> dict:
    before = _cpu_ticks(server) if server else 0
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
               "-s", str(REPO / "bench" / "wrk_post.lua"), url, "--", str(body_file)]
    result = subprocess.run(command, capture_output=True, text=True, check=True,  # noqa: S603
                            preexec_fn=_pinned(cpus))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["non2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"{url}: {summary['non2xx']} non-2xx answers, {summary['socket_errors']} "
                           f"socket errors under load")
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    if server:
        ticks = _cpu_ticks(server) - before
        summary["cpu_us"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(summary["requests"], 1)
    return summary


def _check(base: str, request: dict, kind: str) -> list[str]:
    answer = requests.post(base + SERVICE_PATH, json=request, timeout=30)
    answer.raise_for_status()
    rules = [card["extension"]["dexfree"]["rule"] for card in answer.json()["cards"]]
    if rules != EXPECTED[kind]:
        raise RuntimeError(f"{kind}: the service answers {rules}, expected {EXPECTED[kind]}")
    return rules


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _paired(service: list[dict], floor: list[dict], key: str) -> float:
    """The median of each round's ratio to the floor's round right after it: a change in the machine's
    speed between rounds (seen here: the floor's p50 moving by half within minutes) cancels out."""
    return statistics.median(s[key] / f[key] for s, f in zip(service, floor, strict=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian's package)")
    cores = sorted(os.sched_getaffinity(0))
    load_cpus, server_cpus = ({cores[0]}, {cores[1]}) if len(cores) >= 2 else (None, None)
    today = date.today()
    with tempfile.TemporaryDirectory(prefix="dexfree-bench-") as scratch:
        env = {"CDS_DATABASE_URL": f"sqlite:///{scratch}/audit.sqlite3"}
        gunicorn = [sys.executable, "-m", "gunicorn", "--config", str(REPO / "deploy" / "gunicorn.conf.py")]
        service_cmd = [sys.executable, "-m", "cds_service.cli", "serve"]
        with _server(service_cmd, env, server_cpus) as (service, service_pid), \
                _server([*gunicorn, "bench.floor_app:app"], env, server_cpus) as (floor, floor_pid):
            print(f"service and floor pinned to cores {sorted(server_cpus or cores)}, wrk to "
                  f"{sorted(load_cpus or cores)}; {args.rounds} alternating rounds of {args.seconds:g} s, "
                  f"{args.connections} connections, a fresh hookInstance per request")
            print(f"{'call':<16} {'res.':>5} {'service p50/p99 ms':>19} {'floor p50/p99 ms':>17} "
                  f"{'ratio p50/p99':>14} {'req/s service/floor':>20} {'CPU us/req service/floor':>25} "
                  f"{'paired p50/p99':>16}")
            p50s: dict[tuple[str, int], float] = {}
            servers = (("service", service, service_pid), ("floor", floor, floor_pid))
            for kind in args.kinds:
                for size in args.sizes:
                    request = body(kind, size, today)
                    path = Path(scratch) / f"{kind}-{size}.json"
                    path.write_text(json.dumps(request))
                    _check(service, {**request, "hookInstance": "11111111-0000-4000-8000-000000000000"},
                           kind)
                    for _, base, _ in servers:  # warm-up: connections, caches, code paths
                        _wrk(base + SERVICE_PATH, path, 2, args.connections, load_cpus)
                    measured: dict[str, list[dict]] = {"service": [], "floor": []}
                    for _ in range(args.rounds):
                        for name, base, pid in servers:
                            measured[name].append(_wrk(base + SERVICE_PATH, path, args.seconds,
                                                       args.connections, load_cpus, server=pid))
                    s, f = measured["service"], measured["floor"]
                    p50s[(kind, size)] = _median(s, "p50")
                    print(f"{kind:<16} {count(request):>5} "
                          f"{_median(s, 'p50') / 1000:>8.2f} / {_median(s, 'p99') / 1000:>7.2f} "
                          f"{_median(f, 'p50') / 1000:>7.2f} / {_median(f, 'p99') / 1000:>6.2f} "
                          f"{_median(s, 'p50') / _median(f, 'p50'):>6.2f} / "
                          f"{_median(s, 'p99') / _median(f, 'p99'):>5.2f}"
                          f" {_median(s, 'rps'):>9.0f} / {_median(f, 'rps'):>6.0f}"
                          f" {_median(s, 'cpu_us'):>14.0f} / {_median(f, 'cpu_us'):>6.0f}"
                          f" {_paired(s, f, 'p50'):>8.2f} / {_paired(s, f, 'p99'):>5.2f}", flush=True)
    print("goals at 100 resources: arm-b-warning and enrolled-no-dex p50 <= 2, p99 <= 3; "
          "not-enrolled p50 <= 1.3")
    for kind in args.kinds:
        if (kind, 100) in p50s and (kind, 2000) in p50s:
            print(f"{kind}: 2,000 vs 100 resources, p50 ratio {p50s[(kind, 2000)] / p50s[(kind, 100)]:.2f} "
                  f"(goal <= 10)")


if __name__ == "__main__":
    main()
