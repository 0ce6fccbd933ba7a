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
