"""The short cuts (`no_card_because`) answer exactly what the full evaluation answers.

Order hooks:

Every request of the order scenario table and of the order shapes table, and each of those orders again
under every way a record can say the patient is or is not enrolled (none, another study, a study that
cannot be read, another patient's enrolment, a paged or unreadable part, no part at all), and every way
a draft can name another drug, goes through the service twice: as deployed, and with the short cut
turned off. Status and cards must be the same, with one exception by design: where the short cut
answers, the full evaluation gives no card either, or a 412 for a part that no longer matters (a
non-dexamethasone order needs no enrolment, a patient in no study no care plan): no card can come of
that part whatever it holds, and an EHR told 412 would only retry or show an error.

patient-view: the eligibility criteria table, the synthetic population and the trial-status scenarios,
each again under the ways of (not) being enrolled and every way a record can say (or fail to say) that
the patient has multiple myeloma, with not-eligible cards shown too (the most cards there can be).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.fhir.assemble import draft_record
from cds_service.fhir.parse import parse_resource
from cds_service.hooks.registry import Registry
from cds_service.hooks.request import parse_hook_request
from cds_service.runtime import Runtime
from cds_service.services import default_registry
from tests.conftest import FIXED_NOW
from tests.rules import test_order_shapes as shapes
from tests.rules.scenario import RXNORM, bundle, call, day_of, dex_order, research_study, research_subject
from tests.services.test_order_hooks import SCENARIOS

SERVICES = {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select",
            "patient-view": "dex-free-patient-view"}


def _clients(config, knowledge):
    gated = Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW)
    full = Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW,
                   registry=Registry(replace(s, no_card_because=None) for s in default_registry()))
    return create_app(runtime=gated).test_client(), create_app(runtime=full).test_client()


def _answer(client, body: dict[str, Any]) -> tuple[int, Any]:
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", data=json.dumps(body),
                           content_type="application/json")
    payload = response.get_json()
    if response.status_code != 200:
        return response.status_code, payload["issue"][0]["code"]
    return 200, [{key: card.get(key) for key in ("summary", "indicator", "detail", "extension")}
                 for card in payload["cards"]]


def _with_subjects(body: dict[str, Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["prefetch"]["researchSubjects"] = value
    return body


OTHER_PATIENT = research_subject(individual={"reference": "Patient/someone-else"})
PAGED = {**bundle(), "link": [{"relation": "next", "url": "http://127.0.0.1:8123/fhir/ResearchSubject?page=2"}]}
# The enrolment part, written every way a record can say (or fail to say) whether the patient is enrolled.
ENROLMENTS = {
    "arm B (as the table)": None,
    "none": bundle(),
    "none, with an information OperationOutcome": bundle({"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational"}]}),
    "another study": bundle(research_subject(), research_study("NCT01234567")),
    "a study that cannot be read": bundle(research_subject(study="ResearchStudy/nowhere")),
    "another patient's enrolment": bundle(OTHER_PATIENT, research_study()),
    "arm unknown": bundle(research_subject("arm C"), research_study()),
    "arm A": bundle(research_subject("dexamethasone arm"), research_study()),
    "off study": bundle(research_subject(status="off-study"), research_study()),
    "paged": PAGED,
    "an unreadable entry": {**bundle(), "entry": [{"resource": {"resourceType": ["ResearchSubject"]}}]},
    "not prefetched": "absent",
    "null": "null",
}

# Drafts that name another drug, or might be dexamethasone, each way an EHR writes them.
ONDANSETRON = {"coding": [{"system": RXNORM, "code": "26225", "display": "ondansetron"}]}
DRAFTS = {
    "ondansetron, coded": dex_order(day_of(3, 1), medication={"medicationCodeableConcept": ONDANSETRON}),
    "ondansetron, text only": dex_order(day_of(3, 1),
                                        medication={"medicationCodeableConcept": {"text": "ondansetron 8 mg"}}),
    "a drug named by nothing": dex_order(day_of(3, 1), medication={"medicationCodeableConcept": {}}),
    "dexamethasone by text": dex_order(day_of(3, 1),
                                       medication={"medicationCodeableConcept": {"text": "Dexaméthasone 20 mg"}}),
    "a Medication elsewhere": dex_order(day_of(3, 1), medication={"medicationReference": {
        "reference": "Medication/med-9"}}),
    "a Medication named by its display only": dex_order(day_of(3, 1), medication={"medicationReference": {
        "reference": "Medication/med-9", "display": "ondansetron"}}),
    "a contained Medication": dex_order(day_of(3, 1), **shapes.CONTAINED),
    "stopped dexamethasone": dex_order(day_of(3, 1), status="stopped"),
    "do-not-perform dexamethasone": dex_order(day_of(3, 1), doNotPerform=True),
}
UNREADABLE_DEX = {"resourceType": "MedicationRequest", "id": "bad", "status": "draft", "intent": "order",
                  "subject": {"reference": "Patient/pat-42"}, "medicationCodeableConcept": {"text": "dexamethasone"},
                  "dosageInstruction": "twice"}
UNREADABLE_OTHER = {**UNREADABLE_DEX, "medicationCodeableConcept": {"text": "ondansetron"}}


def _bodies() -> list[tuple[str, dict[str, Any]]]:
    found = [(f"scenario {name}", call(**kwargs)) for name, kwargs, _ in SCENARIOS]
    found += [(f"shape {case.id}", shapes._body(*case.values[:2])) for case in shapes.CASES]
    for name, draft in DRAFTS.items():
        for hook in ("order-sign", "order-select"):
            found.append((f"{hook} {name}", call(hook, (draft,))))
        found.append((f"{name}, beside a dexamethasone order", call("order-sign", (draft, dex_order(day_of(3, 1))))))
        found.append((f"{name}, the other one selected", call("order-select", (draft, dex_order(day_of(3, 1))),
                                                               selections=("MedicationRequest/dex-1",))))
    for extra, label in ((UNREADABLE_DEX, "an unreadable dexamethasone draft"),
                         (UNREADABLE_OTHER, "an unreadable draft of another drug")):
        found.append((label, call("order-sign", (DRAFTS["ondansetron, coded"],), draft_extra=(extra,))))
    found.append(("no draft at all", call("order-sign", ())))
    # Each of those again under every way of (not) being enrolled.
    crossed = []
    for name, body in found:
        for enrolment, value in ENROLMENTS.items():
            if value is None:
                crossed.append((name, body))
                continue
            changed = _with_subjects(body, value)
            if value == "absent":
                del changed["prefetch"]["researchSubjects"]
            elif value == "null":
                changed["prefetch"]["researchSubjects"] = None
            crossed.append((f"{name} / {enrolment}", changed))
    return crossed


BODIES = _bodies()


def _reason(body: dict[str, Any], knowledge) -> str | None:
    request = parse_hook_request(body, body["hook"], SERVICES[body["hook"]])
    service = next(s for s in default_registry() if s.id == SERVICES[body["hook"]])
    return service.no_card_because(request, draft_record(request), knowledge, parse_resource)


def _compare(gated, full, bodies, knowledge) -> tuple[list[tuple[Any, ...]], list[str | None]]:
    """Each body through both services: where they differ beyond the allowed 412, and each short cut's reason."""
    differ, reasons = [], []
    for name, body in bodies:
        quick, slow, reason = _answer(gated, body), _answer(full, body), _reason(body, knowledge)
        reasons.append(reason)
        if reason is None and quick != slow:
            differ.append((name, "not decided early, yet answered otherwise", quick, slow))
        if reason is not None and (quick != (200, []) or slow not in ((200, []), (412, "incomplete"))):
            differ.append((name, reason, quick, slow))
    return differ, reasons


def test_the_short_cut_gives_the_full_answer(config, knowledge):
    gated, full = _clients(config, knowledge)
    differ, reasons = _compare(gated, full, BODIES, knowledge)
    assert not differ, differ[:5]
    # Decided often, and on both grounds: the comparison is not vacuous.
    assert set(reasons) == {None, "no draft order may be dexamethasone", "no enrolment in any study"}
    assert sum(r is not None for r in reasons) > len(BODIES) // 5


@pytest.mark.parametrize(("name", "value"), [(k, v) for k, v in ENROLMENTS.items() if v in ("absent", "null")])
def test_a_missing_enrolment_part_is_still_a_412(config, knowledge, name, value):
    # Not a short cut: without the enrolments nothing is known, and the call must say so.
    gated, _ = _clients(config, knowledge)
    body = copy.deepcopy(call("order-sign", (dex_order(day_of(3, 1)),)))
    if value == "absent":
        del body["prefetch"]["researchSubjects"]
    else:
        body["prefetch"]["researchSubjects"] = None
    assert _answer(gated, body) == (412, "incomplete")


MYELOMA = {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C90.00"}


def _condition(code: dict[str, Any] | None, *, rid: str = "cond-x", text: str | None = None,
               verification: str | None = None, patient_id: str = "p1") -> dict[str, Any]:
    built: dict[str, Any] = {"resourceType": "Condition", "id": rid, "subject": {"reference": f"Patient/{patient_id}"},
                             "code": {**({"coding": [code]} if code else {}), **({"text": text} if text else {})}}
    if verification:
        built["verificationStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]}
    return built


# The conditions part, every way a record says (or fails to say) that the patient has multiple myeloma.
CONDITIONS = {
    "as the case": None,
    "none": [],
    "myeloma, ICD-10-CM": [MYELOMA],
    "myeloma, WHO ICD-10": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "C90.0"}],
    "myeloma, SNOMED CT": [{"system": "http://snomed.info/sct", "code": "109989006"}],
    "myeloma by text only": ["text"],
    "myeloma entered in error": ["error"],
    "myeloma refuted": ["refuted"],
    "hypertension only": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}],
    "paged": "paged",
    "an unreadable entry": "unreadable",
    "not prefetched": "absent",
}


def _with_conditions(body: dict[str, Any], how: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    pid = body["context"]["patientId"]
    if how is None:
        return body
    if how == "absent":
        del body["prefetch"]["conditions"]
    elif how == "paged":
        body["prefetch"]["conditions"] = PAGED
    elif how == "unreadable":
        body["prefetch"]["conditions"] = {**bundle(), "entry": [{"resource": {"resourceType": 7}}]}
    else:
        made = []
        for index, item in enumerate(how):
            rid = f"cond-{index}"
            if item == "text":
                made.append(_condition(None, rid=rid, text="Multiple myeloma", patient_id=pid))
            elif item in ("error", "refuted"):
                verification = "entered-in-error" if item == "error" else "refuted"
                made.append(_condition(MYELOMA, rid=rid, verification=verification, patient_id=pid))
            else:
                made.append(_condition(item, rid=rid, patient_id=pid))
        body["prefetch"]["conditions"] = bundle(*made)
    return body


def _view_bodies() -> list[tuple[str, dict[str, Any]]]:
    from tests.cards.test_eligibility_card import call_body
    from tests.fixtures.eligibility.population import SHARED, population
    from tests.rules import test_eligibility_criteria

    # Every criterion case as it is and with no enrolment; the conditions crossed with the others.
    as_they_are = []
    for criterion, name, resources, *_ in test_eligibility_criteria.CASES:
        ids = [r["id"] for r in resources if r["resourceType"] == "Patient"]
        body = call_body(resources, ids[0] if ids else "p1")
        as_they_are += [(f"criterion {criterion} {name}", body),
                        (f"criterion {criterion} {name} / none enrolled", _with_subjects(body, bundle()))]
    found = []
    for synthetic in population(22, size=40, detailed=False):
        found.append((f"population {synthetic.archetype.name}",
                      call_body([*synthetic.resources, *SHARED], synthetic.pid)))
    found += [("status arm B", call("patient-view")), ("status, no plan", call("patient-view", plans=()))]
    crossed = []
    for name, body in found:
        for conditions, how in CONDITIONS.items():
            changed = _with_conditions(body, how)
            crossed.append((f"{name} / {conditions}", changed))
            crossed.append((f"{name} / {conditions} / none enrolled", _with_subjects(changed, bundle())))
    return as_they_are + crossed


def test_the_patient_view_short_cut_gives_the_full_answer(config, knowledge):
    gated, full = _clients(replace(config, show_not_eligible=True), knowledge)
    differ, reasons = _compare(gated, full, _view_bodies(), knowledge)
    assert not differ, differ[:5]
    assert set(reasons) == {None, "no enrolment in any study and no multiple myeloma condition"}
    assert sum(r is not None for r in reasons) > len(reasons) // 10
