"""The real service (gunicorn) with the shipped Sandbox issuers file: every call needs the Sandbox's token."""

from __future__ import annotations

import json

import pytest
import requests

from tests.security.planted import leaks, planted_request
from tests.security.tokens import REPO, claims, made_key, sandbox_key, sandbox_token, sign
from tests.servers import cds_service
from tests.spec import check_cds_response, check_discovery, check_operation_outcome

pytestmark = pytest.mark.integration


def test_gunicorn_with_the_sandbox_issuers_file(tmp_path):
    env = {"CDS_JWT_ISSUERS": str(REPO / "deploy" / "issuers.sandbox.json"),
           "CDS_REPLAY_DB": str(tmp_path / "replay.sqlite3"), "CDS_WORKERS": "2"}
    tokens: list[str] = []

    def bearer(url, token=None):
        token = token or sandbox_token(url)
        tokens.append(token)
        return {"Authorization": f"Bearer {token}"}

    with cds_service(env=env) as (base, log):
        discovery, service = f"{base}/cds-services", f"{base}/cds-services/dex-free-order-sign"
        feedback = service + "/feedback"

        # Without a token: refused everywhere but the preflight and /healthz.
        assert requests.get(discovery, timeout=5).status_code == 401
        assert requests.post(service, json=planted_request("order-sign"), timeout=5).status_code == 401
        assert requests.post(feedback, json={"feedback": []}, timeout=5).status_code == 401
        preflight = requests.options(service, timeout=5, headers={
            "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        health = requests.get(f"{base}/healthz", timeout=5).json()
        assert health["features"]["authentication"].startswith("jwt")

        # With the Sandbox's token: answered.
        response = requests.get(discovery, headers=bearer(discovery), timeout=5)
        assert response.status_code == 200
        check_discovery(response.json())
        response = requests.post(service, json=planted_request("order-sign"), headers=bearer(service), timeout=10)
        assert response.status_code == 200, response.text
        check_cds_response(response.json())
        body = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-11-24T09:31:00Z"}]}
        assert requests.post(feedback, json=body, headers=bearer(feedback), timeout=5).status_code == 200

        # A token for one endpoint does not open another; a used token does not open anything, on any worker.
        refused = requests.post(service, json=planted_request("order-sign"), headers=bearer(discovery), timeout=5)
        assert refused.status_code == 401
        assert check_operation_outcome(refused.json())["diagnostics"] == "Unauthorized"
        used = bearer(service)
        assert requests.post(service, json=planted_request("order-sign"), headers=used, timeout=5).status_code == 200
        for _ in range(4):  # new connections: gunicorn spreads them over its two workers
            with requests.Session() as fresh:
                replay = fresh.post(service, json=planted_request("order-sign"), headers=used, timeout=5)
            assert replay.status_code == 401
        forged = sign(made_key("ES384", sandbox_key().kid), claims(service))
        assert requests.post(service, json=planted_request("order-sign"), headers=bearer(service, forged),
                             timeout=5).status_code == 401

    output = "".join(log)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line["event"] == "authentication: jwt" for line in lines)
    assert not any(line["event"].startswith("AUTHENTICATION DISABLED") for line in lines)
    reasons = [line.get("error") for line in lines if line["event"] == "request" and line["status"] == 401]
    assert reasons.count("replayed") == 4 and "missing_header" in reasons and "wrong_aud" in reasons
    assert "bad_signature" in reasons
    # The server's whole output (gunicorn included) carries no token and none of the planted patient data.
    assert not leaks(output, tokens), leaks(output, tokens)


def test_a_bad_issuers_file_stops_serve_with_the_problem(tmp_path):
    import subprocess
    import sys

    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": "https://ehr.example.org", "jwks_uri": "https://x"}]}))
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={"CDS_JWT_ISSUERS": str(issuers), "PATH": ""})
    assert result.returncode == 2
    assert "unknown field(s) jwks_uri" in result.stderr and str(issuers) in result.stderr
    assert "Traceback" not in result.stderr
