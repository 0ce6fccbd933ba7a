"""The patient-view eligibility card: may a patient with myeloma who is not on study enter NCT06561854?

The detail (at most DETAIL_LIMIT characters) gives the verdict, then the criteria that exclude the patient,
then those to check, each by its short name (the CodeSystem's `criteria` concepts, which the ResearchStudy's
eligibility Group is coded with) and what to look at, then the others as a count. The criterion-by-criterion
list, with the evidence, is in `extension.dexfree.eligibility`. Criteria that read the same gap ("not in the
data: conditions") are listed once, together.
"""

from __future__ import annotations

import re
from typing import Any

from cds_service.cards.common import (
    compose,
    dexfree_extension,
    fit,
    human_durations,
    plain,
    protocol_link,
    source,
)
from cds_service.errors import ConfigError
from cds_service.hooks.response import card
from cds_service.knowledge.model import Knowledge
from cds_service.rules.criteria import MET, NOT_MET, REVIEW, UNKNOWN, CriterionResult
from cds_service.rules.eligibility import ELIGIBLE, NOT_ELIGIBLE, Assessment
from cds_service.rules.enrolment import Enrolment

RULE = "eligibility"
DETAIL_LIMIT = 1200
SUMMARY_LIMIT = 139
ITEM_LIMIT = 170  # one criterion's line: its name and what to look at


def _regimens(assessment: Assessment) -> str:
    return " or ".join(assessment.regimens) or "no regimen"


def criterion_name(knowledge: Knowledge, criterion_id: str) -> str:
    """ "Allogeneic transplant (exclusion 4)": the short name from the CodeSystem and the protocol number."""
    try:
        name = knowledge.terminology.concept(criterion_id).get("display")
    except ConfigError:
        name = None
    if not name:
        name = knowledge.study.criterion(criterion_id).text
    kind = "exclusion" if criterion_id.startswith("E") else "inclusion"
    return f"{name} ({kind} {criterion_id[1:]})"


def _short_name(knowledge: Knowledge, criterion_id: str) -> str:
    return criterion_name(knowledge, criterion_id).rsplit(" (", 1)[0]


def _look_at(result: CriterionResult, knowledge: Knowledge) -> str:
    """What the rule's reason says to look at, in words: no code, no reference, durations in months."""
    reason = human_durations(result.reason)
    reason = re.sub(rf"\s*—\s*{REVIEW}$", "", reason)
    reason = re.sub(rf"\s*—\s*(.+?) {REVIEW}$", r" — check \1", reason)
    reason = plain(reason)
    if not reason or reason.casefold() == _short_name(knowledge, result.id).casefold():
        return "recorded" if result.status == NOT_MET else "to confirm"
    return reason


def summary(assessment: Assessment, knowledge: Knowledge) -> str:
    """One line a clinician understands at a glance (under 140 characters)."""
    nct, regimens = knowledge.study.nct_id, _regimens(assessment)
    if assessment.overall == NOT_ELIGIBLE:
        if assessment.notes and not assessment.failed:
            return fit(f"Not eligible for {nct}: {assessment.notes[0]}", SUMMARY_LIMIT)
        if not assessment.failed:
            return f"Not eligible for {nct}: no regimen of the study remains"
        return fit(f"Not eligible for {nct} — {_failing(assessment, knowledge)}", SUMMARY_LIMIT)
    if assessment.overall == ELIGIBLE:
        return f"Eligible for {nct} ({regimens}) on every criterion — confirm with the study team"
    count = len(assessment.unknown)
    noun = "criterion" if count == 1 else "criteria"
    return f"May be eligible for {nct} ({regimens}) — {count} {noun} to check"


def _failing(assessment: Assessment, knowledge: Knowledge, room: int = 90) -> str:
    """ "excluded by HIV or hepatitis C", "fails Age 18 or older": names while they fit, then a count."""
    failed = list(assessment.failed)

    def said(ids: list[str]) -> str:
        fails = [_short_name(knowledge, i) for i in ids if not i.startswith("E")]
        excluded = [_short_name(knowledge, i) for i in ids if i.startswith("E")]
        parts = [f"fails {', '.join(fails)}"] if fails else []
        return "; ".join(parts + ([f"excluded by {', '.join(excluded)}"] if excluded else []))

    count = 1
    while count < len(failed) and len(said(failed[: count + 1])) <= room:
        count += 1
    return said(failed[:count]) + (f" and {len(failed) - count} more" if count < len(failed) else "")


def _verdict(assessment: Assessment) -> str:
    regimens = _regimens(assessment)
    if assessment.overall == NOT_ELIGIBLE:
        if assessment.notes and not assessment.failed:
            return f"**Not eligible:** {assessment.notes[0]}."
        count = len(assessment.failed)
        if not count:
            return "**Not eligible:** no regimen of the study remains."
        return f"**Not eligible:** {count} criterion excludes the patient." if count == 1 else \
            f"**Not eligible:** {count} criteria exclude the patient."
    if assessment.overall == ELIGIBLE:
        return (f"**May be eligible** for {regimens}: every criterion is fine in the record; the "
                "investigator decides.")
    count = len(assessment.unknown)
    return (f"**May be eligible** for {regimens}: nothing in the record excludes the patient; {count} "
            f"{'criterion' if count == 1 else 'criteria'} to check.")


def _items(results: list[CriterionResult], knowledge: Knowledge) -> list[tuple[str, str]]:
    """(line, names) per criterion; criteria with the same thing to look at share one line. What the record
    itself shows (with evidence) comes first, then what it is silent on, each in the protocol's order."""
    by_reason: dict[str, list[str]] = {}
    for result in sorted(results, key=lambda r: not r.evidence):
        by_reason.setdefault(_look_at(result, knowledge), []).append(result.id)
    lines = []
    for reason, ids in by_reason.items():
        names = ", ".join(criterion_name(knowledge, i) for i in ids)
        lines.append((fit(f"- {names}: {reason}", ITEM_LIMIT), names))
    return lines


def _fitted(title: str, items: list[tuple[str, str]], room: int) -> str:
    """A titled list cut to `room` characters: the lines that fit, then the others by name (or a count)."""
    if not items:
        return ""
    shown = [title]
    for index, (line, _) in enumerate(items):
        rest = items[index + 1:]
        tail = len(_rest(rest)) + 1 if rest else 0
        if sum(len(s) + 1 for s in shown) + len(line) + tail > room:
            left = room - sum(len(s) + 1 for s in shown)
            names = _rest(items[index:])
            shown.append(names if len(names) <= left else f"- and {len(items) - index} more")
            break
        shown.append(line)
    return "\n".join(shown)


def _rest(items: list[tuple[str, str]]) -> str:
    return "- also: " + ", ".join(names for _, names in items) if items else ""


def detail(assessment: Assessment, knowledge: Knowledge, enrolled: Enrolment | None = None) -> str:
    """The verdict, what excludes, what to check, the rest as a count; at most DETAIL_LIMIT characters."""
    head = [_verdict(assessment)]
    if enrolled is not None:
        head.append(f"Screening for {knowledge.study.nct_id} is recorded, status {enrolled.status}.")
    failed = [c for c in assessment.criteria if c.status == NOT_MET]
    unknown = [c for c in assessment.criteria if c.status == UNKNOWN]
    met = sum(c.status == MET for c in assessment.criteria)
    history = assessment.history
    lines = (f"{history.lines_min}" if history.lines_min == history.lines_max
             else f"{history.lines_min} to {history.lines_max}")
    cycles = history.line_days // history.cycle_days if history.cycle_days else 0
    foot = [f"Fine on {met} of {len(assessment.criteria)} criteria: inclusions fulfilled, exclusions absent.",
            f"Prior lines found: {lines}, a line being {cycles} cycles or more of anti-myeloma treatment. "
            "Read from the record; the investigator decides."]
    fixed = "\n\n".join([*head, *foot])
    room = DETAIL_LIMIT - len(fixed) - 2 * len("\n\n")
    excluded = _fitted("**Excluded by:**", _items(failed, knowledge), room // 2 if unknown else room)
    to_check = _fitted("**To check:**", _items(unknown, knowledge), room - len(excluded))
    return compose([*head, excluded, to_check, *foot], limit=DETAIL_LIMIT)


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

