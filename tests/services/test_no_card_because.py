"""The order hooks' short cut (`no_card_because`) answers exactly what the full evaluation answers.

Every request of the order scenario table and of the order shapes table, and each of those orders again
under every way a record can say the patient is or is not enrolled (none, another study, a study that
cannot be read, another patient's enrolment, a paged or unreadable part, no part at all), and every way
a draft can name another drug, goes through the service twice: as deployed, and with the short cut
turned off. Status and cards must be the same, with one exception by design: where the short cut
answers, the full evaluation gives no card either, or a 412 for a part that no longer matters (a
non-dexamethasone order needs no enrolment, a patient in no study no care plan): no card can come of
that part whatever it holds, and an EHR told 412 would only retry or show an error.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.fhir.assemble import draft_record
from cds_service.hooks.registry import Registry
from cds_service.hooks.request import parse_hook_request
from cds_service.runtime import Runtime
from cds_service.services import default_registry
from cds_service.services.order_hooks import no_card_because
from tests.conftest import FIXED_NOW
from tests.rules import test_order_shapes as shapes
from tests.rules.scenario import RXNORM, bundle, call, day_of, dex_order, research_study, research_subject
from tests.services.test_order_hooks import SCENARIOS

SERVICES = {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select"}


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
        for hook in SERVICES:
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
    return no_card_because(request, draft_record(request), knowledge)


def test_the_short_cut_gives_the_full_answer(config, knowledge):
    gated, full = _clients(config, knowledge)
    differ, reasons = [], []
    for name, body in BODIES:
        quick, slow, reason = _answer(gated, body), _answer(full, body), _reason(body, knowledge)
        reasons.append(reason)
        if reason is None and quick != slow:
            differ.append((name, "not decided early, yet answered otherwise", quick, slow))
        if reason is not None and (quick != (200, []) or slow not in ((200, []), (412, "incomplete"))):
            differ.append((name, reason, quick, slow))
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
