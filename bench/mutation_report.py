"""Mutation score per module and the surviving mutants, from mutmut's results in mutants/ (make mutation).

    python bench/mutation_report.py [--diff] [--fail-under PERCENT] [--modules GLOB ...]

A mutant is *killed* when a test failed (or timed out, or the type checker caught it) with it in place; it
*survived* when every test passed, and has *no tests* when no selected test runs its function: both count
against the score. Mutants mutmut has not run yet (`not checked`) are left out of the score and counted.
A survivor listed in bench/README.md ("Mutation testing", a line naming it in backticks, then the reason)
is an *equivalent* mutant: the code behaves the same with it, and no test can tell; it is shown apart and
does not count against the score ("raw" counts it as a survivor). --fail-under makes the exit status 1
when a module with checked mutants scores less, or has a survivor that is neither killed nor listed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTANTS = REPO / "mutants"
README = REPO / "bench" / "README.md"

# mutmut's exit codes (mutmut/stats.py); any other code is "suspicious" (counted as not killed).
KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", 37: "caught by type check"}
NOT_RUN = {None: "not checked", 34: "skipped", 2: "interrupted"}
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests"}


def status(code: int | None) -> str:
    return KILLED.get(code) or NOT_RUN.get(code) or SURVIVED.get(code) or "suspicious"  # type: ignore[arg-type]


def equivalent_mutants(readme: Path = README) -> dict[str, str]:
    """Mutant name → reason, from the lines of the README's "Mutation testing" section that name one."""
    if not readme.exists():
        return {}
    text = readme.read_text()
    section = text.partition("## Mutation testing")[2].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for line in section.splitlines():
        for name in re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", line):
            found[name] = line.split("—", 1)[-1].strip() if "—" in line else line.strip()
    return found


def module_of(meta: Path) -> str:
    return meta.relative_to(MUTANTS).as_posix().removesuffix(".meta")


def load(patterns: list[str]) -> dict[str, dict[str, int | None]]:
    """Per mutated source file (e.g. cds_service/rules/orders.py): mutant name → exit code."""
    results: dict[str, dict[str, int | None]] = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        module = module_of(meta)
        if patterns and not any(fnmatch.fnmatch(module, p) for p in patterns):
            continue
        results[module] = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", action="store_true",
                        help="show each unaccounted survivor's diff (mutmut show)")
    parser.add_argument("--fail-under", type=float, default=None, metavar="PERCENT")
    parser.add_argument("--modules", nargs="*", default=[], metavar="GLOB",
                        help="only these source files, e.g. 'cds_service/security/*'")
    args = parser.parse_args(argv)
    if not MUTANTS.is_dir():
        print("no mutants/ here: run `make mutation` first", file=sys.stderr)
        return 2
    equivalent = equivalent_mutants()
    results = load(args.modules)
    failing: list[str] = []
    unaccounted: list[str] = []
    print(f"{'module':<42} {'killed':>6} {'survived':>8} {'equiv.':>6} {'no run':>6} {'score':>7} {'raw':>7}")
    for module, codes in results.items():
        counts = Counter(status(code) for code in codes.values())
        names = [n for n, code in codes.items() if status(code) in ("survived", "no tests", "suspicious")]
        listed = [n for n in names if n in equivalent]
        killed = sum(counts[s] for s in set(KILLED.values()))
        not_run = sum(counts[s] for s in set(NOT_RUN.values()))
        live = len(names) - len(listed)
        checked = killed + live
        score = 100.0 * killed / checked if checked else float("nan")
        raw = 100.0 * killed / (checked + len(listed)) if checked + len(listed) else float("nan")
        print(f"{module:<42} {killed:>6} {live:>8} {len(listed):>6} {not_run:>6} {score:>6.1f}% {raw:>6.1f}%")
        unaccounted += [n for n in names if n not in equivalent]
        if args.fail_under is not None and checked and (score < args.fail_under or live):
            failing.append(module)
    if unaccounted:
        print(f"\nSurviving mutants ({len(unaccounted)}; `mutmut show NAME` gives the diff):")
        for name in unaccounted:
            print(f"  {name}")
            if args.diff:
                mutmut = str(Path(sys.executable).parent / "mutmut")
                shown = subprocess.run([mutmut, "show", name], cwd=REPO,  # noqa: S603 - our own fixed argv
                                       capture_output=True, text=True, check=False)
                print("    " + shown.stdout.strip().replace("\n", "\n    "))
    listed_here = [n for codes in results.values() for n in codes if n in equivalent]
    if listed_here:
        print(f"\nEquivalent mutants, as listed in bench/README.md ({len(listed_here)}):")
        for name in listed_here:
            reason = equivalent[name]
            print(f"  {name} — {reason[:70]}{'…' if len(reason) > 70 else ''}")
    if failing:
        print(f"\nBelow {args.fail_under:g} % or with unaccounted survivors: {', '.join(failing)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
