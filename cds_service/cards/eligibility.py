"""The patient-view eligibility card: may a patient with myeloma who is not on study enter NCT06561854?"""

from __future__ import annotations

from typing import Any

from cds_service.cards.common import dexfree_extension, markdown_table, protocol_link, source
from cds_service.hooks.response import card
from cds_service.knowledge.model import Knowledge
from cds_service.rules.criteria import MET, NOT_MET
from cds_service.rules.eligibility import ELIGIBLE, NOT_ELIGIBLE, Assessment
from cds_service.rules.enrolment import Enrolment

RULE = "eligibility"
_SHOWN = {MET: "met", NOT_MET: "**not met**"}


def _regimens(assessment: Assessment) -> str:
    return " or ".join(assessment.regimens) or "no regimen"


def summary(assessment: Assessment, knowledge: Knowledge) -> str:
    """One line a clinician understands at a glance (under 140 characters)."""
    nct, regimens = knowledge.study.nct_id, _regimens(assessment)
    if assessment.overall == NOT_ELIGIBLE:
        if assessment.notes and not assessment.failed:
            return f"Not eligible for {nct}: {assessment.notes[0]}"
        failed = list(assessment.failed)
        shown = ", ".join(failed[:4]) + (f" and {len(failed) - 4} more" if len(failed) > 4 else "")
        return f"Not eligible for {nct}: criteria {shown} not met"
    if assessment.overall == ELIGIBLE:
        return f"Eligible for {nct} ({regimens}) on every criterion — confirm with the study team"
    count = len(assessment.unknown)
    need = "criterion needs" if count == 1 else "criteria need"
    return f"May be eligible for {nct} ({regimens}) — {count} {need} review"


def detail(assessment: Assessment, knowledge: Knowledge, enrolled: Enrolment | None = None) -> str:
    """The criterion table, with how prior lines are counted and what "met" means."""
    history = assessment.history
    lines = (f"{history.lines_min}" if history.lines_min == history.lines_max
             else f"{history.lines_min}–{history.lines_max}")
    head = [f"Regimens still possible: **{_regimens(assessment)}** · prior lines found: {lines}"]
    if enrolled is not None:
        head.append(f"Screening for {knowledge.study.nct_id} is recorded ({enrolled.reference}, status "
                    f"{enrolled.status}).")
    head += [f"Not eligible: {note}." for note in assessment.notes]
    rows = [(c.id, _SHOWN.get(c.status, "review"), c.reason) for c in assessment.criteria]
    foot = []
    if assessment.unknown:
        foot.append(f"Needs review: {', '.join(assessment.unknown)}.")
    foot.append(history.derivation())
    foot.append('"met" means the patient is fine on that criterion: an inclusion criterion fulfilled or an '
                "exclusion criterion absent. Criteria are read from the record; the investigator decides.")
    return "\n\n".join(["\n\n".join(head), markdown_table(("Criterion", "Status", "Reason"), rows),
                        "\n\n".join(foot)])


def eligibility_card(assessment: Assessment, knowledge: Knowledge,
                     enrolled: Enrolment | None = None) -> dict[str, Any]:
    """The info card, with the criteria in `extension.dexfree.eligibility` for integrators and the audit."""
    return card(
        summary=summary(assessment, knowledge),
        indicator="info",
        detail=detail(assessment, knowledge, enrolled),
        source=source(knowledge, RULE),
        links=[protocol_link(knowledge)],
        extension=dexfree_extension(knowledge, RULE, evidence=assessment.evidence,
                                    eligibility=assessment.as_json()),
    )
