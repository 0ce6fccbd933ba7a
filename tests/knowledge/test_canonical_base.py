"""One canonical base (CDS_CANONICAL_BASE): a site that publishes under its own gets matching URLs everywhere."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import SOURCE_BASE
from cds_service.knowledge.model import load_knowledge
from cds_service.knowledge.publish import publish
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.knowledge.conftest import SHIPPED
from tests.rules.scenario import call, care_plan, day_of, dex_order

SITE = "https://essais.chu-exemple.fr/fhir/dexfree"


@pytest.fixture(scope="module")
def site_knowledge():
    return load_knowledge(SHIPPED, None, base=SITE)


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "data":  # the Library's base64 CQL stays as its source file until published
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_the_setting_is_read_and_checked():
    assert Config.from_env({}).canonical_base is None  # the files' own base, SOURCE_BASE
    assert Config.from_env({"CDS_CANONICAL_BASE": SITE + "/"}).canonical_base == SITE
    assert Config.from_env({"CDS_CANONICAL_BASE": "urn:uuid:5f0c"}).canonical_base == "urn:uuid:5f0c"
    for bad in ("dexfree.fr/fhir", "https://x/fhir'", 'https://x/"f'):
        with pytest.raises(ConfigError, match="CDS_CANONICAL_BASE"):
            Config.from_env({"CDS_CANONICAL_BASE": bad})


def test_every_url_of_the_knowledge_moves_under_the_site_base(site_knowledge):
    artifacts = site_knowledge.artifacts
    assert all(url.startswith(SITE + "/") for url in artifacts.by_url)
    assert not any(SOURCE_BASE in s for r in artifacts for s in _strings(r))
    assert site_knowledge.study.url.startswith(SITE) and site_knowledge.rule.startswith(SITE)
    assert all(r.url.startswith(SITE) for r in site_knowledge.regimens)
    assert site_knowledge.terminology.codesystem["url"] == f"{SITE}/CodeSystem/dexfree"
    # The files keep the default base.
    assert json.loads((SHIPPED / "rules" / "Library-dex-free-rules.json").read_text())["url"].startswith(SOURCE_BASE)


def test_the_default_base_changes_nothing(knowledge):
    assert all(url.startswith(SOURCE_BASE + "/") for url in knowledge.artifacts.by_url)


def _site_client(site_knowledge):
    config = replace(Config(), canonical_base=SITE)
    return create_app(runtime=Runtime(config=config, knowledge=site_knowledge, clock=lambda: FIXED_NOW)).test_client()


def test_a_care_plan_naming_the_site_regimen_is_matched_and_cards_name_the_site_rule(site_knowledge):
    client = _site_client(site_knowledge)
    plan = care_plan()
    plan["instantiatesCanonical"] = [f"{SITE}/PlanDefinition/icaria-arm-b|1.0.0"]
    body = call(orders=(dex_order(day_of(3, 1)),), plans=(plan,))
    cards = client.post("/cds-services/dex-free-order-sign", json=body).get_json()["cards"]
    assert [c["extension"]["dexfree"]["rule"] for c in cards] == ["dex-after-cycle-2"]
    assert cards[0]["extension"]["dexfree"]["regimen"] == "ICARIA"
    # Links still open the service's own served copies (cards/common.served_links).
    assert cards[0]["source"]["url"] == "http://localhost/fhir/PlanDefinition/dex-free-arm-b-rule"
    assert cards[0]["links"][1]["url"] == "http://localhost/regimens/icaria-arm-b"
    discovery = client.get("/cds-services").get_json()
    assert SITE in json.dumps(discovery) and SOURCE_BASE not in json.dumps(discovery)


def test_a_care_plan_naming_the_example_base_is_not_the_site_regimen(site_knowledge):
    client = _site_client(site_knowledge)
    body = call(orders=(dex_order(day_of(3, 1)),), plans=(care_plan(),))  # the example base
    cards = client.post("/cds-services/dex-free-order-sign", json=body).get_json()["cards"]
    assert [c["extension"]["dexfree"]["rule"] for c in cards] == ["cannot-verify"]


def test_publish_under_the_site_base(site_knowledge, tmp_path):
    paths = publish(site_knowledge, tmp_path)
    bundle = json.loads(paths["bundle"].read_text())
    assert all(e["fullUrl"].startswith(SITE) for e in bundle["entry"] if e["resource"]["resourceType"] != "NamingSystem")
    [library] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Library"]
    cql, elm = (base64.b64decode(c["data"]).decode() for c in library["content"])
    assert f"'{SITE}/ValueSet/dexamethasone'" in cql and SOURCE_BASE not in cql
    assert f"{SITE}/ValueSet/dexamethasone" in elm and SOURCE_BASE not in elm
    assert json.loads((tmp_path / "package" / "package.json").read_text())["canonical"] == SITE
