"""The container image of deploy/Dockerfile, built here and run as production runs it.

Built offline by tests/deploy/build_image.sh (base image from Debian's packages, wheels from the lock),
then run with podman read-only, as user 10001, with tmpfs volumes for the writable paths and the
Sandbox's issuers file: discovery and an order-sign with prefetch (the golden arm-B request) answer as
the golden response says, a replayed token is refused, /readyz, /metrics and the HEALTHCHECK answer,
and the log shows no write refused by the read-only filesystem.

It runs under `make test` and `make image-test` (CDS_IMAGE_TEST=1), which install podman, runc and
debootstrap when missing; elsewhere it skips, saying so. Where podman cannot run it skips with the
reason, or fails when CI is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.security.tokens import sandbox_token
from tests.servers import REPO, free_port
from tests.spec import check_cds_response, check_discovery

pytestmark = pytest.mark.integration

IMAGE = "localhost/dex-free-cds:test"
GOLDEN = REPO / "tests" / "fixtures" / "golden"
USER = "10001:10001"
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
WRITABLE = ("/var/lib/dexfree", "/run/dexfree-metrics")
# The one-time base image takes about a minute on an idle machine; the build, one to two.
BUILD_TIMEOUT_S = 900


def _require(condition: bool, reason: str) -> None:
    """Skip with the reason where the machine cannot run this; under CI the same is a failure."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: not skipped)")
    pytest.skip(reason)


def _podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image() -> str:
    if not os.environ.get("CDS_IMAGE_TEST"):
        pytest.skip("the image test runs under `make test` or `make image-test` (CDS_IMAGE_TEST=1)")
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    _require(not missing, f"the image test needs {', '.join(missing)} (make test installs them as root)")
    _require(os.geteuid() == 0, "podman here works as root only")
    info = subprocess.run([*PODMAN, "info"], capture_output=True, text=True, timeout=60)
    _require(info.returncode == 0, f"podman cannot run here: {info.stderr.strip()[-300:]}")
    built = subprocess.run([shutil.which("bash") or "/bin/bash", str(REPO / "tests" / "deploy" / "build_image.sh"), IMAGE], cwd=REPO,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                           env={**os.environ, "PYTHON": os.environ.get("PYTHON", shutil.which("python3") or "")})
    assert built.returncode == 0, built.stderr[-4000:]
    return IMAGE


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    """The image running read-only as non-root on a free loopback port; yields its name and base URL."""
    name, port = f"dexfree-test-{uuid.uuid4().hex[:8]}", free_port()
    base = f"http://127.0.0.1:{port}"
    mounts = ["--tmpfs", "/tmp:rw,mode=1777"]
    for path in WRITABLE:
        mounts += ["--mount", f"type=tmpfs,destination={path},chown"]
    env = {"HOST": "127.0.0.1", "PORT": str(port), "CDS_WORKERS": "2", "CDS_BASE_URL": base,
           "CDS_JWT_ISSUERS": "/app/deploy/issuers.sandbox.json"}
    _podman("run", "--detach", "--name", name, "--read-only", "--user", USER, "--network", "host",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *LIMITS, *mounts,
            *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")], image)
    try:
        _wait_ready(base, name)
        yield name, base
    finally:
        _podman("stop", "--time", "10", name, check=False, timeout=60)
        _podman("rm", "--force", name, check=False, timeout=60)
    assert _podman("container", "exists", name, check=False).returncode == 1, "the container was not removed"


def _wait_ready(base: str, name: str, attempts: int = 600) -> None:
    for _ in range(attempts):  # readiness polling, bounded: about 60 s
        state = _podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        if state == "false":
            raise AssertionError("the container stopped:\n" + _logs(name)[-3000:])
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)  # readiness polling, not a timing assumption
    raise AssertionError("the container never became ready:\n" + _logs(name)[-3000:])


def _logs(name: str) -> str:
    result = _podman("logs", name, check=False)
    return result.stdout + result.stderr


def test_image_is_built_for_a_read_only_non_root_run(image):
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == USER
    assert set(WRITABLE) | {"/tmp"} <= set(config.get("Volumes") or {})
    # podman shows the docker-format HEALTHCHECK beside Config.
    healthcheck = config.get("Healthcheck") or inspected.get("Healthcheck") or {}
    assert "/livez" in " ".join(healthcheck.get("Test") or [])
    # No compiler, no installer, no test tools in the runtime stage.
    probe = _podman("run", "--rm", "--read-only", "--user", USER, *LIMITS, "--network", "none",
                    "--entrypoint", "/bin/sh", image, "-c",
                    "for t in gcc cc c++ make pip pip3 pytest ruff; do command -v $t; done; "
                    "python -c 'import pytest' 2>/dev/null && echo pytest-importable; true", timeout=120)
    assert probe.stdout.strip() == "", probe.stdout


def test_container_answers_a_hook_call_with_the_arm_b_warning(container):
    name, base = container
    discovery_url, service_url = f"{base}/cds-services", f"{base}/cds-services/dex-free-order-sign"
    discovery = requests.get(discovery_url, headers=_bearer(discovery_url), timeout=10)
    assert discovery.status_code == 200
    check_discovery(discovery.json())
    assert "dex-free-order-sign" in {s["id"] for s in discovery.json()["services"]}

    body = json.loads((GOLDEN / "order-sign-arm-b-cycle-3.request.json").read_text())
    expected = json.loads((GOLDEN / "order-sign-arm-b-cycle-3.response.json").read_text())["cards"]
    headers = _bearer(service_url)
    answer = requests.post(service_url, json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    check_cds_response(answer.json())
    cards = answer.json()["cards"]
    assert [(c["indicator"], c["summary"], c["extension"]) for c in cards] == \
        [(c["indicator"], c["summary"], c["extension"]) for c in expected]
    assert cards[0]["extension"]["dexfree"]["arm"] == "B" and cards[0]["indicator"] == "warning"
    # The replay store lives on the tmpfs volume: the same token is refused on either worker.
    assert requests.post(service_url, json=body, headers=headers, timeout=10).status_code == 401

    ready = requests.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["audit"] == "ok"
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    assert 'cds_hook_calls_total{service="dex-free-order-sign",status="200"} 1.0' in metrics
    assert 'cds_jwt_refusals_total{reason="replayed"} 1.0' in metrics
    assert _podman("healthcheck", "run", name, check=False).returncode == 0

    log = _logs(name)
    assert "Starting gunicorn" in log
    token = headers["Authorization"].removeprefix("Bearer ")
    for sign in ("Read-only file system", "Permission denied", "Traceback", "control socket", token):
        assert sign not in log, sign
    assert _podman("exec", name, "id", "-u").stdout.strip() == USER.split(":", maxsplit=1)[0]
    written = _podman("exec", name, "sh", "-c", "ls /var/lib/dexfree /run/dexfree-metrics").stdout
    assert "audit.sqlite3" in written and "replay.sqlite3" in written and ".db" in written


def _bearer(url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox_token(url)}"}


def test_build_uses_the_hashed_lock_without_index_addresses():
    lock = (REPO / "deploy" / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if "==" in line and not line.startswith("#")]
    assert pins and all(line.endswith("\\") for line in pins), "every pin is followed by its hashes"
    assert "--hash=sha256:" in lock
    for address in ("http://", "https://", "file:", "--index-url", "--extra-index-url", "--find-links",
                    "--trusted-host"):
        assert address not in lock, address
    pinned = {line.split("==")[0] for line in pins}
    assert {"gunicorn", "flask", "prometheus-client", "async-timeout"} <= pinned
    assert not pinned & {"pytest", "ruff", "hypothesis", "responses", "kubernetes-validate"}


def test_dockerfile_shape():
    text = (REPO / "deploy" / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE} AS runtime"]
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert "--require-hashes" in text and "HEALTHCHECK" in text and "USER 10001:10001" in text
    assert Path(REPO / "deploy" / "Dockerfile.dockerignore").is_file()
