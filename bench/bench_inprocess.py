"""A hook call's own CPU cost, in one process, against the floor and against other checkouts of the service.

    python bench/bench_inprocess.py [--kind arm-b-warning] [--size 100] [--rounds 9] [--calls 300]
                                    [OTHER_CHECKOUT ...]

The load benchmark (bench_hooks.py) answers the issue's question; this one answers a developer's: did a
change make a call cheaper? Each server — the floor (bench/floor_app.py), this checkout, and every other
checkout named (a `git worktree` of an earlier commit, with a `.venv` of its own or linked) — runs in a
long-lived process of its own, the WSGI app called directly with the same body as bench_hooks.py sends
(a fresh hookInstance each time), gunicorn's garbage-collection settings and a multiprocess metrics
folder, as under `cds-service serve`. Rounds of `--calls` calls alternate between the processes (the
order reversed every other round), and each round is timed as the CPU time of the calling thread, which
time the machine gives other guests does not count. Printed per process: the median CPU per call, and
the medians of the paired ratios (each round over the floor's, and over this checkout's, beside it), which
a drift of the machine's speed between rounds does not move. On this machine kind the same checkout
measured twice gave a paired ratio of 0.94 (9 rounds of 200 calls): a change smaller than about 6 % is
not shown.

`--cold` changes one administration of the history in every call (a note with a fresh uuid): each call then
holds a history the process has not seen, as a patient's first call does, so the caches of a patient's
calls (parsed models, selected parts, the cycle clock) miss for that part and that one resource is
validated. Without it every call after the first sends the same history, as a patient's repeated calls do.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_COLD = "cold-history-marker"
REPO = BENCH.parent


def _serve(repo: str, floor: bool) -> None:
    """The measuring process: on each line `KIND SIZE CALLS` of stdin, one round; prints CPU µs per call."""
    # The checkout's own bench_hooks (its bodies, its REPO on the path), so its own cds_service is measured.
    sys.path[:0] = [repo, str(Path(repo) / "bench")]
    os.environ.setdefault("CDS_AUDIT_DB", str(Path(tempfile.mkdtemp()) / "audit.db"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
    import bench_hooks

    if floor:
        from floor_app import app
    else:
        from cds_service.app import create_app
        app = create_app()
    bodies: dict[tuple[str, int, bool], str] = {}

    def call(text: str) -> None:
        sent = text.replace(bench_hooks.PLACEHOLDER, str(uuid.uuid4())).replace(_COLD, str(uuid.uuid4()))
        data = sent.encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": bench_hooks.SERVICE_PATH,
                   "SERVER_NAME": "localhost", "SERVER_PORT": "8080", "HTTP_HOST": "localhost:8080",
                   "wsgi.url_scheme": "http",
                   "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
                   "wsgi.input": io.BytesIO(data), "wsgi.errors": io.StringIO()}
        b"".join(app(environ, lambda *_: None))

    # As deploy/gunicorn.conf.py does for its workers.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    print("ready", flush=True)
    for line in sys.stdin:
        kind, size, calls, cold = line.split()
        key = (kind, int(size), cold == "cold")
        if key not in bodies:
            request = bench_hooks.body(kind, int(size), date.today())
            if key[2]:
                first = request["prefetch"]["medicationAdministrations"]["entry"][0]["resource"]
                first["note"] = [{"text": _COLD}]
            bodies[key] = json.dumps(request)
            for _ in range(50):
                call(bodies[key])
        started = time.thread_time()
        for _ in range(int(calls)):
            call(bodies[key])
        print((time.thread_time() - started) / int(calls) * 1e6, flush=True)


def _start(repo: Path, floor: bool) -> subprocess.Popen[str]:
    python = repo / ".venv" / "bin" / "python"
    env = dict(os.environ, CDS_LOG_LEVEL=os.environ.get("CDS_LOG_LEVEL", "INFO"))
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        [str(python if python.exists() else sys.executable), __file__, "--serve", str(repo)]
        + (["--floor"] if floor else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        cwd=repo)
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        raise SystemExit(f"{repo}: the measuring process did not start")
    return process


def _round(process: subprocess.Popen[str], order: str) -> float:
    if process.stdin is None or process.stdout is None:
        raise SystemExit("the measuring process has no pipes")
    process.stdin.write(order + "\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("others", nargs="*", type=Path, help="other checkouts to compare with this one")
    parser.add_argument("--kind", default="arm-b-warning",
                        choices=("not-enrolled", "enrolled-no-dex", "arm-b-warning"))
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--cold", action="store_true", help="a history not seen before in every call")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.floor)
        return
    names = ["floor", "this checkout", *(str(o) for o in args.others)]
    processes = dict(zip(names, [_start(REPO, True), _start(REPO, False),
                                 *(_start(o.resolve(), False) for o in args.others)], strict=True))
    rounds: dict[str, list[float]] = {name: [] for name in names}
    try:
        for number in range(args.rounds):
            for name in names if number % 2 == 0 else names[::-1]:
                rounds[name].append(_round(processes[name], f"{args.kind} {args.size} {args.calls} "
                                                        f"{'cold' if args.cold else 'warm'}"))
    finally:
        for process in processes.values():
            if process.stdin is not None:
                process.stdin.close()
            process.wait()
    print(f"{args.kind}, {args.size} resources{', a new history each call' if args.cold else ''}: "
          f"{args.rounds} rounds of {args.calls} calls, CPU per call")
    print(f"{'':24s} {'µs/call':>8s} {'× floor':>8s} {'× this':>8s}")
    for name in names:
        paired = [statistics.median(a / b for a, b in zip(rounds[name], rounds[base], strict=True))
                  for base in ("floor", "this checkout")]
        print(f"{name[-24:]:24s} {statistics.median(rounds[name]):8.0f} {paired[0]:8.2f} {paired[1]:8.3f}")


if __name__ == "__main__":
    main()
