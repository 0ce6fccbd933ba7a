"""Starting and stopping real servers for tests: free ports, readiness polling, clean shutdown."""

from __future__ import annotations

import contextlib
import os
import shutil
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


FHIR_SERVER_DIR = REPO / "tests" / "fhir_server"


@contextlib.contextmanager
def fhir_server(base_path: str = "/fhir", *, delay_ms: int = 0, page_size: int = 0,
                token: str | None = None, replay: bool = False) -> Iterator[tuple[str, list[str]]]:
    """Run the Medplum FHIR server of tests/fhir_server on a free loopback port; yields its base URL.

    `page_size` makes it page searches with `next` links; `token` makes it answer 401 without that
    bearer token; `delay_ms` delays every FHIR request; `replay` answers a repeated GET from memory.
    Its node packages come from `npm ci` (make test).
    """
    node = shutil.which("node")
    if node is None or not (FHIR_SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        raise RuntimeError("the test FHIR server needs node and `npm ci` in tests/fhir_server (make test does it)")
    port = free_port()
    command = [node, "server.mjs", "--port", str(port), "--base", base_path,
               "--delay-ms", str(delay_ms), "--page-size", str(page_size)]
    if token:
        command += ["--token", token]
    if replay:
        command.append("--replay")
    process = subprocess.Popen(command, cwd=FHIR_SERVER_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    origin = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        wait_until_up(origin + "/__admin/requests", process)
        yield origin + base_path, output
    finally:
        output.append(stop(process))


def fhir_requests(base: str, reset: bool = False) -> int:
    """How many FHIR requests the test FHIR server at `base` has served (reset to 0 if asked)."""
    origin = base.split("/", 3)
    url = "/".join(origin[:3]) + "/__admin/requests"
    response = requests.delete(url, timeout=5) if reset else requests.get(url, timeout=5)
    return response.json()["requests"]
