"""Every shipped artifact validates, carries its metadata, and every reference between artifacts resolves."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import (
    REQUIRED_METADATA,
    canonical_url,
    check_references,
    load_artifacts,
    references,
)
from cds_service.knowledge.model import load_knowledge
from tests.knowledge.conftest import SHIPPED


@pytest.mark.parametrize("path", sorted(SHIPPED.rglob("*.json")), ids=lambda p: p.name)
def test_each_artifact_is_valid_r4(path):
    resource = json.loads(path.read_text())
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert path.name == f"{resource['resourceType']}-{resource['id']}.json"


def test_every_knowledge_artifact_carries_the_metadata_a_reviewer_needs():
    artifacts = load_artifacts(SHIPPED)
    kinds = {r["resourceType"] for r in artifacts}
    assert {"ResearchStudy", "PlanDefinition", "ActivityDefinition", "Library", "ValueSet", "CodeSystem"} <= kinds
    for resource in artifacts:
        if resource["resourceType"] == "NamingSystem":
            continue
        url = canonical_url(resource)
        assert url.startswith("https://") and url.endswith(f"/{resource['resourceType']}/{resource['id']}")
        assert resource["resourceType"] == "ResearchStudy" or all(resource.get(k) for k in REQUIRED_METADATA)
        assert len(resource.get("description", "")) > 20, f"{resource['id']} needs a description a pharmacist can read"


def test_every_reference_between_artifacts_resolves():
    artifacts = load_artifacts(SHIPPED)
    targets = [t for r in artifacts for t in references(r)]
    assert len(targets) > 50
    check_references(artifacts)  # raises on the first dangling one


def test_a_dangling_reference_stops_the_load_naming_the_artifact(edit_artifact):
    folder = edit_artifact("study/PlanDefinition-nct06561854-protocol.json",
                           lambda r: r["action"][0]["action"][1]["action"][0].update(
                               definitionCanonical="https://dexfree.example.org/fhir/PlanDefinition/nope"))
    with pytest.raises(ConfigError, match=r"PlanDefinition/nct06561854-protocol.*nope"):
        load_artifacts(folder)


@pytest.mark.parametrize(("relative", "change", "message"), [
    ("regimens/PlanDefinition-icaria-arm-b.json", lambda r: r.update(cycles="not an R4 element"),
     "PlanDefinition-icaria-arm-b.json: not a valid FHIR R4 PlanDefinition"),
    ("regimens/PlanDefinition-icaria-arm-b.json", lambda r: r.update(status="retired"), "status 'retired'"),
    ("activities/ActivityDefinition-pomalidomide-4mg.json", lambda r: r.pop("publisher"), "metadata missing: publisher"),
    ("activities/ActivityDefinition-dexamethasone-40mg.json",
     lambda r: r["useContext"][0]["valueRange"]["high"].update(value=76), "dose options fit age 75"),
    ("activities/ActivityDefinition-dexamethasone-40mg.json",
     lambda r: r["dosage"][0]["doseAndRate"][0].pop("doseQuantity"), "doseQuantity"),
    ("regimens/PlanDefinition-ikema-arm-a.json",
     lambda r: r["action"][0]["action"][0]["action"][0].pop("extension"), "timing-daysOfCycle"),
    ("regimens/PlanDefinition-ikema-arm-a.json",
     lambda r: r["action"][0]["action"][1]["timingTiming"]["repeat"].update(count=5), "repeat until progression"),
    ("study/ResearchStudy-nct06561854.json",
     lambda r: r["contained"][0]["characteristic"].pop(), "criteria missing: E16"),
    ("terminology/ValueSet-cardiac-disease.json",
     lambda r: r["compose"]["include"].append({"system": "http://snomed.info/sct",
                                               "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}),
     "cannot be expanded offline"),
])
def test_a_broken_artifact_stops_the_start_with_a_clear_message(edit_artifact, relative, change, message):
    with pytest.raises(ConfigError, match=message):
        load_knowledge(edit_artifact(relative, change))


def test_unreadable_json_names_the_file(artifact_copy):
    (artifact_copy / "terminology" / "ValueSet-hiv.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"ValueSet-hiv\.json: not readable JSON"):
        load_artifacts(artifact_copy)


def test_library_content_must_equal_its_readable_cql(artifact_copy):
    cql = artifact_copy / "logic" / "DexFreeRules.cql"
    cql.write_text(cql.read_text() + "\n// edited without re-embedding\n")
    with pytest.raises(ConfigError, match=r"differs from logic/DexFreeRules\.cql"):
        load_knowledge(artifact_copy)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a folder of FHIR artifacts"):
        load_artifacts(tmp_path / "nowhere")
