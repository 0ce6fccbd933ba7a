"""The protocol's eligibility criteria I1–I7 and E1–E16, one pure function each over a Facts.

Status is about eligibility, for inclusion and exclusion criteria alike:
  `met`      the patient is fine on this criterion (an inclusion criterion is fulfilled, or an exclusion
             criterion is absent);
  `not-met`  the record shows the patient fails it (an inclusion criterion is not fulfilled, or an exclusion
             applies);
  `unknown`  the record cannot tell: the reason says what needs review.
The reason is one line shown to the clinician in the EHR (dates and drug names are fine there); it is never
logged. The evidence lists the FHIR references (`Type/id`) the decision used.

Codes come from the knowledge's value sets and every threshold from the study's criteria
(plan_definitions/); nothing clinical is spelled in this module. A criterion that reads a new value set must
add it to rules/facts.py (bulk screening keeps only resources matching those sets).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.knowledge.reads import PROCEDURE_SETS
from cds_service.rules.dates import age_on
from cds_service.rules.enrolment import ENDED, SCREENING, study_of
from cds_service.rules.facts import (
    PROCEDURE_PLANNED,
    VERIFICATION_VOID,
    Facts,
    activity,
    cancer_profile,
    clinical_status,
    concept_label,
    condition_day,
    date_bounds,
    observation_day,
    procedure_day,
    ref,
    unsure,
    verification,
)
from cds_service.rules.lines import Exposure, Regimen, TherapyHistory, therapy_history

MET, NOT_MET, UNKNOWN = "met", "not-met", "unknown"
STATUSES = (MET, NOT_MET, UNKNOWN)
REVIEW = "needs review"
# Condition.clinicalStatus values that say the disease came back.
RELAPSED = frozenset({"relapse", "recurrence"})


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's status for one patient (see the module docstring for what the statuses mean)."""

    id: str
    status: str
    reason: str
    evidence: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason, "evidence": list(self.evidence)}


def _result(criterion: str, status: str, reason: str, evidence: Iterable[str] = ()) -> CriterionResult:
    return CriterionResult(criterion, status, reason, tuple(dict.fromkeys(evidence)))


def _refs(resources: Iterable[Any]) -> list[str]:
    return [ref(r) for r in resources]


def _codes(resources: Sequence[Any]) -> str:
    return ", ".join(dict.fromkeys(concept_label(r.code) for r in resources))


def _missing(facts: Facts, criterion: str, *parts: str) -> CriterionResult | None:
    gap = facts.missing(*parts)
    return _result(criterion, UNKNOWN, f"not in the data: {gap} — {REVIEW}") if gap else None


def _review(criterion: str, what: str) -> CriterionResult:
    return _result(criterion, UNKNOWN, f"{what} — {REVIEW}")


def _when(day: date | None) -> str:
    return day.isoformat() if day else "undated"


# --- inclusion ------------------------------------------------------------------------------------


def i1_adult(facts: Facts) -> CriterionResult:
    """I1: age on the day of the assessment at least the protocol's minimum (18)."""
    minimum = int(facts.knowledge.study.criterion("I1").low)
    patient = facts.record.patient
    if patient is None:
        return _missing(facts, "I1", "patient") or _review("I1", "no Patient resource")
    bounds = date_bounds(patient.birthDate, facts.zone)
    if bounds is None:
        return _review("I1", "birth date not recorded")
    # A partial birth date (a year) allows a range of ages: decided only when the whole range agrees.
    youngest, oldest = age_on(bounds[1], facts.today), age_on(bounds[0], facts.today)
    age = f"{youngest}" if youngest == oldest else f"{youngest}–{oldest}"
    evidence = [ref(patient)]
    if youngest >= minimum:
        return _result("I1", MET, f"age {age} ({minimum} or older)", evidence)
    if oldest < minimum:
        return _result("I1", NOT_MET, f"age {age}, under {minimum}", evidence)
    return _result("I1", UNKNOWN, f"age {age} (birth date too partial) — {REVIEW}", evidence)


def i2_relapse(facts: Facts) -> CriterionResult:
    """I2: multiple myeloma in relapse — coded in relapse, or a myeloma condition whose status is relapse."""
    gap = _missing(facts, "I2", "conditions")
    if gap:
        return gap
    myeloma = facts.myeloma
    if not myeloma:
        return _result("I2", NOT_MET, "no multiple myeloma condition recorded")
    coded = facts.conditions("multiple-myeloma-relapse")
    relapsing = [c for c in coded if activity(c) != "inactive"]
    relapsing += [c for c in myeloma if clinical_status(c) in RELAPSED and all(c is not r for r in relapsing)]
    if relapsing:
        evidence = _refs(relapsing)
        if all(unsure(c) for c in relapsing):
            return _result("I2", UNKNOWN, f"relapse recorded but not confirmed ({_codes(relapsing)}) — "
                           f"{REVIEW}", evidence)
        how = [concept_label(c.code) + (f", status {clinical_status(c)}" if clinical_status(c) in RELAPSED
                                        else "") for c in relapsing]
        return _result("I2", MET, f"multiple myeloma in relapse ({'; '.join(dict.fromkeys(how))})", evidence)
    if coded:
        status = clinical_status(coded[0]) or "ended (abatement recorded)"
        return _result("I2", UNKNOWN, f"coded in relapse ({_codes(coded)}) but its status says {status} — "
                       f"{REVIEW}", _refs(coded))
    return _result("I2", UNKNOWN, f"multiple myeloma recorded ({_codes(myeloma)}), no relapse documented — "
                   f"{REVIEW}", _refs(myeloma))


def _describe_regimens(regimens: Iterable[Regimen]) -> str:
    parts = []
    for regimen in regimens:
        text = regimen.describe()
        if regimen.kind == "uncertain":
            text += ", end not known"
        elif regimen.repeat:
            text += ", same drugs as the line before: resumed or retreatment"
        parts.append(text)
    return "; ".join(parts)


def _history_gap(facts: Facts, criterion: str, history: TherapyHistory, what: str) -> CriterionResult | None:
    if history.unavailable:
        return _result(criterion, UNKNOWN, f"not in the data: {history.unavailable} — {REVIEW}")
    if history.empty:
        return _result(criterion, UNKNOWN, f"no anti-myeloma treatment in the record — {what} {REVIEW}")
    return None


def i3_prior_lines(facts: Facts) -> CriterionResult:
    """I3: 1 to 3 prior lines, each of at least 2 cycles (derived as in rules/lines.py)."""
    criterion = facts.knowledge.study.criterion("I3")
    low, high = int(criterion.low), int(criterion.high)
    history = therapy_history(facts)
    gap = _history_gap(facts, "I3", history, "prior lines")
    if gap:
        return gap
    cycles = history.line_days // history.cycle_days
    evidence = [r for regimen in history.regimens for r in regimen.references]
    counted = [r for r in history.regimens if r.kind != "short"]
    listed = _describe_regimens(counted)
    lines = history.lines_min
    if lines > high:
        return _result("I3", NOT_MET, f"{lines} prior lines of {cycles}+ cycles, more than {high}: {listed}",
                       evidence)
    if lines >= low and history.lines_max <= high:
        noun = "line" if lines == 1 else "lines"
        return _result("I3", MET, f"{lines} prior {noun} of {cycles}+ cycles: {listed}", evidence)
    extra = "; ".join(history.notes)
    if history.lines_max < low:
        shorter = _describe_regimens(history.regimens)
        return _result("I3", UNKNOWN, f"no regimen of {cycles}+ cycles found ({shorter or extra}) — {REVIEW}",
                       evidence)
    detail = "; ".join(p for p in (listed, extra) if p)
    return _result("I3", UNKNOWN, f"{history.lines_min}–{history.lines_max} prior lines ({detail}) — "
                   f"{REVIEW}", evidence)


def i4_response(facts: Facts) -> CriterionResult:
    """I4: partial response or better to the prior regimen, when it is recorded as a coded response.

    "PR or better" is often not computable: anything but a coded PR-or-better response during the most recent
    regimen is "unknown", never "not met".
    """
    gap = _missing(facts, "I4", "observations")
    if gap:
        return gap
    responses = facts.observations("response-observation")
    if not responses:
        return _review("I4", "no response assessment recorded")
    good_codes, less_codes = facts.knowledge.codes("response-pr-or-better"), facts.knowledge.codes(
        "response-less-than-pr")

    def coded(observation: Any, codes: Any) -> bool:
        value = observation.valueCodeableConcept
        return value is not None and codes.match_codings(value.coding) is not None

    good = [o for o in responses if coded(o, good_codes)]
    history = therapy_history(facts)
    last = history.regimens[-1] if history.regimens else None
    if good:
        if last is None:
            return _result("I4", UNKNOWN, f"{_response(good[0], facts)}, but the prior regimen is not in the "
                           f"record — {REVIEW}", _refs(good))
        during = [o for o in good if (observation_day(o, facts.zone) or date.min) >= last.start]
        if during:
            return _result("I4", MET, f"{_response(during[0], facts)}, during {last.label} (from "
                           f"{last.start.isoformat()})", [*_refs(during[:1]), *last.references[:1]])
        return _result("I4", UNKNOWN, f"{_response(good[0], facts)}, before the last regimen "
                       f"({last.label}) — {REVIEW}", _refs(good[:1]))
    less = [o for o in responses if coded(o, less_codes)]
    if less:
        return _result("I4", UNKNOWN, f"latest coded response: {_response(less[0], facts)}; best response to "
                       f"the prior regimen — {REVIEW}", _refs(less[:1]))
    return _result("I4", UNKNOWN, f"response recorded without a recognised code "
                   f"({_when(observation_day(responses[0], facts.zone))}) — {REVIEW}", _refs(responses[:1]))


def _response(observation: Any, facts: Facts) -> str:
    """"Partial response or better (C18058) on 2026-01-10": the value set's title and the coded value."""
    value = observation.valueCodeableConcept
    title = "response"
    for key in ("response-pr-or-better", "response-less-than-pr"):
        if value is not None and facts.knowledge.codes(key).match_codings(value.coding):
            title = facts.knowledge.codes(key).title
    names = [c.display or c.code for c in (value.coding or []) if c.code] if value else []
    shown = f"{title} ({names[0]})" if names else title
    return f"{shown} on {_when(observation_day(observation, facts.zone))}"


def _ecog_score(observation: Any, facts: Facts) -> float | None:
    if observation.valueInteger is not None:
        return float(observation.valueInteger)
    quantity = observation.valueQuantity
    if quantity is not None and quantity.value is not None:
        return float(quantity.value)
    value = observation.valueCodeableConcept
    ecog = facts.knowledge.codes("ecog")
    for coding in (value.coding or []) if value else []:
        score = ecog.ordinal(coding.system, coding.code)
        if score is not None:
            return score
    return None


def i5_ecog(facts: Facts) -> CriterionResult:
    """I5: the latest ECOG performance status, if recent enough (CDS_ECOG_WINDOW_DAYS), within 0–2."""
    gap = _missing(facts, "I5", "observations")
    if gap:
        return gap
    criterion = facts.knowledge.study.criterion("I5")
    low, high = criterion.low, criterion.high
    window = facts.options.ecog_window_days
    scored = []
    for observation in facts.observations("ecog"):
        day, score = observation_day(observation, facts.zone), _ecog_score(observation, facts)
        if day is not None and score is not None and day <= facts.today:
            scored.append((day, score, observation))
    if not scored:
        recorded = facts.observations("ecog")
        return _result("I5", UNKNOWN, ("ECOG recorded without a readable score or date" if recorded
                                       else "no ECOG performance status recorded") + f" — {REVIEW}",
                       _refs(recorded))
    latest = max(day for day, _, _ in scored)
    same_day = [(score, o) for day, score, o in scored if day == latest]
    scores = sorted({score for score, _ in same_day})
    evidence = _refs(o for _, o in same_day)
    shown = " and ".join(f"{s:g}" for s in scores)
    if (facts.today - latest).days > window:
        return _result("I5", UNKNOWN, f"latest ECOG {shown} on {latest.isoformat()} is older than {window} "
                       f"days — {REVIEW}", evidence)
    if len(scores) > 1:
        return _result("I5", UNKNOWN, f"ECOG {shown} both recorded on {latest.isoformat()} — {REVIEW}",
                       evidence)
    score = scores[0]
    if low <= score <= high:
        return _result("I5", MET, f"ECOG {score:g} on {latest.isoformat()}", evidence)
    return _result("I5", NOT_MET, f"ECOG {score:g} on {latest.isoformat()} ({low:g}–{high:g} required)",
                   evidence)


def i6_toxicities(facts: Facts) -> CriterionResult:
    """I6: toxicities of previous therapy resolved or stabilised — a clinical judgement."""
    return _review("I6", "resolution of prior-therapy toxicities (e.g. neuropathy)")


def i7_consent(facts: Facts) -> CriterionResult:
    """I7: signed informed consent — not something the record can show before screening."""
    return _review("I7", "signed informed consent")


# --- exclusion ------------------------------------------------------------------------------------


def e1_contraindications(facts: Facts) -> CriterionResult:
    """E1: contraindications to the study drugs — review; a recorded pregnancy is pointed out."""
    pregnant = [c for c in facts.conditions("pregnancy") if activity(c) == "active"]
    status = facts.observations("pregnancy-status")
    pregnancy_codes = facts.knowledge.codes("pregnancy")
    if status and pregnancy_codes.match_concept(status[0].valueCodeableConcept):
        pregnant.append(status[0])
    if pregnant:
        return _result("E1", UNKNOWN, f"pregnancy recorded — contraindications to the study drugs {REVIEW}",
                       _refs(pregnant))
    return _review("E1", "contraindications to the study drugs")


def e2_anti_cd38(facts: Facts) -> CriterionResult:
    """E2: refractoriness or intolerance to anti-CD38 antibodies; exposure alone is not refractoriness."""
    history = therapy_history(facts)
    gap = _history_gap(facts, "E2", history, "anti-CD38 exposure")
    if gap:
        return gap
    given = history.exposed_to(facts.knowledge, "anti-cd38")
    if given:
        return _result("E2", UNKNOWN, f"{_exposure_span(given)}: exposure is not refractoriness — {REVIEW}",
                       [e.reference for e in given])
    return _result("E2", MET, "no anti-CD38 antibody in the medication history")


def _exposure_span(given: Sequence[Exposure]) -> str:
    names = " and ".join(sorted({e.drug for e in given}))
    days = sorted(d for e in given for d in (e.start, e.last) if d)
    if not days:
        return f"{names} given (undated)"
    return f"{names} given {days[0].isoformat()} to {days[-1].isoformat()}"


def regimen_drugs(facts: Facts) -> dict[str, frozenset[str]]:
    """Each regimen (ICARIA, IKEMA) → the drugs that only it gives (what a prior exposure rules out)."""
    def build() -> dict[str, frozenset[str]]:
        given: dict[str, set[str]] = {}
        for regimen in facts.knowledge.regimens:
            given.setdefault(regimen.key, set()).update(d.drug for b in regimen.blocks for d in b.drugs)
        return {key: frozenset(drugs - set().union(*(v for k, v in given.items() if k != key)))
                for key, drugs in given.items()}
    return facts.memo("regimen-drugs", build)


def ruled_out(facts: Facts) -> dict[str, tuple[Exposure, ...]]:
    """Each regimen → the prior exposures that rule it out (empty: still possible) (I3/E3)."""
    def build() -> dict[str, tuple[Exposure, ...]]:
        history = therapy_history(facts)
        return {key: tuple(e for drug in sorted(drugs) for e in history.exposed_to(facts.knowledge, drug))
                for key, drugs in regimen_drugs(facts).items()}
    return facts.memo("ruled-out", build)


def possible_regimens(facts: Facts) -> tuple[str, ...]:
    """The regimens the record does not rule out (all of them when the history cannot be read)."""
    history = therapy_history(facts)
    if history.unavailable:
        return tuple(regimen_drugs(facts))
    return tuple(key for key, exposures in ruled_out(facts).items() if not exposures)


def e3_prior_regimen_drug(facts: Facts) -> CriterionResult:
    """E3: prior pomalidomide rules out ICARIA, prior carfilzomib rules out IKEMA (drugs read from the
    regimens: each regimen's own drug); not met only when no regimen remains."""
    history = therapy_history(facts)
    drugs = regimen_drugs(facts)
    named = " or ".join(sorted({d for v in drugs.values() for d in v}))
    gap = _history_gap(facts, "E3", history, f"prior {named}")
    if gap:
        return gap
    ruled = ruled_out(facts)
    remaining = [key for key, exposures in ruled.items() if not exposures]
    reasons = [f"prior {_exposure_span(exposures)} rules out {key}"
               for key, exposures in ruled.items() if exposures]
    evidence = [e.reference for exposures in ruled.values() for e in exposures]
    if not remaining:
        return _result("E3", NOT_MET, "; ".join(reasons), evidence)
    if reasons:
        return _result("E3", MET, f"{'; '.join(reasons)}; {' or '.join(remaining)} remains", evidence)
    return _result("E3", MET, f"no prior {named}: {' or '.join(remaining)} possible")


def e4_allogeneic_transplant(facts: Facts) -> CriterionResult:
    """E4: allogeneic transplant, at any time; transplant codes that do not say allogeneic raise review."""
    gap = _missing(facts, "E4", "procedures", "conditions")
    if gap:
        return gap
    allogeneic = facts.procedures("allogeneic-hct")
    if allogeneic:
        days = ", ".join(_when(procedure_day(p, facts.zone)) for p in allogeneic)
        return _result("E4", NOT_MET, f"allogeneic transplant ({_codes(allogeneic)}, {days})",
                       _refs(allogeneic))
    unspecified = [*facts.procedures("hct-unspecified"), *facts.conditions("hct-unspecified")]
    if unspecified:
        return _result("E4", UNKNOWN, f"transplant recorded ({_codes(unspecified)}) without saying "
                       f"allogeneic — {REVIEW}", _refs(unspecified))
    return _result("E4", MET, "no allogeneic transplant recorded")


def e5_planned_transplant(facts: Facts) -> CriterionResult:
    """E5: transplant planned before progression — not met when a transplant Procedure is in preparation."""
    planned = [p for key in PROCEDURE_SETS for p in facts.procedures(key, PROCEDURE_PLANNED)]
    if planned:
        return _result("E5", NOT_MET, f"transplant in preparation ({_codes(planned)})", _refs(planned))
    return _review("E5", "planned transplant")


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def e6_other_malignancy(facts: Facts) -> CriterionResult:
    """E6: another malignancy within 3 years (the value set leaves out the protocol's skin and in-situ
    exceptions); a malignancy still active counts whatever its onset; no usable date → unknown.

    Dated by the last time it was known present (facts.condition_day): its recorded end, else the latest date
    on it — a condition without a clinical status or an end is not "old" because its onset is; one resolved
    without an end date ended between its onset and the latest date on it. Exactly 3 years ago is within.
    """
    gap = _missing(facts, "E6", "conditions")
    if gap:
        return gap
    years = int(facts.knowledge.study.criterion("E6").low)
    cutoff = _years_before(facts.today, years)
    recent, undated, old = [], [], []
    for condition in facts.conditions("other-malignancy"):
        bounds, when = condition_day(condition, facts.zone, facts.record)
        label = concept_label(condition.code)
        if activity(condition) == "active":
            since = f" ({when})" if bounds else ""
            recent.append((condition, f"{label} active{since}"))
        elif bounds is None:
            undated.append((condition, f"{label} without a precise date"))
        elif bounds[0] >= cutoff:
            recent.append((condition, f"{label} {when}"))
        elif bounds[1] < cutoff:
            old.append((condition, f"{label} {when}"))
        else:
            undated.append((condition, f"{label} {when}: not known whether within {years} years"))
    listed = {id(c) for c in facts.conditions("other-malignancy")}
    for condition in facts.record.conditions:
        # An mCODE cancer condition coded outside ICD-10 (not myeloma): the record cannot date-check it.
        other = (cancer_profile(condition) and id(condition) not in listed
                 and not facts.coded("multiple-myeloma", condition.code)
                 and verification(condition) not in VERIFICATION_VOID)
        if other:
            label = concept_label(condition.code)
            undated.append((condition, f"cancer condition {label} not coded in ICD-10"))
    if recent:
        texts, evidence = "; ".join(t for _, t in recent), _refs(c for c, _ in recent)
        if all(unsure(c) for c, _ in recent):
            return _result("E6", UNKNOWN, f"unconfirmed other malignancy ({texts}) — {REVIEW}", evidence)
        return _result("E6", NOT_MET, f"other malignancy within {years} years: {texts} (unless the "
                       "investigator considers it cured)", evidence)
    if undated:
        return _result("E6", UNKNOWN, f"other malignancy: {'; '.join(t for _, t in undated)} — {REVIEW}",
                       _refs(c for c, _ in undated))
    if old:
        return _result("E6", MET, f"other malignancy more than {years} years ago: "
                       f"{'; '.join(t for _, t in old)}", _refs(c for c, _ in old))
    return _result("E6", MET, "no other malignancy recorded")


def e7_meningeal(facts: Facts) -> CriterionResult:
    """E7: known meningeal involvement. The codes are not myeloma-specific: with another malignancy
    recorded, whose meninges they are needs review; WHO ICD-10's brain-or-meninges codes always do."""
    gap = _missing(facts, "E7", "conditions")
    if gap:
        return gap
    found = facts.conditions("meningeal-involvement")
    nervous = [c for c in facts.conditions("cns-secondary-neoplasm") if all(c is not f for f in found)]
    if not found and nervous:
        return _result("E7", UNKNOWN, f"secondary neoplasm of the brain or nervous system recorded "
                       f"({_codes(nervous)}), not saying meninges — {REVIEW}", _refs(nervous))
    if not found:
        return _result("E7", MET, "no meningeal involvement recorded")
    if facts.conditions("other-malignancy") or all(unsure(c) for c in found):
        return _result("E7", UNKNOWN, f"meningeal neoplasm recorded ({_codes(found)}), not necessarily "
                       f"myeloma — {REVIEW}", _refs(found))
    return _result("E7", NOT_MET, f"meningeal involvement recorded ({_codes(found)})", _refs(found))


def _present(facts: Facts, criterion: str, keys: Sequence[str], absent: str,
             review: Sequence[str] = ()) -> CriterionResult:
    """Not met when a condition of one of the `keys` sets is recorded (any clinical status: a history counts);
    one of the `review` sets only (a code too broad to decide) raises review."""
    gap = _missing(facts, criterion, "conditions")
    if gap:
        return gap
    found = [(key, c) for key in keys for c in facts.conditions(key)]
    broad = [(key, c) for key in review for c in facts.conditions(key) if all(c is not f for _, f in found)]
    if not found and not broad:
        return _result(criterion, MET, absent)

    def named(pairs: Sequence[tuple[str, Any]]) -> str:
        return "; ".join(f"{facts.knowledge.codes(key).title} ({concept_label(c.code)})" for key, c in pairs)

    evidence = _refs(c for _, c in [*found, *broad])
    if found and not all(unsure(c) for _, c in found):
        return _result(criterion, NOT_MET, f"recorded: {named(found)}", _refs(c for _, c in found))
    if found:
        return _result(criterion, UNKNOWN, f"unconfirmed: {named([*found, *broad])} — {REVIEW}", evidence)
    return _result(criterion, UNKNOWN, f"recorded: {named(broad)} — which one the protocol means {REVIEW}",
                   evidence)


def e8_plasma_cell_disorders(facts: Facts) -> CriterionResult:
    """E8: plasma cell leukaemia, Waldenström, POEMS or amyloidosis recorded as conditions.

    Only light chain (AL) amyloidosis decides; any other amyloidosis code (WHO ICD-10 has no AL code: E85.8
    "other amyloidosis" holds it there) raises review, never "met".
    """
    return _present(facts, "E8", ("plasma-cell-leukaemia", "waldenstrom", "poems", "amyloidosis"),
                    "no plasma cell leukaemia, Waldenström, POEMS or amyloidosis recorded",
                    review=("amyloidosis-type-not-stated",))


def e9_concurrent_condition(facts: Facts) -> CriterionResult:
    """E9: concurrent condition that would interfere or be a hazard — the investigator's judgement."""
    return _review("E9", "concurrent conditions (investigator's judgement)")


def _needs_judgement(facts: Facts, criterion: str, key: str, absent: str, question: str) -> CriterionResult:
    """A condition that excludes only when uncontrolled / significant: recorded (not inactive) → review."""
    gap = _missing(facts, criterion, "conditions")
    if gap:
        return gap
    found = [c for c in facts.conditions(key) if activity(c) != "inactive"]
    if found:
        return _result(criterion, UNKNOWN, f"{facts.knowledge.codes(key).title} recorded ({_codes(found)}) — "
                       f"{question} {REVIEW}", _refs(found))
    return _result(criterion, MET, absent)


def e10_copd(facts: Facts) -> CriterionResult:
    """E10: uncontrolled COPD — a COPD condition raises review (control is not coded)."""
    return _needs_judgement(facts, "E10", "copd", "no COPD recorded", "whether it is uncontrolled")


def e11_cardiac(facts: Facts) -> CriterionResult:
    """E11: clinically significant cardiac disease — a cardiac condition of the value set raises review."""
    return _needs_judgement(facts, "E11", "cardiac-disease", "no significant cardiac disease recorded",
                            "clinical significance")


def e12_hepatitis_b(facts: Facts) -> CriterionResult:
    """E12: hepatitis B seropositive with a positive PCR — a hepatitis B condition (chronic, acute, carrier)
    or a carrier of viral hepatitis not saying which virus raises review: the PCR is not coded."""
    gap = _missing(facts, "E12", "conditions")
    if gap:
        return gap
    found = facts.conditions("hepatitis-b")
    if found:
        return _result("E12", UNKNOWN, f"hepatitis B recorded ({_codes(found)}) — PCR {REVIEW}", _refs(found))
    carrier = facts.conditions("viral-hepatitis-carrier")
    if carrier:
        return _result("E12", UNKNOWN, f"carrier of viral hepatitis recorded ({_codes(carrier)}), virus not "
                       f"stated — hepatitis B serology and PCR {REVIEW}", _refs(carrier))
    return _result("E12", MET, "no hepatitis B recorded")


def e13_hiv_hepatitis_c(facts: Facts) -> CriterionResult:
    """E13: HIV (any record) or hepatitis C (not resolved); resolved hepatitis C, or a carrier of viral
    hepatitis not saying which virus, raises review."""
    gap = _missing(facts, "E13", "conditions")
    if gap:
        return gap
    hiv = facts.conditions("hiv")
    hcv = facts.conditions("hepatitis-c")
    current = [*hiv, *(c for c in hcv if activity(c) != "inactive")]
    if current and not all(unsure(c) for c in current):
        return _result("E13", NOT_MET, f"recorded: {_codes(current)}", _refs(current))
    if current or hcv:
        return _result("E13", UNKNOWN, f"{_codes(current or hcv)} recorded as unconfirmed or resolved — "
                       f"serology {REVIEW}", _refs(current or hcv))
    carrier = facts.conditions("viral-hepatitis-carrier")
    if carrier:
        return _result("E13", UNKNOWN, f"carrier of viral hepatitis recorded ({_codes(carrier)}), virus not "
                       f"stated — hepatitis C serology {REVIEW}", _refs(carrier))
    return _result("E13", MET, "no HIV or hepatitis C recorded")


def e14_lactation(facts: Facts) -> CriterionResult:
    """E14: lactation — an active lactation condition or a breastfeeding status observation saying so."""
    patient = facts.record.patient
    if patient is not None and patient.gender == "male":
        return _result("E14", MET, "not applicable (male)", [ref(patient)])
    gap = _missing(facts, "E14", "conditions", "observations")
    if gap:
        return gap
    lactation = facts.knowledge.codes("lactation")
    conditions = [c for c in facts.conditions("lactation") if activity(c) != "inactive"]
    status = facts.observations("breastfeeding-status")
    latest = status[0] if status else None
    says_yes = latest is not None and lactation.match_concept(latest.valueCodeableConcept) is not None
    active = [c for c in conditions if activity(c) == "active" and not unsure(c)]
    if active or says_yes:
        evidence = _refs([*active, *([latest] if says_yes else [])])
        how = f" (breastfeeding status {_when(observation_day(latest, facts.zone))})" if says_yes else ""
        return _result("E14", NOT_MET, f"lactation recorded{how}", evidence)
    if conditions:
        return _result("E14", UNKNOWN, f"lactation recorded ({_codes(conditions)}) without an active "
                       f"status — {REVIEW}", _refs(conditions))
    if latest is not None and (latest.valueCodeableConcept or latest.valueString):
        return _result("E14", UNKNOWN, f"breastfeeding status recorded on "
                       f"{_when(observation_day(latest, facts.zone))} with an unrecognised value — {REVIEW}",
                       [ref(latest)])
    return _result("E14", MET, "no lactation recorded")


_PHASE = re.compile(r"phase[\s_-]*[1-4]", re.IGNORECASE)
_WORDS = re.compile(r"\b(interventional|observational)\b", re.IGNORECASE)


def study_kind(study: Any) -> str | None:
    """"interventional", "observational" or None, from a ResearchStudy's category texts and phase.

    R4 has no study-type element: registries' conversions put "Study Type: Interventional" in `category`;
    a drug-trial phase (phase 1 to 4) is interventional by definition.
    """
    texts = []
    for concept in [*(getattr(study, "category", None) or []), getattr(study, "phase", None)]:
        if concept is None:
            continue
        texts.append(concept.text or "")
        texts += [f"{c.code or ''} {c.display or ''}" for c in concept.coding or []]
    for text in texts:
        found = _WORDS.search(text)
        if found:
            return found.group(1).lower()
    return "interventional" if any(_PHASE.search(t) for t in texts) else None


def _study_of(subject: Any, facts: Facts) -> tuple[str, Any, bool | None]:
    """(name, ResearchStudy or None, is this study?) of a ResearchSubject."""
    values, study = study_of(subject, facts.record)
    if values:
        return values[0], study, any(facts.knowledge.study.is_this_study(v) for v in values)
    reference = subject.study
    return (reference.display or reference.reference or "a study") if reference else "a study", study, None


def e15_other_trial(facts: Facts) -> CriterionResult:
    """E15: on study in another interventional trial (a ResearchSubject neither screening nor ended)."""
    gap = _missing(facts, "E15", "researchSubjects")
    if gap:
        return gap
    interventional, unclear = [], []
    for subject in facts.record.research_subjects:
        if subject.status in SCREENING or subject.status in ENDED:
            continue
        name, study, ours = _study_of(subject, facts)
        if ours:
            continue
        kind = study_kind(study) if study is not None else None
        if ours is None:
            unclear.append((subject, f"{name} (study not identified)"))
        elif kind == "interventional":
            interventional.append((subject, name))
        elif kind is None:
            unclear.append((subject, name))
    if interventional:
        names = ", ".join(n for _, n in interventional)
        return _result("E15", NOT_MET, f"on study in {names} (interventional)",
                       _refs(s for s, _ in interventional))
    if unclear:
        names = ", ".join(n for _, n in unclear)
        return _result("E15", UNKNOWN, f"on study in {names}; whether interventional — {REVIEW}",
                       _refs(s for s, _ in unclear))
    return _result("E15", MET, "no other interventional trial recorded")


def e16_consent_ability(facts: Facts) -> CriterionResult:
    """E16: inability to give written informed consent — the investigator's assessment."""
    return _review("E16", "ability to give written informed consent")


Criterion = Callable[[Facts], CriterionResult]

# In the protocol's order; ids as the study's eligibility Group numbers them.
CRITERIA: tuple[tuple[str, Criterion], ...] = (
    ("I1", i1_adult), ("I2", i2_relapse), ("I3", i3_prior_lines), ("I4", i4_response), ("I5", i5_ecog),
    ("I6", i6_toxicities), ("I7", i7_consent),
    ("E1", e1_contraindications), ("E2", e2_anti_cd38), ("E3", e3_prior_regimen_drug),
    ("E4", e4_allogeneic_transplant), ("E5", e5_planned_transplant), ("E6", e6_other_malignancy),
    ("E7", e7_meningeal), ("E8", e8_plasma_cell_disorders), ("E9", e9_concurrent_condition),
    ("E10", e10_copd), ("E11", e11_cardiac), ("E12", e12_hepatitis_b), ("E13", e13_hiv_hepatitis_c),
    ("E14", e14_lactation), ("E15", e15_other_trial), ("E16", e16_consent_ability),
)
CRITERION_IDS = tuple(cid for cid, _ in CRITERIA)
