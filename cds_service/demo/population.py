"""The demo population for one day: trial patients at chosen cycle days, and patients off the trial."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds_service.demo.codes import concept, first
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import Regimen
from cds_service.knowledge.study import Arm

PREFIX = "dexfree-demo"
STUDY_ID = f"{PREFIX}-study"
SUBJECT_SYSTEM = "urn:dexfree:demo:study-subject"
DEMO_TAG = {"system": "urn:dexfree:demo", "code": "demo",
            "display": "Dex-Free CDS demo patient, not a real person"}
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DEFAULT_AGE = 64
FIRST_TRIAL_CYCLES = 4  # the issue asks for cycles 1 to 4 in each arm and regimen


@dataclass(frozen=True)
class DemoPatient:
    """One demo patient: id, how the picker names them, what the preview shows, and their resources."""

    id: str
    label: str
    group: str
    shows: str
    resources: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Population:
    """Every demo patient for `today`, and the ResearchStudy the trial patients are enrolled in."""

    today: date
    study: dict[str, Any]
    patients: tuple[DemoPatient, ...]

    def resources(self) -> Iterator[dict[str, Any]]:
        yield self.study
        for patient in self.patients:
            yield from patient.resources

    def patient(self, patient_id: str) -> DemoPatient | None:
        return next((p for p in self.patients if p.id == patient_id), None)


def born(today: date, age: int) -> str:
    """A birth date making the patient `age` years old today (their birthday 100 days ago)."""
    birthday = today - timedelta(days=100)
    try:
        return birthday.replace(year=birthday.year - age).isoformat()
    except ValueError:  # 29 February in a year without one
        return birthday.replace(year=birthday.year - age, day=28).isoformat()


class _Builder:
    """Builds one patient's resources with stable ids and the knowledge's codes."""

    def __init__(self, knowledge: Knowledge, today: date, key: str) -> None:
        self.knowledge, self.today, self.pid = knowledge, today, f"{PREFIX}-{key}"
        self.resources: list[dict[str, Any]] = []

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def day(self, days_ago: int) -> str:
        return (self.today - timedelta(days=days_ago)).isoformat()

    def add(self, kind: str, suffix: str, **fields: Any) -> dict[str, Any]:
        resource = {"resourceType": kind, "id": f"{self.pid}-{suffix}" if suffix else self.pid, **fields}
        self.resources.append(resource)
        return resource

    def patient(self, label: str, age: int, gender: str) -> None:
        self.add("Patient", "", active=True, gender=gender, birthDate=born(self.today, age),
                 name=[{"use": "official", "family": "Demo", "given": [label], "text": f"{label} (demo)"}],
                 meta={"tag": [dict(DEMO_TAG)]})

    def condition(self, suffix: str, coding: dict[str, str], onset_days_ago: int,
                  clinical: str = "active") -> None:
        self.add("Condition", suffix, subject=self.subject, code=concept(coding),
                 clinicalStatus={"coding": [{"system": CLINICAL, "code": clinical}]},
                 verificationStatus={"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
                 onsetDateTime=self.day(onset_days_ago))

    def myeloma_in_relapse(self) -> None:
        self.condition("myeloma", first(self.knowledge, "multiple-myeloma-relapse"), onset_days_ago=6 * 365)

    def enrolment(self, arm: Arm, enrolled_days_ago: int) -> None:
        study = self.knowledge.study
        subject_id = self.pid.removeprefix(PREFIX + "-").upper()
        self.add("ResearchSubject", "enrolment", status="on-study",
                 identifier=[{"system": SUBJECT_SYSTEM, "value": subject_id}],
                 period={"start": self.day(enrolled_days_ago)},
                 study={"reference": f"ResearchStudy/{STUDY_ID}",
                        "identifier": {"system": _nct_system(self.knowledge), "value": study.nct_id}},
                 individual=self.subject, assignedArm=arm.name, actualArm=arm.name)

    def regimen_plan(self, regimen: Regimen, c1d1_days_ago: int) -> None:
        self.add("CarePlan", "regimen", status="active", intent="plan", subject=self.subject,
                 instantiatesCanonical=[regimen.url], title=regimen.title,
                 period={"start": self.day(c1d1_days_ago)})

    def medication(self, kind: str, valueset: str, *, start_days_ago: int, days: int, status: str) -> None:
        suffix = f"line1-{valueset}"
        period = {"start": self.day(start_days_ago), "end": self.day(start_days_ago - days + 1)}
        drug = concept(first(self.knowledge, valueset))
        if kind == "MedicationStatement":
            self.add(kind, suffix, status=status, medicationCodeableConcept=drug, subject=self.subject,
                     effectivePeriod=period)
        else:
            self.add(kind, suffix, status=status, intent="order", medicationCodeableConcept=drug,
                     subject=self.subject, authoredOn=period["start"],
                     dosageInstruction=[{"timing": {"repeat": {"boundsPeriod": period}}}])

    def observation(self, suffix: str, code: dict[str, str], days_ago: int, **value: Any) -> None:
        self.add("Observation", suffix, status="final", code=concept(code), subject=self.subject,
                 effectiveDateTime=self.day(days_ago), **value)

    def done(self, label: str, group: str, shows: str) -> DemoPatient:
        return DemoPatient(id=self.pid, label=label, group=group, shows=shows,
                           resources=tuple(self.resources))


def _nct_system(knowledge: Knowledge) -> str:
    published = knowledge.artifacts.by_url.get(knowledge.study.url) or {}
    return next((i["system"] for i in published.get("identifier") or []
                 if i.get("system") and str(i.get("value", "")).upper() == knowledge.study.nct_id),
                "https://clinicaltrials.gov")


def _study(knowledge: Knowledge) -> dict[str, Any]:
    study = knowledge.study
    return {"resourceType": "ResearchStudy", "id": STUDY_ID, "status": "active", "title": study.title,
            "identifier": [{"system": _nct_system(knowledge), "value": study.nct_id}],
            "arm": [{"name": arm.name, "description": arm.description} for arm in study.arms]}


def _trial_day(regimen: Regimen, arm_a: Regimen, cycle: int) -> tuple[int, str]:
    """The day of `cycle` a demo patient is on today, and why that day is worth showing."""
    if cycle == 1:
        isatuximab = regimen.block(1).drug("isatuximab")
        return isatuximab.days[1], "an isatuximab infusion day"
    if cycle == 2:
        return regimen.block(2).length_days, "the last day of cycle 2"
    if cycle == 3:
        return 1, "the first day of cycle 3, an isatuximab infusion day"
    # A day arm A gives dexamethasone without an infusion: arm A's order is then exactly the regimen's.
    block = arm_a.block(cycle)
    infusions = set(block.drug("isatuximab").days)
    return next(d for d in block.drug("dexamethasone").days if d not in infusions), "no infusion today"


def _trial_shows(arm: Arm, regimen: Regimen, cycle: int, day: int, age: int) -> str:
    status = f"patient-view: trial status (arm {arm.key}, {regimen.key}, cycle {cycle} day {day})"
    dex = regimen.block(cycle).drug("dexamethasone")
    if dex is None:
        return f"{status}; any systemic dexamethasone order today: warning dex-after-cycle-2"
    dose = dex.dose_for_age(age).describe()
    if day in dex.days:
        return f"{status}; dexamethasone {dose} today: no card"
    shown = f"{status}; dexamethasone {dose} today, one dose: info dex-dose-mismatch (not a dosing day)"
    stops = regimen.first_cycle_without("dexamethasone")
    if stops == cycle + 1 and day == regimen.block(cycle).length_days:
        shown += f"; two doses or more: warning dex-extends-past-cycle-2 (they reach cycle {stops})"
    return shown


def _trial_patient(knowledge: Knowledge, today: date, arm: Arm, regimen: Regimen, *, cycle: int,
                   number: int) -> DemoPatient:
    arm_a = knowledge.regimen(regimen.key, "A") or regimen
    day, why = _trial_day(regimen, arm_a, cycle)
    c1d1_days_ago = regimen.cycle_start(cycle) + day - 1
    key = f"{arm.key}-{regimen.key}-c{cycle}".lower()
    label = f"Arm {arm.key} {regimen.key} C{cycle}D{day}"
    age = DEFAULT_AGE - number
    build = _Builder(knowledge, today, key)
    build.patient(label, age, "female" if number % 2 == 0 else "male")
    build.myeloma_in_relapse()
    build.enrolment(arm, c1d1_days_ago + 7)
    build.regimen_plan(regimen, c1d1_days_ago)
    return build.done(f"{label}: {regimen.key}, {arm.label()}, cycle {cycle} day {day} ({why})",
                      f"On study: arm {arm.key}", _trial_shows(arm, regimen, cycle, day, age))


def _aged_patient(knowledge: Knowledge, today: date) -> DemoPatient | None:
    """An arm A patient old enough for the regimen's reduced dexamethasone dose, if a regimen has one."""
    for regimen in knowledge.regimens:
        block = regimen.block(2)
        dex = block.drug("dexamethasone") if block else None
        older = [o for o in (dex.options if dex else ()) if o.age_low is not None]
        if regimen.arm != "A" or not older:
            continue
        option = older[0]
        infusions = set(block.drug("isatuximab").days)
        day = next(d for d in dex.days if d in infusions and d > 1)
        c1d1_days_ago = regimen.cycle_start(2) + day - 1
        label = f"Arm A {regimen.key} aged {option.age_low + 3}"
        build = _Builder(knowledge, today, f"a-{regimen.key.lower()}-aged")
        build.patient(label, option.age_low + 3, "female")
        build.myeloma_in_relapse()
        build.enrolment(knowledge.study.arm("A"), c1d1_days_ago + 7)
        build.regimen_plan(regimen, c1d1_days_ago)
        others = ", ".join(o.describe() for o in dex.options if o is not option)
        return build.done(
            f"{label}: {regimen.key}, arm A, cycle 2 day {day}, aged {option.age_low} or more",
            "On study: arm A",
            f"patient-view: trial status with the {option.describe()} dose of patients aged {option.age_low} "
            f"or more; an order of {others}: info dex-dose-mismatch naming {option.describe()}")
    return None


def _previous_line(build: _Builder, cycle_days: int, kind: str = "MedicationStatement") -> None:
    """One earlier line (bortezomib, lenalidomide, dexamethasone) of six cycles, ended months ago."""
    start = 470
    for drug in ("bortezomib", "lenalidomide", "dexamethasone"):
        build.medication(kind, drug, start_days_ago=start, days=6 * cycle_days, status="completed")


def _candidate(knowledge: Knowledge, today: date, cycle_days: int) -> DemoPatient:
    build = _Builder(knowledge, today, "candidate")
    build.patient("Eligibility candidate", 66, "female")
    build.myeloma_in_relapse()
    _previous_line(build, cycle_days)
    build.observation("response", first(knowledge, "response-observation"), 470 - 4 * cycle_days,
                      valueCodeableConcept=concept(first(knowledge, "response-pr-or-better")))
    build.observation("ecog", first(knowledge, "ecog"), 10, valueInteger=1)
    return build.done("Eligibility candidate: myeloma in relapse after one line, not on study",
                      "Not on study",
                      "patient-view: the eligibility card (info, rule eligibility: may be eligible, the "
                      "criteria only a person can judge need review); dexamethasone orders: no card")


def _not_eligible(knowledge: Knowledge, today: date, cycle_days: int) -> DemoPatient:
    build = _Builder(knowledge, today, "not-eligible")
    build.patient("Not eligible", 70, "male")
    build.myeloma_in_relapse()
    build.condition("hiv", first(knowledge, "hiv"), onset_days_ago=12 * 365)
    _previous_line(build, cycle_days)
    build.observation("ecog", first(knowledge, "ecog"), 10, valueInteger=1)
    return build.done("Not eligible: myeloma in relapse and HIV (exclusion E13)", "Not on study",
                      "patient-view: no card (decisively not eligible; CDS_SHOW_NOT_ELIGIBLE=true shows "
                      "it); dexamethasone orders: no card")


def _outside_study(knowledge: Knowledge, today: date) -> DemoPatient:
    build = _Builder(knowledge, today, "outside-study")
    build.patient("Myeloma off trial", 58, "male")
    build.condition("myeloma", first(knowledge, "multiple-myeloma", outside="multiple-myeloma-relapse"),
                    onset_days_ago=40)
    for drug in ("bortezomib", "lenalidomide", "dexamethasone"):
        build.medication("MedicationRequest", drug, start_days_ago=21, days=180, status="active")
    return build.done("Myeloma off trial: newly diagnosed, first-line treatment with dexamethasone",
                      "Not on study",
                      "dexamethasone orders: no card (not in the study); patient-view: the eligibility "
                      "card (info, rule eligibility), relapse and prior lines to review")


def _cycle_unknown(knowledge: Knowledge, today: date) -> DemoPatient:
    arm = knowledge.study.arm("B")
    build = _Builder(knowledge, today, "b-cycle-unknown")
    build.patient("Arm B cycle unknown", 61, "female")
    build.myeloma_in_relapse()
    build.enrolment(arm, 30)
    return build.done("Arm B, cycle unknown: enrolled, no regimen CarePlan and no isatuximab on record",
                      "On study: arm B",
                      "dexamethasone orders: info cannot-verify saying the cycle cannot be told (no regimen "
                      "CarePlan, no isatuximab); patient-view: trial status saying what is missing")


def build_population(knowledge: Knowledge, today: date) -> Population:
    """The demo population as it stands on `today` (every date is relative to it)."""
    patients = []
    number = 0
    for arm in sorted(knowledge.study.arms, key=lambda a: a.key, reverse=True):
        for key in arm.regimens:
            regimen = knowledge.regimen(key, arm.key)
            for cycle in range(1, FIRST_TRIAL_CYCLES + 1):
                patients.append(_trial_patient(knowledge, today, arm, regimen, cycle=cycle, number=number))
                number += 1
    aged = _aged_patient(knowledge, today)
    cycle_days = knowledge.regimens[0].block(1).length_days
    others = (aged, _cycle_unknown(knowledge, today), _candidate(knowledge, today, cycle_days),
              _not_eligible(knowledge, today, cycle_days), _outside_study(knowledge, today))
    patients += [p for p in others if p is not None]
    return Population(today=today, study=_study(knowledge), patients=tuple(patients))
