"""Starting and stopping real servers for tests: free ports, readiness polling, clean shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `url` until it answers; fail with the server's output if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{out[-3000:]}")
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.05)  # readiness polling, not a timing assumption
    raise RuntimeError(f"server at {url} did not come up within {timeout} s")


def stop(process: subprocess.Popen) -> str:
    """Stop a server started with `start_new_session` (its whole group) and return its output."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.stdout.read() if process.stdout else ""


@contextlib.contextmanager
def cds_service(env: Mapping[str, str] | None = None, args: tuple[str, ...] = (),
                port: int | None = None) -> Iterator[tuple[str, list[str]]]:
    """Run `cds-service serve` (gunicorn) on a free port; yields its base URL and, after exit, its log.

    `port`: where to expect the server when `args` choose it (`--port`); else a free one via PORT.
    """
    full_env = {**os.environ, "PORT": str(free_port()), "CDS_WORKERS": "1", "CDS_THREADS": "4",
                "CDS_DATABASE_URL": os.environ.get("CDS_TEST_DATABASE_URL", "sqlite:///:memory:"),
                **(env or {})}
    command = [sys.executable, "-m", "cds_service.cli", "serve", *args]
    process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port or full_env['PORT']}"
    output: list[str] = []
    try:
        wait_until_up(base + "/healthz", process)
        yield base, output
    finally:
        output.append(stop(process))
