"""Two replicas behind a real load balancer, sharing PostgreSQL and Redis, as production runs them.

Two `cds-service serve` (two gunicorn masters of two workers each, two loopback ports) behind HAProxy
(Debian's; make test installs it when missing), with the Sandbox's issuers file, one PostgreSQL database
made for this test and dropped after it, and the machine's Redis (a database number of this test, from
which exactly the keys of its tokens are deleted at the end). Shown here:

- a JWT used on one replica is refused on the other (the replay store is shared);
- the same feedback sent to both replicas is stored once;
- cards shown by each replica appear once each in one `cds-service report`;
- one replica killed (SIGKILL of its whole process group) during a bounded load of hook calls and
  feedback through the load balancer: the client retries on connection errors, 502 and 503 as an EHR
  would (a new token per attempt), no feedback is lost, and the survivor keeps answering.

Everything is bounded in count and time and polls for readiness; no sleep stands for a timing guess.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
import redis
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

from cds_service.audit import schema
from cds_service.security.replay import token_key
from tests.conftest import load_fixture
from tests.security.tokens import REPO, SANDBOX_ISS, sandbox_token
from tests.servers import free_port, stop, wait_until_up

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get("CDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
SERVICE = "/cds-services/dex-free-order-sign"
TASKS = 100  # each: one hook call and one feedback post, so 200 requests
THREADS = 4
KILL_AFTER = 30  # tasks completed before one replica is killed
ATTEMPTS = 30  # tries of one request; the client's backoff is 0.05 s × attempt, ≤ 1 s


def _require(condition: bool, reason: str) -> None:
    """Skip with the reason where the machine cannot run this; under CI the same is a failure."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: not skipped)")
    pytest.skip(reason)


@dataclass
class Replica:
    name: str
    base: str
    process: subprocess.Popen

    def killed(self) -> bool:
        return self.process.poll() is not None


@contextlib.contextmanager
def replica(name: str, env: dict[str, str], folder: Path) -> Iterator[Replica]:
    """`cds-service serve` on a free port, in a process group of its own (killed whole by the test).

    Its log goes to a file of `folder`: a pipe nobody reads during the load would fill and block it.
    """
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port)}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each master makes its own
    with open(folder / f"replica-{name}.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "serve"], cwd=REPO, env=full_env,
                                   stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    server = Replica(name, f"http://127.0.0.1:{port}", process)
    try:
        wait_until_up(server.base + "/readyz", process, timeout=60)
        yield server
    finally:
        stop(process)


@contextlib.contextmanager
def haproxy(folder: Path, port: int, replicas: list[Replica]) -> Iterator[str]:
    """HAProxy on a loopback port in front of the replicas, health-checking /readyz."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    servers = "\n".join(f"    server {r.name} {r.base.removeprefix('http://')} check" for r in replicas)
    config = folder / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    # A connection refused by a dead replica is retried on the other one.
    retries 3
    option redispatch 1
frontend cds
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
{servers}
""")
    with open(folder / "haproxy.log", "w") as log:
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/livez", process, timeout=30)
        yield base
    finally:
        stop(process)


class Client:
    """An EHR: a new Sandbox token per attempt; retries connection errors, 502 and 503 (bounded)."""

    def __init__(self, public_base: str) -> None:
        self.public_base = public_base
        self.jtis: list[str] = []
        self.retried = 0
        self._lock = threading.Lock()

    def token(self, path: str) -> str:
        token = sandbox_token(self.public_base + path)
        with self._lock:
            self.jtis.append(jwt.decode(token, options={"verify_signature": False})["jti"])
        return token

    def post(self, base: str, path: str, body: Any, *, retry: bool = True) -> requests.Response:
        for attempt in range(ATTEMPTS):
            headers = {"Authorization": f"Bearer {self.token(path)}", "Content-Type": "application/json"}
            try:
                with requests.Session() as session:  # a new connection: HAProxy balances per connection
                    response = session.post(base + path, data=json.dumps(body), headers=headers, timeout=30)
            except requests.ConnectionError:
                if not retry:
                    raise
            else:
                if not retry or response.status_code not in (502, 503):
                    return response
            with self._lock:
                self.retried += 1
            time.sleep(0.05 * (attempt + 1))  # the client's backoff between retries, as an EHR's
        raise AssertionError(f"{path}: no answer after {ATTEMPTS} attempts")


def _feedback(card: dict[str, Any], at: str) -> dict[str, Any]:
    reason = card["overrideReasons"][0]
    return {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": at,
                          "overrideReason": {"reason": reason}}]}


def _hook_request(instance: int) -> dict[str, Any]:
    body = load_fixture("golden/order-sign-arm-b-cycle-3.request.json")
    body["hookInstance"] = f"00000000-0000-4000-8000-{instance:012d}"
    return body


def _report(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "report", "--format", "json"], cwd=REPO,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def _poll(check, what: str, attempts: int = 200) -> Any:
    """Poll `check` until it returns something true (bounded: about 20 s)."""
    for _ in range(attempts):
        found = check()
        if found:
            return found
        time.sleep(0.1)  # polling, not a timing assumption
    raise AssertionError(f"never: {what}")


@pytest.fixture
def database() -> Iterator[str]:
    reason = os.environ.get("CDS_TEST_POSTGRES_SKIP")
    _require(not reason, f"PostgreSQL is not available: {reason}")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _require(False, f"no PostgreSQL answers ({type(exc).__name__}); `make test` starts one")
    name = f"dexfree_replicas_{os.getpid()}_{int(time.time())}"
    admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, list[str]]]:
    """The machine's Redis on this test's database number; the keys of the test's tokens go at the end."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _require(False, f"no Redis answers at 127.0.0.1:6379 ({type(exc).__name__})")
    jtis: list[str] = []
    try:
        yield REDIS_URL, jtis
    finally:
        keys = [f"dexfree:jti:{token_key(SANDBOX_ISS, jti)}" for jti in jtis]
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        client.close()


def test_two_replicas_behind_haproxy(tmp_path, database, shared_redis):
    _require(shutil.which("haproxy") is not None or Path("/usr/sbin/haproxy").is_file(),
             "HAProxy is not installed (make test installs it as root)")
    redis_url, jtis = shared_redis
    # The public base URL is the load balancer's: the tokens name it in `aud` (CDS_BASE_URL).
    lb_port = free_port()
    public = f"http://127.0.0.1:{lb_port}"
    env = {"CDS_DATABASE_URL": database, "CDS_REDIS_URL": redis_url, "CDS_WORKERS": "2", "CDS_THREADS": "4",
           "CDS_JWT_ISSUERS": str(REPO / "deploy" / "issuers.sandbox.json"), "CDS_BASE_URL": public,
           "CDS_PSEUDONYM_SALT": "replicas-test-salt"}
    started = time.monotonic()
    client = Client(public)
    try:
        with replica("a", env, tmp_path) as a, replica("b", env, tmp_path) as b:
            _check_shared_state(client, a, b, env)
            with haproxy(tmp_path, lb_port, [a, b]) as lb_base:
                _load_with_a_replica_killed(client, lb_base, a, b, env, log_of_a=tmp_path / "replica-a.log")
    finally:
        jtis.extend(client.jtis)
    assert time.monotonic() - started < 300


def _check_shared_state(client: Client, a: Replica, b: Replica, env: dict[str, str]) -> None:
    # A token used on one replica is refused on the other: the replay store is shared (Redis).
    token = client.token(SERVICE)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(_hook_request(1))
    first = requests.post(a.base + SERVICE, data=body, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    assert requests.post(b.base + SERVICE, data=body, headers=headers, timeout=30).status_code == 401

    card_a = first.json()["cards"][0]
    card_b = client.post(b.base, SERVICE, _hook_request(2), retry=False).json()["cards"][0]
    assert card_a["extension"]["dexfree"]["rule"] == "dex-after-cycle-2" and card_a["uuid"] != card_b["uuid"]

    # The same feedback sent to both replicas is stored once.
    same = _feedback(card_a, "2026-11-24T10:00:00Z")
    on_a = client.post(a.base, SERVICE + "/feedback", same, retry=False)
    on_b = client.post(b.base, SERVICE + "/feedback", same, retry=False)
    assert (on_a.status_code, on_b.status_code) == (200, 200)
    assert on_a.json()["stored"] + on_b.json()["stored"] == 1
    assert on_a.json()["duplicates"] + on_b.json()["duplicates"] == 1
    assert client.post(b.base, SERVICE + "/feedback", _feedback(card_b, "2026-11-24T10:01:00Z"),
                       retry=False).json()["stored"] == 1

    # Cards shown by either replica appear once each in one report (cards are written in the background).
    report = _poll(lambda: (r := _report(env))["totals"]["shown"] == 2 and r, "both cards in the report")
    deviations = [d["cardUuid"] for d in report["potentialDeviations"]]
    assert sorted(deviations) == sorted([card_a["uuid"], card_b["uuid"]])
    assert report["feedbackForUnknownCards"] == 0


def _load_with_a_replica_killed(client: Client, lb_base: str, a: Replica, b: Replica,
                                env: dict[str, str], *, log_of_a: Path) -> None:
    done = 0
    done_lock = threading.Lock()
    killed = threading.Event()
    after_kill: list[int] = []

    def task(number: int) -> tuple[str, int]:
        nonlocal done
        answer = client.post(lb_base, SERVICE, _hook_request(100 + number))
        assert answer.status_code == 200, answer.text
        card = answer.json()["cards"][0]
        stored = client.post(lb_base, SERVICE + "/feedback", _feedback(card, "2026-11-24T11:00:00Z"))
        assert stored.status_code == 200, stored.text
        assert stored.json()["stored"] + stored.json()["duplicates"] == 1
        with done_lock:
            done += 1
            if done == KILL_AFTER:
                os.killpg(a.process.pid, signal.SIGKILL)  # the replica's master and workers at once
                killed.set()
            elif killed.is_set():
                after_kill.append(number)
        return card["uuid"], stored.json()["stored"]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(task, range(TASKS)))
    assert killed.is_set() and a.process.wait(timeout=30) is not None
    # Both replicas took part in the load before one was killed.
    # Read as JSON lines (the last one may be cut by the kill), not as text: the writer's spacing may change.
    lines = [line for line in log_of_a.read_text().splitlines() if line.startswith("{") and line.endswith("}")]
    assert any(str(json.loads(line).get("hookInstance", "")).startswith("00000000-0000-4000-8000-0000000001")
               for line in lines)
    assert len(after_kill) >= TASKS - KILL_AFTER - THREADS  # the survivor answered everything after
    # No feedback lost: every task's feedback is in the database exactly once.
    url = make_url(env["CDS_DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, connect_timeout=5) as connection:
        rows = connection.execute(sql.SQL("SELECT card_uuid, count(*) FROM {} GROUP BY card_uuid").format(
            sql.Identifier(schema.feedback.name))).fetchall()
    stored = dict(rows)
    for card_uuid, _ in results:
        assert stored.get(card_uuid) == 1, card_uuid
    # The survivor keeps answering, directly and through the load balancer.
    assert not b.killed()
    assert requests.get(b.base + "/readyz", timeout=5).status_code == 200
    assert client.post(lb_base, SERVICE, _hook_request(999), retry=False).status_code == 200
