"""Real parts for tests: PostgreSQL, Redis, gunicorn and the FHIR server; free ports, readiness, shutdown.

A test that needs a real part and cannot have it goes through `require`: it FAILS when the environment
variable CI is set (CI must test what ships, never skip it quietly) and skips, saying why, elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

from cds_service.security.urls import redact_url

REPO = Path(__file__).resolve().parent.parent
# tests/services/with_postgres.sh (what `make test` runs) sets these; the defaults are this machine's.
POSTGRES_URL = os.environ.get("CDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    """CI=true (how `.ci/run` is run); an empty value, 0 or false mean a developer's machine."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(part: str, reason: str) -> NoReturn:
    """`part` (PostgreSQL, Redis, the FHIR server, a browser) cannot be had: fail under CI, else skip."""
    message = f"{part} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message}. CI is set, so this fails instead of skipping: CI must provide {part}",
                    pytrace=False)
    pytest.skip(message)


def postgres_admin() -> psycopg.Connection:
    """An autocommit connection to the test PostgreSQL server, or `require` says why there is none."""
    reason = os.environ.get("CDS_TEST_POSTGRES_SKIP")  # with_postgres.sh found no server and could start none
    if reason:
        require("PostgreSQL", reason)
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        error = type(exc).__name__  # required outside the handler: the failure then shows no chained traceback
    shown = make_url(POSTGRES_URL).render_as_string(hide_password=True)
    require("PostgreSQL", f"no server answers at {shown} ({error}); `make test` starts one")


class PostgresDatabases:
    """Creates and drops uniquely named databases (dexfree_test_<run hex>_<n>): parallel runs never meet."""

    def __init__(self, admin: psycopg.Connection, prefix: str | None = None) -> None:
        self.admin = admin
        self.prefix = prefix or f"dexfree_test_{secrets.token_hex(4)}"
        self._numbers = itertools.count(1)

    def create(self) -> tuple[str, str]:
        name = f"{self.prefix}_{next(self._numbers)}"
        # template0 never has sessions: another suite connected to template1 cannot make this fail.
        self.admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        return name, url

    def drop(self, name: str) -> None:
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_all(self) -> None:
        """Drop every database of this run that is left (a test that died half-way)."""
        leftovers = self.admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                       (self.prefix + "%",)).fetchall()
        for (name,) in leftovers:
            self.drop(name)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server (its URL), dropped afterwards."""
    admin = postgres_admin()
    databases = PostgresDatabases(admin)
    try:
        name, url = databases.create()
        try:
            yield url
        finally:
            databases.drop(name)
    finally:
        databases.drop_all()
        admin.close()


def redis_or_require(url: str = REDIS_URL) -> redis.Redis:
    """A client of the test Redis server that answered a PING, or `require` says why there is none."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
        return client
    except redis.RedisError as exc:
        error = type(exc).__name__
    client.close()
    require("Redis", f"nothing answers at {redact_url(url)} ({error})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `url` until it answers; fail with the server's output if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = output_of(process)
            raise RuntimeError(f"server exited with {process.returncode}:\n{out[-3000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer under load
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
    return output_of(process)


def start_logged(command: list[str], **kwargs) -> subprocess.Popen:
    """Start a server whose output goes to a file, never a pipe: a pipe nobody reads fills after about
    64 KiB of log and the server then blocks on its next log line (seen under a few hundred requests)."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives with it
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, **kwargs)
    process.log = log  # type: ignore[attr-defined]
    return process


def output_of(process: subprocess.Popen) -> str:
    """What a server started by `start_logged` has written so far."""
    log = getattr(process, "log", None)
    if log is None:
        return process.stdout.read() if process.stdout else ""
    log.flush()
    log.seek(0)
    return log.read()


@contextlib.contextmanager
def cds_service(env: Mapping[str, str] | None = None, args: tuple[str, ...] = (),
                port: int | None = None) -> Iterator[tuple[str, list[str]]]:
    """Run `cds-service serve` (gunicorn) on a free port; yields its base URL and, after exit, its log.

    `port`: where to expect the server when `args` choose it (`--port`); else a free one via PORT.
    Its audit store is a fresh database on the real PostgreSQL (what a deployment with several workers
    or replicas uses) unless `env` names CDS_DATABASE_URL; without PostgreSQL, `require` decides.
    """
    with contextlib.ExitStack() as stack:
        database = (env or {}).get("CDS_DATABASE_URL") or stack.enter_context(postgres_database())
        with _gunicorn(env, args, port, database) as served:
            yield served


@contextlib.contextmanager
def _gunicorn(env: Mapping[str, str] | None, args: tuple[str, ...], port: int | None,
              database: str) -> Iterator[tuple[str, list[str]]]:
    full_env = {**os.environ, "PORT": str(free_port()), "CDS_WORKERS": "1", "CDS_THREADS": "4",
                **(env or {}), "CDS_DATABASE_URL": database}
    command = [sys.executable, "-m", "cds_service.cli", "serve", *args]
    process = start_logged(command, cwd=REPO, env=full_env)
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
    if node is None:
        require("the test FHIR server", "`node` is not on the PATH")
    if not (FHIR_SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        require("the test FHIR server", "its node packages are not installed (`make test` runs `npm ci` in "
                "tests/fhir_server)")
    port = free_port()
    command = [node, "server.mjs", "--port", str(port), "--base", base_path,
               "--delay-ms", str(delay_ms), "--page-size", str(page_size)]
    if token:
        command += ["--token", token]
    if replay:
        command.append("--replay")
    process = start_logged(command, cwd=FHIR_SERVER_DIR)
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
