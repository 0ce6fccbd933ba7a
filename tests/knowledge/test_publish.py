"""`cds-service publish`: a transaction Bundle and a FHIR NPM package, reproducible, from valid artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

from cds_service.knowledge.publish import package_name, publish, transaction_bundle
from tests.servers import REPO


def test_transaction_bundle_puts_every_artifact(knowledge):
    bundle = transaction_bundle(knowledge.artifacts)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert len(bundle["entry"]) == len(knowledge.artifacts.by_ref)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}


def test_npm_package_layout_and_reproducibility(knowledge, tmp_path):
    first = publish(knowledge, tmp_path / "one")
    second = publish(knowledge, tmp_path / "two")
    assert first["tgz"].read_bytes() == second["tgz"].read_bytes()
    assert first["tgz"].name == f"{package_name(knowledge)}-1.0.0.tgz"
    with tarfile.open(first["tgz"]) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("package/package.json"))
        index = json.load(tar.extractfile("package/.index.json"))
    assert manifest["name"] == "org.example.dexfree.nct06561854"
    assert manifest["fhirVersions"] == ["4.0.1"] and manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    assert len(index["files"]) == len(knowledge.artifacts.by_ref)
    assert {f"package/{f['filename']}" for f in index["files"]} <= set(names)
    study = next(f for f in index["files"] if f["resourceType"] == "ResearchStudy")
    assert study["url"].endswith("/ResearchStudy/nct06561854")


def test_publish_command_validates_and_writes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "publish", "--out", str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "validated" in result.stdout
    assert (tmp_path / "bundle.json").is_file() and list(tmp_path.glob("*.tgz"))


def test_publish_refuses_invalid_artifacts(artifact_copy, tmp_path):
    (artifact_copy / "regimens" / "PlanDefinition-icaria-arm-a.json").write_text('{"resourceType": "PlanDefinition"}')
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "publish", "--out", str(tmp_path / "out")],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"CDS_PLAN_DEFINITIONS": str(artifact_copy), "PATH": ""})
    assert result.returncode == 2
    assert "PlanDefinition-icaria-arm-a.json" in result.stderr
    assert not (tmp_path / "out").exists()


def test_published_bundle_loads_into_a_real_fhir_server_and_reads_back(knowledge, tmp_path):
    """The transaction Bundle is what a FHIR server takes: Medplum's router loads it and serves it back."""
    import requests

    from tests.servers import fhir_server

    publish(knowledge, tmp_path, max_entries=50)  # Medplum refuses transactions of more than 50 updates
    bundles = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("bundle-*.json"))]
    assert len(bundles) == 2 and sum(len(b["entry"]) for b in bundles) == len(knowledge.artifacts.by_ref)
    with fhir_server("/fhir") as (base, _log):
        too_big = requests.post(base, json=transaction_bundle(knowledge.artifacts), timeout=60)
        assert too_big.status_code == 400  # the server's own cap, which --max-entries is for
        for bundle in bundles:
            loaded = requests.post(base, json=bundle, timeout=60, headers={"Content-Type": "application/fhir+json"})
            assert loaded.status_code == 200, loaded.text[:500]
            statuses = [e["response"]["status"] for e in loaded.json()["entry"]]
            assert len(statuses) == len(bundle["entry"]) and all(s.startswith("20") for s in statuses)
        # Read back by canonical URL, as a CDS engine or an order-set builder would.
        rule_url = knowledge.rule.partition("|")[0]
        found = requests.get(f"{base}/PlanDefinition", params={"url": rule_url}, timeout=30).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == ["dex-free-arm-b-rule"]
        regimen = requests.get(f"{base}/PlanDefinition/icaria-arm-b", timeout=30).json()
        assert regimen["action"] == knowledge.artifacts.by_ref["PlanDefinition/icaria-arm-b"]["action"]
        study = requests.get(f"{base}/ResearchStudy/nct06561854", timeout=30).json()
        assert study["arm"][1]["name"] == "dexamethasone-free arm"
        # Loading twice (PUTs) leaves one of each.
        assert all(requests.post(base, json=b, timeout=60).status_code == 200 for b in bundles)
        valuesets = requests.get(f"{base}/ValueSet", params={"_count": 200}, timeout=30).json()
        assert len(valuesets.get("entry", [])) == len(knowledge.terminology.sets)
