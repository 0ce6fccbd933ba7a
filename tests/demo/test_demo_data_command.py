"""`cds-service demo-data`: the Bundle a FHIR server takes, loaded into a real one and read back."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time

import pytest
import requests

from cds_service.app import create_app
from cds_service.cli import main
from cds_service.config import Config
from cds_service.runtime import Runtime
from tests.demo.support import USER, DemoClient, rules
from tests.servers import REPO, fhir_server

TODAY = "2026-11-24"


def demo_data(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cds_service.cli", "demo-data", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_writes_one_transaction_bundle_to_stdout_or_a_file(tmp_path):
    printed = demo_data("--today", TODAY)
    assert printed.returncode == 0, printed.stderr
    bundle = json.loads(printed.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    out = tmp_path / "demo.json"
    assert main(["demo-data", "--today", TODAY, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == bundle


def test_max_entries_writes_numbered_parts(tmp_path):
    assert main(["demo-data", "--today", TODAY, "--max-entries", "50", "--out", str(tmp_path / "demo.json")]) == 0
    parts = sorted(tmp_path.glob("demo-*.json"))
    assert [p.name for p in parts] == ["demo-1.json", "demo-2.json"]
    assert all(len(json.loads(p.read_text())["entry"]) <= 50 for p in parts)


@pytest.mark.parametrize("args", [("--today", "24/11/2026"), ("--today", "2026-02-30"), ("--max-entries", "50"),
                                  ("--max-entries", "2", "--out", "x.json")])
def test_bad_arguments_are_a_one_line_error(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo-data", *args]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("cds-service: ") and "Traceback" not in "\n".join(error)
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
def test_loads_into_a_real_fhir_server_reads_back_and_the_service_reads_it(knowledge, tmp_path):
    """Medplum's router takes the Bundle (in parts: it caps a transaction at 50), loading twice changes
    nothing, and the service, given only fhirServer, finds the arm B warning in what was loaded."""
    assert main(["demo-data", "--today", TODAY, "--max-entries", "50", "--out", str(tmp_path / "demo.json")]) == 0
    parts = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("demo-*.json"))]
    loaded = Counter(e["resource"]["resourceType"] for p in parts for e in p["entry"])
    with fhir_server("/fhir") as (base, _log):
        for _ in range(2):  # the second load must leave the server as the first did
            for part in parts:
                answer = requests.post(base, json=part, timeout=60, headers={"Content-Type": "application/fhir+json"})
                assert answer.status_code == 200, answer.text[:500]
                assert all(e["response"]["status"].startswith("20") for e in answer.json()["entry"])
            for kind, count in loaded.items():
                found = requests.get(f"{base}/{kind}", params={"_count": 500}, timeout=30).json()
                assert found["total"] == count, kind
        patient = requests.get(f"{base}/Patient/dexfree-demo-b-icaria-c3", timeout=30).json()
        assert patient["name"][0]["family"] == "Demo"
        subjects = requests.get(f"{base}/ResearchSubject", params={"patient": patient["id"]}, timeout=30).json()
        assert [e["resource"]["actualArm"] for e in subjects["entry"]] == [knowledge.study.arm("B").name]

        # The service reads the loaded patient from the server (no prefetch), as from an EHR.
        now = datetime.combine(date.fromisoformat(TODAY), time(9, 30), tzinfo=UTC)
        client = create_app(runtime=Runtime(config=Config(), knowledge=knowledge, clock=lambda: now)).test_client()
        order = DemoClient(knowledge, date.fromisoformat(TODAY)).order(patient["id"], 40)
        body = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()), "fhirServer": base,
                "context": {"userId": USER, "patientId": patient["id"],
                            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}}}
        answer = client.post("/cds-services/dex-free-order-sign", json=body)
        assert answer.status_code == 200, answer.get_json()
        assert rules(answer.get_json()["cards"]) == [("warning", "dex-after-cycle-2")]
