"""What the eligibility criteria read from a PatientRecord: coded conditions, observations, drugs, dates.

`Facts` wraps one record with the knowledge, the day of the assessment and the settings, and computes each
derived view once (conditions in a value set, the therapy history) so the 23 criteria can share them.
Everything here is a pure function of the record: no I/O, no clock.

The status codes compared here (Condition.clinicalStatus, verificationStatus, Observation.status, …) are the
FHIR specification's own required codes, not clinical terminology: clinical codes come from the value sets.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property, lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from cds_service.config import Config
from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.dates import local_date

T = TypeVar("T")

CLINICAL_ACTIVE = frozenset({"active", "recurrence", "relapse"})
CLINICAL_INACTIVE = frozenset({"inactive", "remission", "resolved"})
# A condition "entered in error" or "refuted" was never there.
VERIFICATION_VOID = frozenset({"entered-in-error", "refuted"})
VERIFICATION_UNSURE = frozenset({"unconfirmed", "provisional", "differential"})
OBSERVATION_DONE = frozenset({"final", "amended", "corrected"})
PROCEDURE_DONE = frozenset({"completed", "in-progress", "unknown"})
PROCEDURE_PLANNED = frozenset({"preparation"})

# The value sets the criteria read each record part with. Bulk screening keeps only the resources matching
# one of them (cds_service/screen/relevance.py): a criterion that reads a new value set adds it here.
CONDITION_SETS = (
    "multiple-myeloma", "multiple-myeloma-relapse", "other-malignancy", "meningeal-involvement",
    "plasma-cell-leukaemia", "waldenstrom", "poems", "amyloidosis", "copd", "cardiac-disease", "hepatitis-b",
    "hepatitis-c", "hiv", "lactation", "pregnancy", "hct-unspecified",
)
OBSERVATION_SETS = ("ecog", "response-observation", "breastfeeding-status", "pregnancy-status")
PROCEDURE_SETS = ("allogeneic-hct", "hct-unspecified")
MEDICATION_SET = "myeloma-therapy"
# mCODE cancer conditions are often coded in SNOMED CT only, outside the ICD-10 value set of other
# malignancies: a condition claiming one of these profiles is a cancer whatever its code says.
CANCER_PROFILES = ("mcode-primary-cancer-condition", "mcode-secondary-cancer-condition")


def cancer_profile(resource: Any) -> bool:
    """Whether a Condition (model or raw) claims an mCODE cancer condition profile."""
    meta = resource.get("meta") if isinstance(resource, dict) else getattr(resource, "meta", None)
    profiles = (meta.get("profile") if isinstance(meta, dict) else getattr(meta, "profile", None)) or []
    return any(str(p).partition("|")[0].rstrip("/").rsplit("/", 1)[-1] in CANCER_PROFILES for p in profiles)


@dataclass(frozen=True)
class Options:
    """The settings the criteria depend on (from the service's configuration)."""

    ecog_window_days: int
    zone: ZoneInfo

    @classmethod
    def from_config(cls, config: Config) -> Options:
        return cls(ecog_window_days=config.ecog_window_days, zone=ZoneInfo(config.timezone))


@lru_cache(maxsize=1)
def default_options() -> Options:
    """The options of the default configuration (tests and callers without a configuration)."""
    return Options.from_config(Config())


def ref(resource: Any) -> str:
    """A resource's `Type/id` (what a card's evidence lists)."""
    return f"{resource.get_resource_type()}/{resource.id}" if getattr(resource, "id", None) else \
        f"{resource.get_resource_type()}/(no id)"


def codes_of(concept: Any) -> set[str]:
    return {c.code for c in getattr(concept, "coding", None) or [] if getattr(c, "code", None)}


def first_code(concept: Any) -> str | None:
    return next(iter(sorted(codes_of(concept))), None)


def concept_label(concept: Any) -> str:
    """How a coded concept is named on a card: its code (the display may be long) or its text."""
    for coding in getattr(concept, "coding", None) or []:
        if coding.code:
            return str(coding.code).strip()
    return (getattr(concept, "text", None) or "uncoded").strip()


def date_bounds(value: Any, zone: ZoneInfo) -> tuple[date, date] | None:
    """The first and last calendar day a FHIR date/dateTime may mean (a year-only date spans the year)."""
    if isinstance(value, datetime | date):
        day = local_date(value, zone)
        return (day, day) if day else None
    if isinstance(value, str):
        day = local_date(value, zone)
        if day:
            return day, day
        parts = value.split("-")
        try:
            year = int(parts[0])
            if len(parts) == 1:
                return date(year, 1, 1), date(year, 12, 31)
            month = int(parts[1])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        except (ValueError, IndexError):
            return None
    return None


def clinical_status(condition: Any) -> str | None:
    return first_code(getattr(condition, "clinicalStatus", None))


def verification(condition: Any) -> str | None:
    return first_code(getattr(condition, "verificationStatus", None))


def activity(condition: Any) -> str | None:
    """"active", "inactive", or None when the condition says nothing (e.g. an encounter diagnosis)."""
    status = clinical_status(condition)
    if status in CLINICAL_ACTIVE:
        return "active"
    if status in CLINICAL_INACTIVE:
        return "inactive"
    return None


def unsure(condition: Any) -> bool:
    """Recorded but not confirmed (unconfirmed, provisional, differential)."""
    return verification(condition) in VERIFICATION_UNSURE


def condition_day(condition: Any, zone: ZoneInfo) -> tuple[tuple[date, date] | None, str]:
    """When a condition was last known present: abatement, else onset, else recorded date (and which)."""
    period = getattr(condition, "abatementPeriod", None)
    for value, what in ((getattr(condition, "abatementDateTime", None), "ended"),
                        (period.end if period else None, "ended")):
        bounds = date_bounds(value, zone)
        if bounds:
            return bounds, what
    onset = getattr(condition, "onsetPeriod", None)
    for value, what in ((getattr(condition, "onsetDateTime", None), "onset"),
                        (onset.end if onset else None, "onset"), (onset.start if onset else None, "onset"),
                        (getattr(condition, "recordedDate", None), "recorded")):
        bounds = date_bounds(value, zone)
        if bounds:
            return bounds, what
    return None, ""


def observation_day(observation: Any, zone: ZoneInfo) -> date | None:
    period = getattr(observation, "effectivePeriod", None)
    for value in (getattr(observation, "effectiveDateTime", None),
                  getattr(observation, "effectiveInstant", None), period.end if period else None,
                  period.start if period else None, getattr(observation, "issued", None)):
        day = local_date(value, zone)
        if day:
            return day
    return None


def procedure_day(procedure: Any, zone: ZoneInfo) -> date | None:
    period = getattr(procedure, "performedPeriod", None)
    for value in (getattr(procedure, "performedDateTime", None), period.start if period else None):
        day = local_date(value, zone)
        if day:
            return day
    return None


def routes(resource: Any) -> list[Any]:
    """The route concepts of a medication resource's dosage(s)."""
    dosage = getattr(resource, "dosage", None)
    dosages = getattr(resource, "dosageInstruction", None) or (
        dosage if isinstance(dosage, list) else [dosage] if dosage is not None else [])
    return [d.route for d in dosages if getattr(d, "route", None) is not None]


def concept_key(concept: Any) -> tuple[Any, ...] | None:
    """A hashable identity of a CodeableConcept (model or dict): its text and codings."""
    if concept is None:
        return None
    get = concept.get if isinstance(concept, dict) else lambda key: getattr(concept, key, None)
    codings = []
    for coding in get("coding") or ():
        value = coding.get if isinstance(coding, dict) else lambda key, c=coding: getattr(c, key, None)
        codings.append((value("system"), value("code"), value("display")))
    return get("text"), tuple(codings)


class Matcher:
    """Value-set membership of concepts, remembered per concept: a clinic's data repeats a few codes many
    times, and matching (code normalisation, filters, names) is the costly part of reading a record."""

    _LIMIT = 20_000  # distinct (value set, concept) pairs remembered before starting afresh

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self._seen: dict[tuple[str, Any], bool] = {}

    def matches(self, key: str, concept: Any, identity: tuple[Any, ...] | None = None) -> bool:
        """Whether a concept is in the value set `key` (pass its `concept_key` if already known)."""
        identity = identity or concept_key(concept)
        if identity is None:
            return False
        found = self._seen.get((key, identity))
        if found is None:
            if len(self._seen) >= self._LIMIT:
                self._seen.clear()
            found = self._seen[(key, identity)] = self.knowledge.codes(key).match_concept(concept) is not None
        return found


_MATCHERS: dict[int, Matcher] = {}


def matcher(knowledge: Knowledge) -> Matcher:
    """The Matcher of a Knowledge (one per loaded knowledge, kept for the process)."""
    found = _MATCHERS.get(id(knowledge))
    if found is None or found.knowledge is not knowledge:
        found = _MATCHERS[id(knowledge)] = Matcher(knowledge)
    return found


class Facts:
    """One record, read for eligibility on one day; derived views are computed once and shared."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge, today: date,
                 options: Options | None = None) -> None:
        self.record = record
        self.knowledge = knowledge
        self.today = today
        self.options = options or default_options()
        self._conditions: dict[str, tuple[Any, ...]] = {}
        self._observations: dict[str, tuple[Any, ...]] = {}
        self._memo: dict[str, Any] = {}
        self._identities: dict[int, tuple[Any, ...] | None] = {}
        self.matcher = matcher(knowledge)

    @property
    def zone(self) -> ZoneInfo:
        return self.options.zone

    def missing(self, *parts: str) -> str | None:
        """Why a record part the criterion reads is not available (bulk screening), or None."""
        gaps = [f"{part} ({self.record.missing[part]})" for part in parts if part in self.record.missing]
        return "; ".join(gaps) or None

    def coded(self, key: str, concept: Any) -> bool:
        """Whether a concept of this record is in a value set (each concept's identity computed once)."""
        if concept is None:
            return False
        identity = self._identities.get(id(concept), ())
        if identity == ():
            identity = self._identities[id(concept)] = concept_key(concept)
        return identity is not None and self.matcher.matches(key, concept, identity)

    def conditions(self, key: str) -> tuple[Any, ...]:
        """Conditions whose code is in a value set, leaving out those entered in error or refuted."""
        if key not in self._conditions:
            self._conditions[key] = tuple(
                c for c in self.record.conditions
                if verification(c) not in VERIFICATION_VOID and self.coded(key, c.code))
        return self._conditions[key]

    def observations(self, key: str) -> tuple[Any, ...]:
        """Final (or amended, corrected) observations whose code is in a value set, latest first."""
        if key not in self._observations:
            found = [o for o in self.record.observations
                     if o.status in OBSERVATION_DONE and self.coded(key, o.code)]
            found.sort(key=lambda o: observation_day(o, self.zone) or date.min, reverse=True)
            self._observations[key] = tuple(found)
        return self._observations[key]

    def procedures(self, key: str, statuses: Iterable[str] = PROCEDURE_DONE) -> tuple[Any, ...]:
        wanted = frozenset(statuses)
        return tuple(p for p in self.record.procedures
                     if p.status in wanted and self.coded(key, p.code))

    @cached_property
    def myeloma(self) -> tuple[Any, ...]:
        """The patient's multiple myeloma conditions (the card and the screening are for these patients)."""
        return self.conditions("multiple-myeloma")

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """A derived view computed once per Facts (e.g. the therapy history, see rules/lines.py)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]
