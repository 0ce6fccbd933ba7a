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
    """"active", "inactive", or None when the condition says nothing (e.g. an encounter diagnosis).

    Without a clinical status, a recorded end (abatement) means inactive, as FHIR's invariant con-4 implies;
    with neither, nothing is known: a missing status never counts as resolved.
    """
    status = clinical_status(condition)
    if status in CLINICAL_ACTIVE:
        return "active"
    if status in CLINICAL_INACTIVE or (status is None and _abated(condition)):
        return "inactive"
    return None


def _abated(condition: Any) -> bool:
    return any(getattr(condition, f"abatement{kind}", None) not in (None, False)
               for kind in ("DateTime", "Period", "Age", "Range", "String", "Boolean"))


def unsure(condition: Any) -> bool:
    """Recorded but not confirmed (unconfirmed, provisional, differential)."""
    return verification(condition) in VERIFICATION_UNSURE


ASSERTED_DATE = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"


def shown(bounds: tuple[date, date]) -> str:
    """A day, or the year or month a partial FHIR date names (as the card shows it)."""
    low, high = bounds
    if low == high:
        return low.isoformat()
    if (low.month, low.day, high.month, high.day) == (1, 1, 12, 31) and low.year == high.year:
        return str(low.year)
    if low.replace(day=1) == low and (low.year, low.month) == (high.year, high.month):
        return f"{low.year:04d}-{low.month:02d}"
    return f"{low.isoformat()}–{high.isoformat()}"


Dated = tuple[tuple[date, date], str]


def _dates_on(condition: Any, zone: ZoneInfo, record: PatientRecord | None) -> list[Dated]:
    """Every date a condition carries, each with what it is: onset, recorded, encounter, asserted."""
    onset = getattr(condition, "onsetPeriod", None)
    values: list[tuple[Any, str]] = [(getattr(condition, "onsetDateTime", None), "onset"),
                                     (onset.start if onset else None, "onset"),
                                     (onset.end if onset else None, "onset"),
                                     (getattr(condition, "recordedDate", None), "recorded")]
    encounter = getattr(condition, "encounter", None)
    found = record.resolve(encounter.reference, condition) if record is not None and encounter else None
    period = getattr(found, "period", None)
    if period is not None:
        values += [(period.start, "encounter"), (period.end, "encounter")]
    values += [(ext.valueDateTime, "asserted") for ext in getattr(condition, "extension", None) or []
               if ext.url == ASSERTED_DATE]
    dated = [(date_bounds(value, zone), what) for value, what in values]
    return [(bounds, what) for bounds, what in dated if bounds]


def condition_day(condition: Any, zone: ZoneInfo,
                  record: PatientRecord | None = None) -> tuple[tuple[date, date] | None, str]:
    """The days a condition was last known present, and how that reads on a card ("ended 2026-01-28").

    A recorded end (abatement) decides. Without one, the dates on the condition (onset, recorded date, the
    encounter's date when the record holds the encounter, asserted date) decide: with no clinical status the
    condition was present on the latest of them; resolved without an end, it ended between its onset and the
    latest of them. The bounds are the first and last day that moment can be; None when nothing is dated.
    """
    period = getattr(condition, "abatementPeriod", None)
    for value in (getattr(condition, "abatementDateTime", None), period.end if period else None,
                  period.start if period else None):
        bounds = date_bounds(value, zone)
        if bounds:
            return bounds, f"ended {shown(bounds)}"
    dates = _dates_on(condition, zone, record)
    if not dates:
        return None, ""
    latest, latest_what = max(dates, key=lambda d: (d[0][1], d[0][0]))
    listed = "; ".join(dict.fromkeys(f"{what} {shown(b)}" for b, what in dates))
    if activity(condition) == "inactive":
        # Ended at an unrecorded time: after its onset (if dated), by the latest date on it.
        onsets = [b[0] for b, what in dates if what == "onset"]
        return (min(onsets) if onsets else date.min, latest[1]), \
            f"{clinical_status(condition) or 'ended'}, end not recorded ({listed})"
    if activity(condition) is None:
        others = "; ".join(dict.fromkeys(f"{what} {shown(b)}" for b, what in dates
                                         if (b, what) != (latest, latest_what)))
        also = f" ({others})" if others else ""
        # Present on each of its dates: a partial latest date cannot make it older than a precise earlier one.
        known = (max(b[0] for b, _ in dates), latest[1])
        return known, f"{latest_what} {shown(latest)}, no clinical status or end{also}"
    return latest, f"{latest_what} {shown(latest)}"


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
