"""Every published artifact carries a generated narrative that a FHIR server or IG viewer can display."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from cds_service.knowledge.narrative import XHTML, narrative
from cds_service.knowledge.publish import publish
from cds_service.knowledge.shipped import shipped_artifacts
from tests.knowledge.conftest import SHIPPED

NS = f"{{{XHTML}}}"
# What FHIR R4 allows in a narrative (txt-1, txt-2): basic HTML, no script, forms, styles or event attributes.
ALLOWED = {"div", "p", "h3", "table", "tr", "th", "td", "code", "b", "i", "ul", "li", "br", "span"}


@pytest.fixture(scope="module")
def published(knowledge, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("published")
    bundle = json.loads(publish(knowledge, out)["bundle"].read_text())
    return [e["resource"] for e in bundle["entry"]]


def _div(resource: dict) -> ET.Element:
    text = resource.get("text")
    assert text and text["status"] == "generated", f"{resource['resourceType']}/{resource['id']} has no narrative"
    return ET.fromstring(text["div"])  # noqa: S314 -- our own output; well-formed XML, or this raises


def test_every_published_artifact_has_a_valid_xhtml_narrative(published, knowledge):
    assert len(published) == len(knowledge.artifacts.by_ref)
    for resource in published:
        root = _div(resource)
        assert root.tag == f"{NS}div", resource["id"]
        for element in root.iter():
            assert element.tag.startswith(NS) and element.tag[len(NS):] in ALLOWED, (resource["id"], element.tag)
            assert not element.attrib, (resource["id"], element.tag, element.attrib)
        assert (resource.get("title") or resource.get("name") or resource["id"]) in "".join(root.itertext())


def test_the_source_artifacts_stay_as_written(knowledge):
    shipped_artifacts(knowledge.artifacts)
    for path in SHIPPED.rglob("*.json"):
        assert "text" not in json.loads(path.read_text()), path.name
    assert not any("text" in r for r in knowledge.artifacts)


def test_a_regimen_shows_its_cycles_drugs_doses_and_days(knowledge):
    shipped = shipped_artifacts(knowledge.artifacts)
    for regimen in knowledge.regimens:
        rows = [[("".join(td.itertext())) for td in tr] for tr in _div(shipped.by_url[regimen.url]).iter(f"{NS}tr")]
        for block in regimen.blocks:
            cycles = f"cycle {block.first}" if block.last == block.first else (
                f"cycles {block.first} on" if block.last is None else f"cycles {block.first}–{block.last}")
            mine = [r for r in rows if r[0] == cycles]
            assert mine, (regimen.url, cycles)
            assert all(f"{block.length_days} d" in r[2] for r in mine)
            for drug in block.drugs:
                row = next(r for r in mine if r[3] == drug.title)
                assert row[5] == ", ".join(str(d) for d in drug.days)
                for option in drug.options:
                    # The dose as the prescriber reads it (the unit's display, e.g. mg/m² for mg/m2), and its band.
                    assert f"{option.value:g} {option.unit[:2]}" in row[4], (regimen.url, drug.title)
                    if option.age_low is not None and len(drug.options) > 1:
                        assert f"age {option.age_low} years or more" in row[4]


def test_a_value_set_lists_its_codes_and_filters(knowledge):
    shipped = shipped_artifacts(knowledge.artifacts)
    for valueset in knowledge.artifacts.of_type("ValueSet"):
        text = "".join(_div(shipped.by_url[valueset["url"]]).itertext())
        for include in valueset.get("compose", {}).get("include", []):
            for concept in include.get("concept", []):
                assert concept["code"] in text, (valueset["id"], concept["code"])
            for flt in include.get("filter", []):
                assert flt["value"] in text


def test_text_is_escaped_never_markup(knowledge):
    hostile = {"resourceType": "ValueSet", "id": "x", "title": "<script>alert(1)</script> & co",
               "compose": {"include": [{"system": "urn:x", "concept": [{"code": "<b onclick=x>"}]}]}}
    root = ET.fromstring(narrative(hostile, knowledge.artifacts)["div"])  # noqa: S314 -- our own output
    assert not list(root.iter(f"{NS}script")) and "<script>" in "".join(root.itertext())
    assert all(not e.attrib for e in root.iter())
