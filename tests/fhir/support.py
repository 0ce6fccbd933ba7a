"""Test doubles for the FHIR layer: a clock that only moves when told, an executor that runs inline, data."""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future
from typing import Any

from cds_service.config import Config
from cds_service.fhir.fetch import FhirGateway

BASE = "http://127.0.0.1:8123/fhir"
TOKEN = "test-access-token-1"


class FakeClock:
    """Monotonic time that moves only by sleeps and explicit advances: deadlines without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InlineExecutor(Executor):
    """Runs each task when submitted, in submission order: reads become deterministic."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the future carries it, as a pool's would
            future.set_exception(exc)
        return future


def gateway(clock: FakeClock | None = None, **settings: Any) -> FhirGateway:
    clock = clock or FakeClock()
    return FhirGateway(Config(**settings), executor=InlineExecutor(), clock=clock, sleeper=clock.sleep)


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                            "entry": [{"resource": r} for r in resources]}
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


def jbody(value: Any) -> str:
    return json.dumps(value)


PATIENT = {"resourceType": "Patient", "id": "pat-1", "gender": "female", "birthDate": "1956-03-02"}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/pat-1"},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "109989006"}]}}
MED_REQUEST = {"resourceType": "MedicationRequest", "id": "mr1", "status": "stopped", "intent": "order",
               "subject": {"reference": "Patient/pat-1"}, "medicationReference": {"reference": "Medication/dex"}}
MEDICATION = {"resourceType": "Medication", "id": "dex",
              "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "3264"}]}}
RESEARCH_SUBJECT = {"resourceType": "ResearchSubject", "id": "rs1", "status": "on-study",
                    "study": {"reference": "ResearchStudy/nct"}, "individual": {"reference": "Patient/pat-1"},
                    "assignedArm": "dexamethasone-free arm"}
RESEARCH_STUDY = {"resourceType": "ResearchStudy", "id": "nct", "status": "active",
                  "identifier": [{"value": "NCT06561854"}]}
CARE_PLAN = {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
             "subject": {"reference": "Patient/pat-1"}}
OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
               "subject": {"reference": "Patient/pat-1"}, "valueInteger": 1}
