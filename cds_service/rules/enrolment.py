"""Enrolment: is the patient on trial NCT06561854, in which arm, and on study treatment?"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.researchsubject import ResearchSubject

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.study import Arm
from cds_service.rules.dates import local_date

# FHIR R4 ResearchSubject.status, grouped by what it means for the arm rules. Follow-up comes after study
# treatment; screening statuses come before randomisation.
ON_TREATMENT = frozenset({"on-study", "on-study-intervention", "on-study-observation"})
SCREENING = frozenset({"candidate", "eligible", "pending-on-study", "potential-candidate", "screening"})
ENDED = frozenset({"off-study", "withdrawn", "ineligible", "not-registered", "follow-up"})


@dataclass(frozen=True)
class Enrolment:
    """The patient's place in the study, and the evidence and doubts behind it."""

    subject: ResearchSubject
    reference: str  # ResearchSubject/<id>, for the card's evidence
    status: str
    arm: Arm | None
    arm_text: str | None  # what the record says, as written
    arm_element: str | None  # actualArm / assignedArm
    enrolled_on: date | None
    subject_identifier: str | None
    problems: tuple[str, ...] = ()

    @property
    def phase(self) -> str:
        """on-treatment, screening or ended (an unknown status counts as on treatment: rules still fire)."""
        if self.status in SCREENING:
            return "screening"
        if self.status in ENDED:
            return "ended"
        return "on-treatment"

    @property
    def on_treatment(self) -> bool:
        return self.phase == "on-treatment"


_NCT_ID = re.compile(r"NCT\d{8}", re.IGNORECASE)


def study_of(subject: Any, record: PatientRecord) -> tuple[list[str], Any]:
    """The identifier values naming a ResearchSubject's study, and the ResearchStudy when it is readable.

    From the reference's logical identifier and the study resource (contained, prefetched or read; a
    logical reference is resolved by its identifier among the studies known to the record); when
    neither says, a reference whose id is an NCT number (`ResearchStudy/NCT06561854`, a common way to
    name studies) counts as that number. No value: the study cannot be told.
    """
    reference = getattr(subject, "study", None)
    if reference is None:
        return [], None
    identifier = getattr(reference, "identifier", None)
    if reference.reference:
        study = record.resolve(reference.reference, within=subject)
    elif identifier is not None:
        study = record.by_identifier("ResearchStudy", identifier.value, identifier.system)
    else:
        study = None
    if study is not None and study.get_resource_type() != "ResearchStudy":
        study = None
    values = [identifier.value] if identifier is not None and identifier.value else []
    values += [i.value for i in (getattr(study, "identifier", None) or []) if i.value]
    if not values and reference.reference:
        last = reference.reference.rstrip("/").rsplit("/", 1)[-1]
        values = [last] if _NCT_ID.fullmatch(last) else []
    return [v.strip() for v in values if v.strip()], study


def _study_matches(subject: ResearchSubject, record: PatientRecord, knowledge: Knowledge) -> bool | None:
    """Whether a ResearchSubject is for our study: True, False, or None when its study cannot be read."""
    values, _ = study_of(subject, record)
    if not values:
        return None
    return any(knowledge.study.is_this_study(v) for v in values)


def _arm(subject: ResearchSubject,
         knowledge: Knowledge) -> tuple[Arm | None, str | None, str | None, list[str]]:
    problems = []
    for element in ("actualArm", "assignedArm"):
        text = getattr(subject, element, None)
        if text:
            arm = knowledge.study.arm_named(text)
            if arm is None:
                problems.append(f'{element} "{text}" is not an arm of {knowledge.study.nct_id}')
            return arm, text, element, problems
    problems.append("the ResearchSubject names no arm (assignedArm / actualArm)")
    return None, None, None, problems


def _order(enrolment: Enrolment) -> tuple[int, date]:
    rank = {"on-treatment": 0, "screening": 1, "ended": 2}[enrolment.phase]
    return rank, enrolment.enrolled_on or date.min


def unreadable_subjects(record: PatientRecord) -> int:
    """How many of the patient's ResearchSubjects are not valid FHIR R4 (left out of the record): any of
    them might be this study's enrolment."""
    return sum(1 for s in record.skipped if s.resource_type == "ResearchSubject" and s.unreadable)


def unreadable_studies(record: PatientRecord, knowledge: Knowledge) -> list[str]:
    """ResearchSubjects whose study could not be read: they might be this study's."""
    return [f"ResearchSubject/{s.id}" for s in record.research_subjects
            if _study_matches(s, record, knowledge) is None]


@dataclass(frozen=True)
class EnrolmentDoubt:
    """Why the record cannot tell whether the patient is in the study: what could not be read (the words
    of a card's "could not check"), why, and the readable subjects it concerns (the evidence)."""

    missing: tuple[str, ...]
    notes: tuple[str, ...]
    evidence: tuple[str, ...]


def enrolment_doubt(record: PatientRecord, knowledge: Knowledge) -> EnrolmentDoubt | None:
    """For a record with no readable enrolment in the study: a ResearchSubject that may be it all the same
    (its study cannot be read, or it is not valid FHIR R4), or None when there is none."""
    doubtful = unreadable_studies(record, knowledge)
    broken = unreadable_subjects(record)
    if not doubtful and not broken:
        return None
    nct = knowledge.study.nct_id
    missing, notes = [], []
    if doubtful:
        missing.append("the study of a trial enrolment could not be read")
        # The references stay in the note (its evidence); a card's words drop them, so the sentence reads
        # without them ("the study named by a trial enrolment could not be read").
        named = "the study named by a trial enrolment" if len(doubtful) == 1 else \
            f"the studies named by {len(doubtful)} trial enrolments"
        notes.append(f"{named} ({', '.join(doubtful)}) could not be read: it may be {nct}")
    if broken:
        missing.append("a trial enrolment could not be read")
        notes.append(f"{broken} ResearchSubject{'s' if broken > 1 else ''} of the patient "
                     f"{'are' if broken > 1 else 'is'} not valid FHIR R4: it may be the enrolment in {nct}")
    return EnrolmentDoubt(tuple(missing), tuple(notes), tuple(doubtful))


def enrolment(record: PatientRecord, knowledge: Knowledge, zone: ZoneInfo) -> Enrolment | None:
    """The patient's enrolment in the study, or None when no ResearchSubject is for it.

    With several (a re-consent, a data error), the one on treatment wins, then the most recent.
    """
    found = []
    for subject in record.research_subjects:
        if not _study_matches(subject, record, knowledge):
            continue
        arm, text, element, problems = _arm(subject, knowledge)
        values = [i.value.strip() for i in subject.identifier or [] if i.value and i.value.strip()]
        found.append(Enrolment(
            subject=subject, reference=f"ResearchSubject/{subject.id}", status=subject.status, arm=arm,
            arm_text=text, arm_element=element,
            enrolled_on=local_date(subject.period.start, zone) if subject.period else None,
            subject_identifier=values[0] if values else None, problems=tuple(problems)))
    if not found:
        return None
    found.sort(key=lambda e: (_order(e)[0], -_order(e)[1].toordinal()))
    best = found[0]
    others = [e for e in found[1:] if e.on_treatment and e.arm != best.arm]
    if best.on_treatment and others:
        # Two live enrolments in different arms: neither can be trusted.
        doubt = (f"two ResearchSubjects on study treatment name different arms ({best.reference}, "
                 f"{others[0].reference})")
        return replace(best, arm=None, problems=(*best.problems, doubt))
    return best
