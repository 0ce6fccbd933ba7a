"""A synthetic export for trial monitoring with known truth (fixed seed), for the tests and the benchmark.

Each archetype's expected findings are written here by hand, from the scenario — not computed by the rules.
Trial patients get a regimen CarePlan, isatuximab on its days (cycle 1: days 1, 8, 15, 22; later: 1, 15),
the stratum drug and the dexamethasone of their arm; every patient gets the screening generator's filler
(labs, supportive drugs, encounters, other conditions) up to about `size` resources. Today is 2026-11-24.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tests.fixtures.eligibility.builders import RXNORM, TODAY, condition
from tests.fixtures.eligibility.population import SHARED as SCREEN_SHARED
from tests.fixtures.eligibility.population import Patient, Synthetic, _filler, write_ndjson

BASE = "https://dexfree.example.org/fhir"
ATC = "http://www.whocc.no/atc"
SCT = "http://snomed.info/sct"
SITE_URL = "https://dexfree.example.org/fhir/StructureDefinition/site"
DEX = {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}], "text": "dexamethasone"}
ISATUXIMAB = {"coding": [{"system": ATC, "code": "L01FC02", "display": "isatuximab"}]}
STRATUM = {"ICARIA": {"coding": [{"system": ATC, "code": "L04AX06", "display": "pomalidomide"}]},
           "IKEMA": {"coding": [{"system": RXNORM, "code": "1302966", "display": "carfilzomib"}]}}
ORAL = {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}]}
DEX_DAYS = {"ICARIA": (1, 8, 15, 22), "IKEMA": (1, 2, 8, 9, 15, 16, 22, 23)}
DEX_MG = {"ICARIA": 40, "IKEMA": 20}
ARM_NAMES = {"A": "dexamethasone arm", "B": "dexamethasone-free arm"}
SITES = ("Hôpital Saint-Louis", "CHU de Lille")
STUDY = {"resourceType": "ResearchStudy", "id": "nct06561854", "status": "active",
         "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT06561854"}]}
SHARED = (*SCREEN_SHARED, STUDY)
ARM_B, ARM_A, DOSE, CANNOT = "arm-b-dex-after-cycle-2", "arm-a-cycle-without-dex", "dose-differs", "cannot-verify"


def on(c1d1: date, cycle: int, day: int) -> date:
    return c1d1 + timedelta(days=(cycle - 1) * 28 + day - 1)


@dataclass
class Trial:
    """One trial patient being built: arm, regimen, cycle 1 day 1 and the resources so far."""

    p: Patient
    arm: str
    regimen: str
    c1d1: date
    subject: str
    age: int = 64

    @property
    def pid(self) -> str:
        return self.p.pid

    def ref(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def enrol(self, *, plan: bool = True, site: str | None = None, status: str = "on-study",
              study: str = "ResearchStudy/nct06561854") -> None:
        birth = TODAY.replace(year=TODAY.year - self.age) - timedelta(days=100)
        self.p.add({"resourceType": "Patient", "id": self.pid, "birthDate": birth.isoformat(), "gender": "female"})
        self.p.add(condition("C90.02", rid=self.p.rid("mm"), pid=self.pid, onset="2020-01-01"))
        subject = {"resourceType": "ResearchSubject", "id": self.p.rid("subject"), "status": status,
                   "identifier": [{"system": "urn:aphp:dexfree:subject", "value": self.subject}],
                   "study": {"reference": study}, "individual": self.ref(),
                   "period": {"start": (self.c1d1 - timedelta(days=7)).isoformat()},
                   "actualArm": ARM_NAMES[self.arm]}
        if site:
            subject["extension"] = [{"url": SITE_URL, "valueReference": {"display": site}}]
        self.p.add(subject)
        if plan:
            self.p.add({"resourceType": "CarePlan", "id": self.p.rid("plan"), "status": "active", "intent": "plan",
                        "subject": self.ref(), "period": {"start": self.c1d1.isoformat()},
                        "instantiatesCanonical": [f"{BASE}/PlanDefinition/{self.regimen.lower()}-arm-"
                                                  f"{self.arm.lower()}"]})

    def administer(self, concept: dict[str, Any], day: date, dose: float | None = None) -> None:
        resource = {"resourceType": "MedicationAdministration", "id": self.p.rid("given"), "status": "completed",
                    "medicationCodeableConcept": concept, "subject": self.ref(), "effectiveDateTime": day.isoformat()}
        if dose is not None:
            resource["dosage"] = {"route": ORAL, "dose": {"value": dose, "unit": "mg",
                                                          "system": "http://unitsofmeasure.org", "code": "mg"}}
        self.p.add(resource)

    def cycles(self, upto: int, *, dex_cycles: tuple[int, ...] = (), dose: float | None = None) -> None:
        """Isatuximab and the stratum drug for cycles 1..upto (not after today); dexamethasone in `dex_cycles`."""
        for cycle in range(1, upto + 1):
            for day in (1, 8, 15, 22) if cycle == 1 else (1, 15):
                if on(self.c1d1, cycle, day) <= TODAY:
                    self.administer(ISATUXIMAB, on(self.c1d1, cycle, day), 10)
            start = on(self.c1d1, cycle, 1)
            if start <= TODAY:
                self.p.add({"resourceType": "MedicationRequest", "id": self.p.rid("stratum"),
                            "status": "completed", "intent": "order", "subject": self.ref(),
                            "medicationCodeableConcept": STRATUM[self.regimen], "authoredOn": start.isoformat(),
                            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {
                                "start": start.isoformat(),
                                "end": (start + timedelta(days=20)).isoformat()}}}}]})
            if cycle in dex_cycles:
                for day in DEX_DAYS[self.regimen]:
                    if on(self.c1d1, cycle, day) <= TODAY:
                        self.administer(DEX, on(self.c1d1, cycle, day), dose or self.dex_mg)

    @property
    def dex_mg(self) -> float:
        return 20 if self.regimen == "ICARIA" and self.age >= 75 else DEX_MG[self.regimen]

    def dispense(self, day: date, days_supply: int) -> None:
        self.p.add({"resourceType": "MedicationDispense", "id": self.p.rid("dispense"), "status": "completed",
                    "medicationCodeableConcept": DEX, "subject": self.ref(), "whenHandedOver": day.isoformat(),
                    "daysSupply": {"value": days_supply, "unit": "d", "system": "http://unitsofmeasure.org",
                                   "code": "d"},
                    "dosageInstruction": [{"route": ORAL, "doseAndRate": [{"doseQuantity": {"value": self.dex_mg,
                                                                                           "unit": "mg"}}]}]})


def _c1d1(cycle: int, day: int) -> date:
    """The cycle 1 day 1 that makes today cycle `cycle` day `day`."""
    return TODAY - timedelta(days=(cycle - 1) * 28 + day - 1)


Expected = tuple[tuple[str, int | None, int | None], ...]  # (code, cycle, cycle day)


@dataclass(frozen=True)
class Archetype:
    name: str
    build: Callable[[Patient, str], None]
    expected: Expected | None  # None: not monitored (not in the study, or only screened)
    arm: str | None = None
    site: str | None = None


def _trial(arm: str, regimen: str, *, cycle: int, day: int, dex: tuple[int, ...], age: int = 64,
           site: str | None = None, extra: Callable[[Trial], None] | None = None) -> Callable[[Patient, str], None]:
    def build(p: Patient, subject: str) -> None:
        trial = Trial(p, arm, regimen, _c1d1(cycle, day), subject, age)
        trial.enrol(site=site)
        trial.cycles(cycle, dex_cycles=dex)
        if extra:
            extra(trial)
    return build


def _given_c3d1(trial: Trial) -> None:
    trial.administer(DEX, on(trial.c1d1, 3, 1), trial.dex_mg)


def _dispense_into_c3(trial: Trial) -> None:
    trial.dispense(on(trial.c1d1, 2, 10), 30)


def _cycle_unknown(p: Patient, subject: str) -> None:
    trial = Trial(p, "B", "ICARIA", _c1d1(4, 1), subject)
    trial.enrol(plan=False)
    trial.administer(DEX, TODAY - timedelta(days=5), 40)


def _not_in_study(p: Patient, subject: str) -> None:
    p.one_line()  # myeloma with an earlier line including dexamethasone


def _other_study(p: Patient, subject: str) -> None:
    trial = Trial(p, "B", "ICARIA", _c1d1(4, 1), subject)
    trial.enrol(study="ResearchStudy/other-trial")
    trial.cycles(4, dex_cycles=(1, 2, 3, 4))


def _screening(p: Patient, subject: str) -> None:
    trial = Trial(p, "B", "ICARIA", _c1d1(4, 1), subject)
    trial.enrol(status="candidate", plan=False)


ARCHETYPES = (
    Archetype("b-given-c3d1", _trial("B", "ICARIA", cycle=4, day=1, dex=(1, 2), site=SITES[0],
                                     extra=_given_c3d1), ((ARM_B, 3, 1),), "B", SITES[0]),
    Archetype("b-dispensed-into-c3", _trial("B", "IKEMA", cycle=3, day=20, dex=(1,), site=SITES[1],
                                            extra=_dispense_into_c3), ((ARM_B, 3, 1),), "B", SITES[1]),
    Archetype("a-missing-cycle-3", _trial("A", "ICARIA", cycle=5, day=4, dex=(1, 2, 4, 5), site=SITES[0]),
              ((ARM_A, 3, None),), "A", SITES[0]),
    Archetype("a-icaria", _trial("A", "ICARIA", cycle=4, day=10, dex=(1, 2, 3, 4), site=SITES[1]), (), "A",
              SITES[1]),
    Archetype("a-ikema", _trial("A", "IKEMA", cycle=3, day=5, dex=(1, 2, 3)), (), "A"),
    Archetype("a-icaria-aged", _trial("A", "ICARIA", cycle=2, day=20, dex=(1, 2), age=78), (), "A"),
    Archetype("b-icaria", _trial("B", "ICARIA", cycle=5, day=2, dex=(1, 2), site=SITES[0]), (), "B", SITES[0]),
    Archetype("b-ikema", _trial("B", "IKEMA", cycle=3, day=12, dex=(1, 2)), (), "B"),
    Archetype("b-cycle-unknown", _cycle_unknown, ((CANNOT, None, None),), "B"),
    Archetype("not-in-study", _not_in_study, None),
    Archetype("other-study", _other_study, None),
    Archetype("screening", _screening, None),
)


@dataclass(frozen=True)
class Monitored(Synthetic):
    subject: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def population(count: int, seed: int = 7, size: int = 100) -> Iterator[Monitored]:
    """`count` patients cycling through every archetype (shuffled with the seed), about `size` resources each."""
    rng = random.Random(seed)
    order_of = [ARCHETYPES[i % len(ARCHETYPES)] for i in range(count)]
    rng.shuffle(order_of)
    for index, archetype in enumerate(order_of):
        p = Patient(f"mp{index:05d}", random.Random(rng.random()), detailed=False)
        subject = f"DXF-{index:05d}"
        archetype.build(p, subject)
        _filler(p, size)
        yield Monitored(p.pid, archetype, p.resources, subject)


__all__ = ["ARCHETYPES", "SHARED", "Archetype", "Monitored", "population", "write_export"]


def write_export(folder: Any, patients: Iterator[Monitored]) -> int:
    """A Bulk FHIR NDJSON export of the patients and the shared resources (this study's ResearchStudy too)."""
    import json

    count = write_ndjson(folder, patients)
    with (folder / "ResearchStudy.ndjson").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(STUDY) + "\n")
    return count
