"""Benchmark of bulk screening (`cds-service screen`): patients per second on one core, and peak memory.

For 1,000 and 10,000 synthetic patients of about 100 resources each (tests/fixtures/eligibility/population.py,
fixed seed), written as a Bulk FHIR NDJSON export, each screening runs in a fresh subprocess pinned to one
CPU. It prints, per size and record profile:

- patients/s: patients screened per second of the screening itself (the export is written beforehand;
  loading the knowledge is left out). Target ≥ 200/s.
- peak RSS: the subprocess's maximum resident memory (getrusage ru_maxrss), interpreter and FHIR models
  included. Target: flat from 1,000 to 10,000 patients (the ratio printed last, ≈ 1.0).

Two record profiles: `compact` (a regimen as one order per oral drug and one infusion per cycle: about 13
of the 100 resources are read by the criteria) and `detailed` (monthly orders and three infusions per
cycle: about 35 of 100 are read). Throughput is set by how many resources the criteria read: each is
validated with the R4B models (about 0.15–0.3 ms each here), the rest is skipped on the raw JSON.
Not a test: nothing is asserted; figures depend on the machine and its load.

    .venv/bin/python bench/bench_screen.py [--sizes 1000,10000] [--profiles compact,detailed]
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
    """Screen one export (in this fresh process) and print the figures as JSON."""
    import io

    from cds_service.config import Config
    from cds_service.knowledge.model import load_knowledge
    from cds_service.rules.facts import Options
    from cds_service.screen.run import screen
    from tests.fixtures.eligibility.builders import TODAY

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    config = Config()
    knowledge = load_knowledge(config.plan_definitions)
    out = io.StringIO()
    started = time.perf_counter()
    summary = screen(Path(folder), knowledge, TODAY, Options.from_config(config), out=out)
    elapsed = time.perf_counter() - started
    print(json.dumps({"patients": summary.patients, "rows": summary.rows, "resources": summary.resources,
                      "kept": summary.kept, "seconds": elapsed,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def generate(folder: Path, count: int, detailed: bool) -> int:
    from tests.fixtures.eligibility.population import population, write_ndjson

    return write_ndjson(folder, population(count, seed=SEED, detailed=detailed))


def measure(folder: Path) -> dict:
    command = [sys.executable, __file__, "--child", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)  # noqa: S603
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--profiles", default="compact,detailed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'profile':<9} {'patients':>8} {'resources':>9} {'read/pt':>7} {'seconds':>8} {'patients/s':>10} "
          f"{'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as scratch:
        for profile in args.profiles.split(","):
            peaks = []
            for size in sizes:
                folder = Path(scratch) / f"{profile}-{size}"
                generate(folder, size, detailed=profile == "detailed")
                figures = measure(folder)
                peaks.append(figures["maxrss_kb"])
                rate = figures["patients"] / figures["seconds"]
                print(f"{profile:<9} {figures['patients']:>8} {figures['resources']:>9} "
                      f"{figures['kept'] / figures['patients']:>7.1f} {figures['seconds']:>8.1f} "
                      f"{rate:>10.0f} {figures['maxrss_kb'] / 1024:>11.0f}", flush=True)
                for path in folder.iterdir():
                    path.unlink()
            if len(peaks) > 1:
                ratio = peaks[-1] / peaks[0]
                print(f"{profile:<9} peak memory {sizes[-1]:,} / {sizes[0]:,} patients: {ratio:.2f}")


if __name__ == "__main__":
    main()
