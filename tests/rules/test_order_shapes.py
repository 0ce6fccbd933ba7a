"""The order shapes table: one clinical order, written every way an EHR writes it, through the real hook call.

Two clinical orders for the standard arm B ICARIA patient (cycle 1 day 1 2026-09-01):
- LATE: dexamethasone 40 mg orally on cycle 3 day 1 (2026-10-27) → `dex-after-cycle-2`;
- RIGHT: dexamethasone 40 mg orally on cycle 1 day 8 (2026-09-08), a regimen day → no card (a false
  warning would show here).
Each shape rewrites the route, the drug, the timing, the modifiers or the envelope of that order, and says
what both must give. Each row runs through order-sign with complete prefetch (the Flask test client), and
a representative subset again in fetch mode (no prefetch; the record read from a FHIR server answering
like one, mocked with `responses`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlparse

import pytest
import responses

from tests.rules.scenario import BROKEN_SUBJECTS, RXNORM, SCT, call, day_of, dex_order, research_subject
from tests.spec import check_cds_response

EDQM = "http://standardterms.edqm.eu"
ANS_EDQM = "https://smt.esante.gouv.fr/terminologie-standardterms"
ATC = "http://www.whocc.no/atc"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
LATE, RIGHT = day_of(3, 1), day_of(1, 8)
WARN = ["dex-after-cycle-2"]
SERVER = "http://127.0.0.1:8123/fhir"

Shape = Callable[[date], tuple[dict[str, Any], tuple[dict[str, Any], ...]]]


def _order(day: date, **change: Any) -> dict[str, Any]:
    raw = dex_order(day, authoredOn=day.isoformat(), **change)
    return raw


def _route(route: dict[str, Any] | None) -> Shape:
    def build(day):
        raw = _order(day, route=None)
        if route is not None:
            raw["dosageInstruction"][0]["route"] = route
        return raw, ()
    return build


def _drug(medication: dict[str, Any], *extra: dict[str, Any], route: str | None = "oral") -> Shape:
    return lambda day: (_order(day, medication=copy.deepcopy(medication), route=route), extra)


def _timing(timing: dict[str, Any] | None) -> Shape:
    def build(day):
        raw = _order(day)
        if timing is None:
            del raw["dosageInstruction"][0]["timing"]
        else:
            raw["dosageInstruction"][0]["timing"] = json.loads(json.dumps(timing).replace("DAY", day.isoformat()))
        return raw, ()
    return build


def _change(**fields: Any) -> Shape:
    return lambda day: (_order(day, **fields), ())


def _edit(edit: Callable[[dict[str, Any]], None], **fields: Any) -> Shape:
    def build(day):
        raw = _order(day, **fields)
        edit(raw)
        return raw, ()
    return build


def _dosage(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["dosageInstruction"][0].update(fields)


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"medicationCodeableConcept": {"coding": [coding], **({"text": text} if text else {})}}


REFERENCED_MED = {"resourceType": "Medication", "id": "dex-med",
                  "code": {"coding": [{"system": RXNORM, "code": "197582", "display": "dexamethasone 4 MG Oral Tablet"}]}}
INGREDIENT_ONLY = {"contained": [{"resourceType": "Medication", "id": "ing", "ingredient": [
    {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}]}}]}],
    "medicationReference": {"reference": "#ing"}}
CONTAINED = {"contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "Dexaméthasone 20 mg comprimé"}}],
             "medicationReference": {"reference": "#m1"}}

# (id, shape, rules for LATE, rules for RIGHT)
ROWS: list[tuple[str, Shape, list[str], list[str]]] = [
    # Route: coded, words, absent.
    ("route SNOMED oral", _route({"coding": [{"system": SCT, "code": "26643006"}]}), WARN, []),
    ("route SNOMED IV", _route({"coding": [{"system": SCT, "code": "47625008"}]}), WARN, []),
    ("route EDQM oral", _route({"coding": [{"system": EDQM, "code": "20053000", "display": "Oral use"}]}), WARN, []),
    ("route EDQM (ANS URI) IV", _route({"coding": [{"system": ANS_EDQM, "code": "20045000",
                                                    "display": "Voie intraveineuse"}]}), WARN, []),
    ("route words English", _route({"text": "by mouth"}), WARN, []),
    ("route words French", _route({"text": "voie orale"}), WARN, []),
    ("route words per os", _route({"text": "per os"}), WARN, []),
    ("route compound voie sous-cutanée", _route({"text": "voie sous-cutanée"}), WARN, []),
    ("route compound sub-cutaneous", _route({"text": "sub-cutaneous"}), WARN, []),
    ("route compound intra-veineuse", _route({"text": "intra-veineuse"}), WARN, []),
    ("route absent", _route(None), WARN, []),
    # Drug: every coding and carrier.
    ("drug RxNorm ingredient", _drug(_concept(RXNORM, "3264", "dexamethasone")), WARN, []),
    ("drug RxNorm SCD", _drug(_concept(RXNORM, "197582", "dexamethasone 4 MG Oral Tablet"), route=None), WARN, []),
    # A product code the value set does not list: its own display names the drug (code invented for the test).
    ("drug RxNorm SBD by its display", _drug(_concept(RXNORM, "90000001", "Decadron 4 MG Oral Tablet")), WARN, []),
    ("drug SNOMED substance", _drug(_concept(SCT, "372584003", "Dexamethasone (substance)")), WARN, []),
    ("drug SNOMED product by its display", _drug(_concept(SCT, "90000002", "Dexamethasone 4 mg oral tablet")),
     WARN, []),
    ("drug ATC", _drug(_concept(ATC, "H02AB02")), WARN, []),
    ("drug text only, French", _drug({"medicationCodeableConcept": {"text": "DEXAMETHASONE 20MG CP"}}), WARN, []),
    ("drug local code, name decides", _drug(_concept("urn:oid:1.2.250.1.999", "X1", text="Neofordex 40 mg")),
     WARN, []),
    ("drug contained Medication", _drug(CONTAINED), WARN, []),
    ("drug referenced Medication in the Bundle",
     _drug({"medicationReference": {"reference": "Medication/dex-med"}}, REFERENCED_MED), WARN, []),
    ("drug ingredient only", _drug(INGREDIENT_ONLY), WARN, []),
    ("another drug coded ATC, text DXM", _drug(_concept(ATC, "R05DA09", text="DXM 15 mg sirop")), [], []),
    ("another drug coded RxNorm with its display, text DXM",
     _drug(_concept(RXNORM, "90000003", "dextromethorphan 15 MG", text="DXM 15 mg")), [], []),
    # Timing: every shape gives the order's days (RIGHT is a regimen day, LATE is in cycle 3).
    ("timing event", _timing({"event": ["DAYT08:00:00+02:00"]}), WARN, []),
    ("timing boundsPeriod start = end", _timing({"repeat": {"boundsPeriod": {"start": "DAY", "end": "DAY"}}}),
     WARN, []),
    ("timing boundsDuration 1 day", _timing({"repeat": {"boundsDuration": {"value": 1, "code": "d"},
                                                        "frequency": 1, "period": 1, "periodUnit": "d"}}), WARN, []),
    ("timing count 1 alone", _timing({"repeat": {"count": 1}}), WARN, []),
    ("timing count with frequency", _timing({"repeat": {"count": 1, "frequency": 1, "period": 1, "periodUnit": "d"}}),
     WARN, []),
    ("timing none (authoredOn)", _timing(None), WARN, []),
    ("timing empty", _timing({}), WARN, []),
    # A coded timing repeats: weekly with no end runs on into cycle 3.
    ("timing code WK, no repeat", _timing({"code": {"coding": [{"system": GTS, "code": "WK"}]}}), WARN,
     ["dex-extends-past-cycle-2"]),
    ("timing code text weekly", _timing({"code": {"text": "weekly"}}), WARN, ["dex-extends-past-cycle-2"]),
    ("timing code WK bounded to the day", _timing({"code": {"coding": [{"system": GTS, "code": "WK"}]},
                                                   "repeat": {"boundsPeriod": {"start": "DAY", "end": "DAY"}}}),
     WARN, []),
    # A loading dose, then weekly with no end: the second dosage runs on into cycle 3.
    ("two dosages: one dose, then weekly with no end", _edit(lambda raw: raw["dosageInstruction"].append(
        {**raw["dosageInstruction"][0], "timing": {"repeat": {
            "boundsPeriod": {"start": raw["authoredOn"]}, "frequency": 1, "period": 1, "periodUnit": "wk"}}})),
     WARN, ["dex-extends-past-cycle-2"]),
    # Dispense: refills carry a one-day order past cycle 2.
    ("dispense with refills", _change(frequency=None, dispenseRequest={
        "expectedSupplyDuration": {"value": 7, "unit": "days", "code": "d"}, "numberOfRepeatsAllowed": 10}),
     WARN, ["dex-extends-past-cycle-2"]),
    ("dispense quantity of one dose", _change(dispenseRequest={"quantity": {"value": 40, "unit": "mg", "code": "mg"}}),
     WARN, []),
    # Modifiers: what is not given gets no arm rule.
    ("doNotPerform", _change(doNotPerform=True), [], []),
    ("status cancelled", _change(status="cancelled"), [], []),
    ("status entered-in-error", _change(status="entered-in-error"), [], []),
    # The CDS Hooks Sandbox's drafts: Bundle without type (every row), single objects where arrays belong.
    ("sandbox category and reasonCode single objects", _edit(lambda raw: raw.update(
        category={"text": "inpatient"}, reasonCode={"text": "myeloma"})), WARN, []),
    # Local products: no card whatever the day.
    ("local eye drops product", _drug({"medicationCodeableConcept": {"text": "Dexamethasone 0.1% eye drops"}},
                                      route=None), [], []),
    ("local collyre", _drug({"medicationCodeableConcept": {"text": "Dexaméthasone 1 mg/ml, collyre"}}, route=None),
     [], []),
    ("local gouttes auriculaires", _drug({"medicationCodeableConcept": {
        "text": "dexaméthasone gouttes auriculaires"}}, route=None), [], []),
    ("local crème", _drug({"medicationCodeableConcept": {"text": "dexaméthasone crème"}}, route=None), [], []),
    ("local inhaled route EDQM", _route({"coding": [{"system": EDQM, "code": "20020000"}]}), [], []),
    ("local nasal route words", _route({"text": "voie nasale"}), [], []),
    # Words outside the order's own route and product never make it local.
    ("skin indication on an oral tablet", _edit(lambda raw: (raw.update(reasonCode=[{"text": "lupus cutané"}]),
                                                             _dosage(text="for a skin flare")(raw)),
                                                route=None, medication={"medicationCodeableConcept": {
                                                    "text": "Dexamethasone 4 mg tablet"}}), WARN, []),
    ("eye words in the instruction", _edit(_dosage(text="ne pas mettre dans l'œil", patientInstruction="eye"),
                                           route=None), WARN, []),
    # The order's own words disagree: systemic, and the card says what is unclear.
    ("route oral, product eye drops", _edit(lambda raw: None, route="oral", medication={
        "medicationCodeableConcept": {"text": "Dexamethasone eye drops"}}), WARN, []),
    ("local form, IV route text", _drug({"medicationCodeableConcept": {"text": "dexaméthasone crème"}},
                                        route="IV"), WARN, []),
]

FETCH_ROWS = {"route EDQM (ANS URI) IV", "route compound voie sous-cutanée", "drug referenced Medication in the Bundle",
              "another drug coded ATC, text DXM", "timing count 1 alone", "timing code WK, no repeat",
              "doNotPerform", "local collyre", "skin indication on an oral tablet", "route oral, product eye drops"}


def _body(shape: Shape, day: date) -> dict[str, Any]:
    order, extra = shape(day)
    return call("order-sign", (order,), draft_extra=extra)


def _post(client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/cds-services/dex-free-order-sign", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    check_cds_response(payload)
    return payload["cards"]


def _rules(cards: list[dict[str, Any]]) -> list[str]:
    return [c["extension"]["dexfree"]["rule"] for c in cards]


CASES = [pytest.param(shape, day, expected, id=f"{name} / {label}")
         for name, shape, late, right in ROWS
         for label, day, expected in (("C3D1", LATE, late), ("C1D8", RIGHT, right))]


@pytest.mark.parametrize(("shape", "day", "expected"), CASES)
def test_prefetch(client, shape, day, expected):
    assert _rules(_post(client, _body(shape, day))) == expected


@pytest.mark.parametrize(("day", "expected"), [(LATE, WARN), (RIGHT, [])], ids=["C3D1", "C1D8"])
def test_sandbox_draft_without_intent(client, day, expected):
    order = _order(day)
    del order["intent"]
    assert _rules(_post(client, call("order-sign", (order,)))) == expected


def test_ambiguous_own_words_are_said_on_the_card(client):
    shape = dict((r[0], r[1]) for r in ROWS)["route oral, product eye drops"]
    [card] = _post(client, _body(shape, LATE))
    assert '**Check:** route unclear, product "eye drops" says local' in card["detail"]


def _fake_server(resources: list[dict[str, Any]]) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    """A FHIR server over `resources`: reads by id, searches by type (every resource of the one patient)."""
    def answer(request):
        url = urlparse(request.url)
        parts = url.path.removeprefix(urlparse(SERVER).path).strip("/").split("/")
        if len(parts) == 2:
            found = [r for r in resources if r["resourceType"] == parts[0] and r.get("id") == parts[1]]
            if not found:
                return 404, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found"}]})
            return 200, {"Content-Type": "application/fhir+json"}, json.dumps(found[0])
        kinds = {parts[0]} | ({"ResearchStudy"} if "_include" in url.query else set())
        matches = [r for r in resources if r["resourceType"] in kinds]
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                  "entry": [{"resource": r, "search": {"mode": "match" if r["resourceType"] == parts[0]
                                                      else "include"}} for r in matches]}
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)
    return answer


def _fetch_mode(body: dict[str, Any]) -> dict[str, Any]:
    """The same call with no prefetch: the record lives on the FHIR server instead."""
    prefetch = body.pop("prefetch")
    resources = [prefetch["patient"]]
    for value in prefetch.values():
        resources += [e["resource"] for e in (value.get("entry") or [])] if value.get("resourceType") == "Bundle" else []
    body["fhirServer"] = SERVER
    body["fhirAuthorization"] = {"access_token": "shape-table-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "dex-free"}
    body["_resources"] = resources
    return body


FETCH_CASES = [c for c in CASES if c.id.split(" / ")[0] in FETCH_ROWS]


@pytest.mark.parametrize(("shape", "day", "expected"), FETCH_CASES)
@responses.activate
def test_fetch_mode(request, client, shape, day, expected):
    body = _fetch_mode(_body(shape, day))
    responses.add_callback(responses.GET, re.compile(re.escape(SERVER) + r"/.*"),
                           callback=_fake_server(body.pop("_resources")))
    assert _rules(_post(client, body)) == expected
    if request.node.callspec.id.startswith(("another drug", "doNotPerform")):
        # Another drug by the order's own code, or not to be given: nothing in the record makes a card.
        assert not responses.calls, "a draft of another drug needs no read"
    else:
        assert responses.calls, "fetch mode must read the record from the server"


def test_every_fetch_row_names_a_row():
    """A misspelt name would silently drop a row from the fetch-mode pass."""
    assert FETCH_ROWS.issubset(name for name, *_ in ROWS)


@pytest.mark.parametrize("hook", ["order-sign", "patient-view"])
@pytest.mark.parametrize("change", BROKEN_SUBJECTS.values(), ids=BROKEN_SUBJECTS.keys())
@responses.activate
def test_an_enrolment_read_from_the_server_that_is_not_valid_fhir_is_said(client, hook, change):
    """The arm B patient's ResearchSubject, read from fhirServer (no prefetch), does not validate: filed as
    unreadable as when prefetched, so the arm-B order gets could-not-check and patient-view says so too."""
    orders = (_order(LATE),) if hook == "order-sign" else ()
    body = _fetch_mode(call(hook, orders, subjects=({**research_subject(), **change},)))
    responses.add_callback(responses.GET, re.compile(re.escape(SERVER) + r"/.*"),
                           callback=_fake_server(body.pop("_resources")))
    response = client.post(f"/cds-services/dex-free-{hook}", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    [card] = response.get_json()["cards"]
    assert card["extension"]["dexfree"]["rule"] == "cannot-verify"
    assert card["extension"]["dexfree"]["missing"] == ["a trial enrolment could not be read"]
    assert any("/ResearchSubject" in c.request.url for c in responses.calls)
