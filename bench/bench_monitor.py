"""Benchmark of trial monitoring (`cds-service monitor`): patients per second on one core, and peak memory.

For 1,000 and 10,000 synthetic patients of about 100 resources each (tests/monitor/population.py, fixed
seed: the monitoring archetypes — arm A and arm B patients in both regimens, planted deviations, patients
not in the study — with the screening generator's filler), written as a Bulk FHIR NDJSON export, each run
goes through the monitor's pipeline in a fresh subprocess pinned to one CPU. It prints, per size:

- patients/s: patients monitored per second of the run itself (the export is written beforehand; loading
  the knowledge is left out). Target ≥ 200/s. "per CPU s" is the same per second of the process's own
  CPU time: on a machine shared with other work, wall-clock time also counts the waits for the core.
- peak RSS: the subprocess's maximum resident memory (getrusage ru_maxrss), interpreter and FHIR models
  included. Target: flat from 1,000 to 10,000 patients (the ratio printed last, ≈ 1.0).
Not a test: nothing is asserted; figures depend on the machine and its load.

    .venv/bin/python bench/bench_monitor.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEED = 20261124


def child(folder: str) -> None:
    """Monitor one export (in this fresh process) and print the figures as JSON."""
    from zoneinfo import ZoneInfo

    from cds_service.config import Config
    from cds_service.knowledge.model import load_knowledge
    from cds_service.monitor.run import run_monitor
    from tests.fixtures.eligibility.builders import TODAY

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    config = Config()
    knowledge = load_knowledge(config.plan_definitions)
    # Written to a file as the command writes it: held in memory, the output would grow with the export.
    with open(os.devnull, "w", encoding="utf-8") as out:
        started, cpu = time.perf_counter(), time.process_time()
        summary = run_monitor(Path(folder), knowledge, TODAY, ZoneInfo(config.timezone), out=out, fmt="json")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"patients": summary.patients, "rows": summary.rows, "resources": summary.resources,
                      "kept": summary.kept, "seconds": elapsed, "cpu": cpu,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def generate(folder: Path, count: int) -> int:
    from tests.monitor.population import population, write_export

    return write_export(folder, population(count, seed=SEED))


def measure(folder: Path) -> dict:
    command = [sys.executable, __file__, "--child", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)  # noqa: S603
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'patients':>8} {'enrolled':>8} {'resources':>9} {'read/pt':>7} {'seconds':>8} "
          f"{'patients/s':>10} {'per CPU s':>9} {'peak RSS MB':>11}")
    peaks = []
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as scratch:
        for size in sizes:
            folder = Path(scratch) / f"monitor-{size}"
            generate(folder, size)
            figures = measure(folder)
            peaks.append(figures["maxrss_kb"])
            rate, per_cpu = (figures["patients"] / figures[k] for k in ("seconds", "cpu"))
            print(f"{figures['patients']:>8} {figures['rows']:>8} {figures['resources']:>9} "
                  f"{figures['kept'] / figures['patients']:>7.1f} {figures['seconds']:>8.1f} {rate:>10.0f} "
                  f"{per_cpu:>9.0f} {figures['maxrss_kb'] / 1024:>11.0f}", flush=True)
            for path in folder.iterdir():
                path.unlink()
    if len(peaks) > 1:
        print(f"peak memory {sizes[-1]:,} / {sizes[0]:,} patients: {peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
