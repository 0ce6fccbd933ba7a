"""Malformed prefetch and search Bundles (issue 13): an unreadable entry or link is a gap, never a 500.

A Bundle whose entry cannot be read as a resource, or whose `link` cannot be read, is not used: the part
is read from fhirServer, or named as missing (412 when the call needs it, a named gap otherwise).
"""

from __future__ import annotations

import json

import pytest
import responses

from cds_service.fhir import raw
from cds_service.fhir.assemble import MissingData, assemble_record, prefetch_gap
from cds_service.fhir.client import Deadline, FhirReadError, Target
from cds_service.hooks.request import parse_hook_request
from cds_service.services import SERVICES
from tests.conftest import load_fixture
from tests.fhir.support import BASE, PATIENT, RESEARCH_SUBJECT, TOKEN, FakeClock, bundle, gateway
from tests.spec import check_operation_outcome

BAD_TYPES = [["ResearchSubject"], {"text": "ResearchSubject"}, 7, True, "", None]
BAD_ENTRIES = [None, 3, "ResearchSubject", [], [{"resource": RESEARCH_SUBJECT}], {"resource": None},
               {"resource": []}, {"resource": {}}, {"fullUrl": "urn:uuid:1"}]
BAD_LINKS = [{"relation": "next", "url": "x"}, "next", 3, True, [1], [None], [["next"]],
             [{"relation": ["next"], "url": "Procedure?page=2"}], [{"relation": "next", "url": {"a": 1}}],
             [{"relation": "next"}], [{"relation": "next", "url": "http://[::1/x"}]]
GOLDEN = {
    "order-sign": ("golden/order-sign-arm-b-cycle-3.request.json", "dex-free-order-sign"),
    "order-select": ("golden/order-select-arm-b-runs-into-cycle-3.request.json", "dex-free-order-select"),
    "patient-view": ("golden/patient-view-arm-b-status.request.json", "dex-free-patient-view"),
}
SERVICE_OF = {s.id: s for s in SERVICES}


def _bundle_keys(doc):
    return [k for k, v in doc["prefetch"].items() if isinstance(v, dict) and v.get("resourceType") == "Bundle"]


def _cases():
    """(fixture, service, prefetch key) for every Bundle key of every hook's golden call."""
    for fixture, service in GOLDEN.values():
        for key in _bundle_keys(load_fixture(fixture)):
            yield pytest.param((fixture, service, key), id=f"{service}-{key}")


def _post(client, service, doc):
    return client.post(f"/cds-services/{service}", data=json.dumps(doc), content_type="application/json")


def _expect_gap(response, service, key):
    """412 naming the part when the service needs it; otherwise an answer (the gap is named in the record)."""
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if key in SERVICE_OF[service].needs:
        assert response.status_code == 412
        outcome = response.get_json()
        check_operation_outcome(outcome)
        part_issues = [i for i in outcome["issue"] if i.get("expression") == [f"prefetch.{key}"]]
        assert part_issues
        assert any(word in part_issues[0]["diagnostics"] for word in ("unreadable", "cannot be told"))
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("bad", BAD_TYPES, ids=repr)
def test_an_entry_whose_resource_type_is_not_a_string_is_a_gap(client, case, bad):
    fixture, service, key = case
    doc = load_fixture(fixture)
    doc["fhirServer"] = None  # nothing to read the part from instead
    entries = doc["prefetch"][key].setdefault("entry", [])
    entries.append({"resource": {"resourceType": "ResearchSubject", "id": "x"}})
    entries[0]["resource"]["resourceType"] = bad
    _expect_gap(_post(client, service, doc), service, key)


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("bad", BAD_LINKS, ids=repr)
def test_a_bundle_whose_link_is_unreadable_is_a_gap(client, case, bad):
    fixture, service, key = case
    doc = load_fixture(fixture)
    doc["fhirServer"] = None
    doc["prefetch"][key]["link"] = bad
    _expect_gap(_post(client, service, doc), service, key)


@pytest.mark.parametrize("bad", BAD_ENTRIES, ids=repr)
def test_an_entry_that_is_not_a_resource_is_named_by_position(bad):
    value = bundle(RESEARCH_SUBJECT)
    value["entry"].insert(1, bad)
    gap = prefetch_gap(value)
    assert gap is not None and "entry[1]" in gap and "unreadable" in gap


def test_readable_bundles_and_links_are_still_used():
    paged = bundle(RESEARCH_SUBJECT, next_url=f"{BASE}/ResearchSubject?page=2")
    paged["link"].append({"relation": "self", "url": f"{BASE}/ResearchSubject"})
    assert prefetch_gap(paged) is None
    assert raw.next_link(paged) == f"{BASE}/ResearchSubject?page=2"
    assert prefetch_gap(bundle(RESEARCH_SUBJECT, {"resourceType": "Observation", "id": "o"})) is None


def _order_sign(prefetch, fhir_server=None):
    doc = load_fixture("golden/order-sign-arm-b-cycle-3.request.json")
    doc["prefetch"].update(prefetch)
    doc.pop("fhirServer", None)
    if fhir_server:
        doc["fhirServer"] = fhir_server
        doc["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer"}
    return parse_hook_request(doc, "order-sign", "dex-free-order-sign")


def test_without_a_server_an_unreadable_needed_part_is_a_412_naming_it():
    broken = load_fixture("golden/order-sign-arm-b-cycle-3.request.json")["prefetch"]["researchSubjects"]
    broken["entry"][0]["resource"]["resourceType"] = ["ResearchSubject"]
    with pytest.raises(MissingData) as caught:
        assemble_record(_order_sign({"researchSubjects": broken}), SERVICE_OF["dex-free-order-sign"].needs)
    reason, _ = caught.value.missing["researchSubjects"]
    assert "entry[0]: its resourceType is an array" in reason


@responses.activate
def test_with_a_server_an_unreadable_prefetch_part_is_read_from_it_instead():
    broken = {"resourceType": "Bundle", "entry": [], "link": {"relation": "next", "url": "x"}}
    subject = dict(RESEARCH_SUBJECT, id="subj-1", individual={"reference": "Patient/pat-42"})
    responses.get(f"{BASE}/ResearchSubject", json=bundle(subject))
    request = _order_sign({"researchSubjects": broken}, fhir_server=BASE)
    record = assemble_record(request, SERVICE_OF["dex-free-order-sign"].needs,
                             fhir=gateway(allowed_fhir_servers=(BASE,)))
    assert record.sources["researchSubjects"] == "fhirServer"
    assert [s.id for s in record.research_subjects] == ["subj-1"]


# --- the same on the fetch path: a server answering Bundles with unreadable entries or links -------------

@responses.activate
@pytest.mark.parametrize("mutate", [
    lambda b: b["entry"].append({"resource": {"resourceType": {"a": 1}}}),
    lambda b: b["entry"].append("Patient"),
    lambda b: b.__setitem__("link", {"relation": "next", "url": "x"}),
    lambda b: b.__setitem__("link", [{"relation": "next", "url": 5}]),
    lambda b: b.__setitem__("entry", {"resource": PATIENT}),
], ids=["resourceType object", "entry string", "link object", "link url number", "entry object"])
def test_a_search_page_that_is_unreadable_is_an_invalid_read(mutate):
    page = bundle(RESEARCH_SUBJECT)
    mutate(page)
    responses.get(f"{BASE}/ResearchSubject", json=page)
    clock = FakeClock()
    client = gateway(clock).client
    with pytest.raises(FhirReadError) as caught:
        client.search(Target(BASE, TOKEN), "ResearchSubject?patient=pat-1", Deadline.after(4000, clock))
    assert caught.value.kind == "invalid" and "page 1" in caught.value.reason


# --- draft orders: what is checked must at least be a resource --------------------------------------------

@pytest.mark.parametrize("bad", [None, 3, "MedicationRequest", [], {"resource": None}, {"resource": []},
                                 {"fullUrl": "urn:uuid:1"}], ids=repr)
def test_a_draft_order_entry_that_is_not_a_resource_is_a_400_naming_it(client, bad):
    doc = load_fixture("golden/order-sign-arm-b-cycle-3.request.json")
    doc["context"]["draftOrders"]["entry"].append(bad)
    response = _post(client, "dex-free-order-sign", doc)
    assert response.status_code == 400
    issue = check_operation_outcome(response.get_json())
    assert issue["expression"][0].startswith("context.draftOrders.entry[1]")


@pytest.mark.parametrize("bad", [["MedicationRequest"], {"a": 1}, 5, None], ids=repr)
def test_a_draft_order_whose_type_cannot_be_told_is_said_to_be_unverifiable(client, bad):
    doc = load_fixture("golden/order-sign-arm-b-cycle-3.request.json")
    doc["context"]["draftOrders"]["entry"][0]["resource"]["resourceType"] = bad
    response = _post(client, "dex-free-order-sign", doc)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert [c["extension"]["dexfree"]["rule"] for c in cards] == ["cannot-verify"], cards
    assert cards[0]["summary"].startswith("Could not check this dexamethasone order")


@responses.activate
@pytest.mark.parametrize("reference", ["Medication/..", "Medication/.", "Medication/../../x",
                                       "http://169.254.169.254/Medication/x", "Medication/../Patient/pat-42"])
def test_a_reference_that_would_climb_or_leave_the_server_is_never_read(reference):
    request = _order_sign({}, fhir_server=BASE)
    order = request.draft_orders["entry"][0]["resource"]
    order.pop("medicationCodeableConcept")
    order["medicationReference"] = {"reference": reference}
    record = assemble_record(request, (), wants=(), fhir=gateway(allowed_fhir_servers=(BASE,)))
    assert reference in record.unresolved
    assert len(responses.calls) == 0
