"""`cds-service serve` (what `make run` runs): a real gunicorn answering real HTTP."""

from __future__ import annotations

import json

import pytest
import requests

from tests.servers import cds_service, free_port
from tests.spec import check_discovery, check_operation_outcome

pytestmark = pytest.mark.integration


def test_serve_answers_discovery_health_preflight_and_limits():
    with cds_service() as (base, log):
        discovery = requests.get(f"{base}/cds-services", timeout=5)
        assert discovery.status_code == 200
        check_discovery(discovery.json())
        assert requests.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"

        preflight = requests.options(f"{base}/cds-services/dex-free-order-sign", timeout=5, headers={
            "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

        # A body over the limit sent chunked (no Content-Length) is refused as well.
        def chunks():
            for _ in range(2048):
                yield b" " * 1024
        big = requests.post(f"{base}/cds-services/dex-free-order-sign", data=chunks(), timeout=10,
                            headers={"Content-Type": "application/json"})
        assert big.status_code == 413
        check_operation_outcome(big.json())
    text = "".join(log)
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert "configuration" in events
    assert any(e.startswith("AUTHENTICATION DISABLED") for e in events)


def test_host_and_port_flags_override_the_environment():
    port = free_port()
    with cds_service(args=("--host", "127.0.0.1", "--port", str(port)), port=port) as (base, _log):
        assert base.endswith(f":{port}")
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200


def test_bad_setting_stops_serve_with_its_name():
    import subprocess
    import sys

    from tests.servers import REPO

    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve"], cwd=REPO,
                            env={"PORT": "eighty", "PATH": ""}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PORT='eighty'" in result.stderr


def test_broken_artifacts_stop_serve_with_the_artifact_named(tmp_path):
    import subprocess
    import sys

    from tests.servers import REPO

    (tmp_path / "PlanDefinition-x.json").write_text('{"resourceType": "PlanDefinition", "id": "x", "bogus": 1}')
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve"], cwd=REPO,
                            env={"CDS_PLAN_DEFINITIONS": str(tmp_path), "PATH": ""}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "PlanDefinition-x.json: not a valid FHIR R4 PlanDefinition" in result.stderr
