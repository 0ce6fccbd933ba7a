"""Every link a card carries opens: on the Flask app, behind a proxy, and on the real gunicorn server."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests

from cds_service.knowledge.publish import canonical_base
from tests.cards.test_eligibility_card import call_body
from tests.fixtures.eligibility.builders import baseline
from tests.published.conftest import PUBLIC_BASE
from tests.rules.scenario import call, care_plan, day_of, dex_order, research_subject
from tests.servers import cds_service
from tests.spec import check_cds_response

SERVICES = {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select",
            "patient-view": "dex-free-patient-view"}
ARM_A = (research_subject("dexamethasone arm"),)
# One call per kind of card the rules make (the rule each must produce), on the scenario patient.
CASES = {
    "dex-after-cycle-2": lambda: call(orders=(dex_order(day_of(3, 1)),)),
    "dex-extends-past-cycle-2": lambda: call("order-select", (dex_order(day_of(2, 22), days=10,
                                                                      frequency=(1, 1, "wk")),)),
    "dex-dose-mismatch": lambda: call(orders=(dex_order(day_of(2, 8), dose=40),),
                                      plans=(care_plan("ikema-arm-b"),)),
    "cannot-verify": lambda: call(orders=(dex_order(),), plans=()),
    "cannot-verify-arm": lambda: call(orders=(dex_order(day_of(3, 1)),), subjects=(research_subject(None),)),
    "trial-status": lambda: call("patient-view"),
    "trial-status-arm-a": lambda: call("patient-view", subjects=ARM_A, plans=(care_plan("icaria-arm-a"),)),
    "eligibility": lambda: call_body(baseline()),
}


def cards_of(client, body) -> list[dict]:
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())
    return response.get_json()["cards"]


def urls_of(card: dict) -> list[str]:
    return [card["source"]["url"], *(link["url"] for link in card.get("links", []))]


def all_cards(client) -> dict[str, list[dict]]:
    found = {name: cards_of(client, make()) for name, make in CASES.items()}
    assert all(found.values()), [name for name, cards in found.items() if not cards]
    return found


def test_every_card_kind_is_exercised(client):
    rules = {card["extension"]["dexfree"]["rule"] for cards in all_cards(client).values() for card in cards}
    assert rules == {"dex-after-cycle-2", "dex-extends-past-cycle-2", "dex-dose-mismatch", "cannot-verify",
                     "trial-status", "eligibility"}


def test_every_card_link_and_source_resolves_on_the_service(client, knowledge):
    placeholder = canonical_base(knowledge)
    for name, cards in all_cards(client).items():
        for card in cards:
            assert card["source"]["url"].startswith("http://localhost/fhir/"), name
            for url in urls_of(card):
                assert not url.startswith(placeholder), (name, url)
                if url == knowledge.study.registry_url:
                    continue  # ClinicalTrials.gov: the one link to another host
                assert url.startswith("http://localhost/"), (name, url)
                assert client.get(urlsplit(url).path).status_code == 200, (name, url)
            assert knowledge.study.registry_url in urls_of(card), name


def test_links_name_what_a_clinician_reads(client, knowledge):
    """The source is the published rule (FHIR JSON); a regimen link opens that regimen's page."""
    found = all_cards(client)
    (warning,) = found["dex-after-cycle-2"]
    assert warning["source"]["url"] == "http://localhost/fhir/PlanDefinition/dex-free-arm-b-rule"
    assert "http://localhost/regimens/icaria-arm-b" in urls_of(warning)
    (dose,) = found["dex-dose-mismatch"]
    assert "http://localhost/regimens/ikema-arm-b" in urls_of(dose)
    (status_a,) = found["trial-status-arm-a"]
    assert "http://localhost/regimens/icaria-arm-a" in urls_of(status_a)
    # The regimen not known: the protocol's arms and regimens.
    assert any("http://localhost/regimens" in urls_of(card) for card in found["cannot-verify"])
    # Discovery keeps naming the artifacts by canonical: that is their identity, not a link.
    assert client.get("/cds-services").get_json()["services"][0]["extension"]["dexfree"]["rule"] == knowledge.rule


def test_behind_a_proxy_card_links_use_cds_base_url(proxied_client):
    for name, cards in all_cards(proxied_client).items():
        for card in cards:
            assert card["source"]["url"].startswith(PUBLIC_BASE + "/fhir/"), name
            for url in urls_of(card):
                if url.startswith("https://clinicaltrials.gov/"):
                    continue
                assert url.startswith(PUBLIC_BASE + "/"), (name, url)
                # The proxy strips the public prefix: the service answers the rest of the path.
                assert proxied_client.get(url.removeprefix(PUBLIC_BASE)).status_code == 200, (name, url)


def test_without_cds_base_url_links_follow_the_host_called(client):
    (warning,) = cards_of(client, CASES["dex-after-cycle-2"]())
    response = client.post("/cds-services/dex-free-order-sign", data=json.dumps(CASES["dex-after-cycle-2"]()),
                           content_type="application/json", base_url="https://ehr-facing.example:8443")
    (card,) = response.get_json()["cards"]
    assert card["source"]["url"] == "https://ehr-facing.example:8443/fhir/PlanDefinition/dex-free-arm-b-rule"
    assert warning["source"]["url"] == "http://localhost/fhir/PlanDefinition/dex-free-arm-b-rule"


@pytest.mark.integration
def test_card_links_open_on_the_real_server():
    """gunicorn, as `make run` starts it: the links of an arm B warning and a trial-status card open."""
    with cds_service() as (base, _):
        links = []
        for name in ("dex-after-cycle-2", "trial-status", "cannot-verify"):
            body = CASES[name]()
            answer = requests.post(f"{base}/cds-services/{SERVICES[body['hook']]}", json=body, timeout=10)
            assert answer.status_code == 200
            links += [url for card in answer.json()["cards"] for url in urls_of(card)]
        served = [url for url in links if url.startswith(base)]
        assert len(served) >= 6 and all(u.startswith(base) or "clinicaltrials.gov" in u for u in links)
        for url in served:
            response = requests.get(url, timeout=5)
            assert response.status_code == 200, url
            assert response.headers["Content-Type"].startswith(("application/fhir+json", "text/html")), url
        metadata = requests.get(f"{base}/fhir/metadata", timeout=5)
        assert metadata.status_code == 200 and metadata.json()["resourceType"] == "CapabilityStatement"
        page = requests.get(f"{base}/regimens/icaria-arm-b", timeout=5)
        assert "No dexamethasone from cycle 3" in page.text
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
