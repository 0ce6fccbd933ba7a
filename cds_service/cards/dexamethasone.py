"""Cards of the dexamethasone rules and the trial-status card, written to docs card-writing.md.

Each detail is at most DETAIL_LIMIT characters, in this order: what to do (on an isatuximab infusion day the
premedication question first), why (arm, regimen, cycle and day, the day dexamethasone stopped), where the
facts come from in plain words and dates, and last one short line of what to check (doubts of the cycle
clock, an unclear route), shortened to what the limit leaves. No reference, element name or code is shown:
they stay in `extension.dexfree` (`evidence`, and `doubts`: the rules' full sentences).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from cds_service.cards.common import (
    REFERENCE,
    artifact_link,
    compose,
    dexfree_extension,
    fit,
    override_reasons,
    plain,
    protocol_link,
    sentence,
    source,
    unit_words,
)
from cds_service.hooks.response import action, card, suggestion
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import DoseOption
from cds_service.rules.cycles import STRATUM_DRUGS, CycleClock
from cds_service.rules.dexamethasone import DEX, DOSE_TOLERANCE_MG, DexFinding, Situation, last_dex_day
from cds_service.rules.enrolment import EnrolmentDoubt
from cds_service.rules.exposure import Finding

DETAIL_LIMIT = 500
SUMMARY_LIMIT = 139
UCUM = "http://unitsofmeasure.org"
PREMEDICATION = "premedication-isatuximab"
# How the rules say the route was not stated (rules/orders.py): the card says it in its last line.
ROUTE_NOT_STATED = "route not stated: taken as systemic"


def _d(day: date | None) -> str:
    return day.isoformat() if day else "unknown"


def _days(days: Iterable[int]) -> str:
    return ", ".join(str(d) for d in days)


# --- the facts, in words -------------------------------------------------------------------------------


def _regimen_name(clock: CycleClock | None) -> str | None:
    """ICARIA; "ICARIA or IKEMA" when the regimen is unknown but both answer alike; None without a clock."""
    if clock is None or not clock.regimens:
        return None
    return " or ".join(r.key for r in clock.regimens)


def _source_words(how: str) -> str:
    """Where cycle 1 day 1 comes from (`CycleClock.c1d1_how`), named by the record it was read from."""
    found = REFERENCE.search(how or "")
    kind = found.group(1) if found else ""
    return {"CarePlan": "treatment plan", "MedicationAdministration": "first isatuximab given",
            "MedicationRequest": "first isatuximab order"}.get(kind, "record")


def _regimen_source(clock: CycleClock) -> str | None:
    """How the regimen was told when no treatment plan names it (the stratum drug given), else None."""
    if clock.regimen is None:
        return "regimen not recorded" if len(clock.regimens) > 1 else None
    if "CarePlan/" in clock.regimen_how:
        return None
    drug = next((d for d, key in STRATUM_DRUGS.items() if key == clock.regimen.key), None)
    found = REFERENCE.search(clock.regimen_how)
    how = "ordered" if found and found.group(1) == "MedicationRequest" else "given"
    return f"{clock.regimen.key}: {drug} {how}" if drug else None


def _latest_isatuximab(clock: CycleClock, until: date) -> date | None:
    given = [day for day, _ in clock.given if day <= until]
    return max(given) if given else None


def _from_line(enrolled: Any, clock: CycleClock | None, until: date, order_how: str | None = None) -> str:
    """ "From: enrolled in arm B (study record, 2026-08-20); cycle 1 began 2026-09-01 (treatment plan); …"."""
    parts = []
    if enrolled is not None and enrolled.arm is not None:
        when = f", {enrolled.enrolled_on.isoformat()}" if enrolled.enrolled_on else ""
        parts.append(f"enrolled in arm {enrolled.arm.key} (study record{when})")
    elif enrolled is not None:
        named = f'names the arm "{plain(enrolled.arm_text)}"' if enrolled.arm_text else "names no arm"
        parts.append(f"the study record {named}")
    if clock is not None and clock.c1d1 is not None:
        parts.append(f"cycle 1 began {clock.c1d1.isoformat()} ({_source_words(clock.c1d1_how)})")
        regimen = _regimen_source(clock)
        if regimen:
            parts.append(regimen)
        latest = _latest_isatuximab(clock, until)
        if latest is not None:
            parts.append(f"isatuximab given {latest.isoformat()}")
    if order_how:
        parts.append(order_how)
    return ("From: " + "; ".join(parts) + ".") if parts else ""


def _order_start_how(finding: DexFinding) -> str | None:
    """Said only when the order's first day is not its dosage timing's (rules/orders.py `_start`)."""
    how = finding.facts.start_how if finding.facts else ""
    if "order date" in how:
        return "the order's first day is its order date"
    if how.startswith("today"):
        return "the order gives no first day: taken as today"
    return None


def _route_notes(finding: DexFinding) -> list[str]:
    facts = finding.facts
    if facts is None:
        return []
    if facts.route_doubt:
        return [f"route unclear, {_route_doubt(facts.route_doubt)}: taken as systemic"]
    if facts.route_how == ROUTE_NOT_STATED:
        return ["the order states no route: taken as systemic"]
    return []


def _route_doubt(doubt: str) -> str:
    """ 'both local ("eye drops" in the product) and systemic (route: Oral route (coded))' in words."""
    local, _, systemic = doubt.partition(") and systemic (")
    local = local.partition("local (")[2]
    systemic = systemic.rpartition("): taken")[0] or systemic
    return f"{_how(local)} says local, {_how(systemic)} systemic"


def _how(how: str) -> str:
    """One route clue of rules/orders.py `_route` in words: `route: Oral route (coded)` is 'route "Oral
    route"'."""
    how = how.strip()
    if how.startswith("route: "):
        name = how.removeprefix("route: ").removesuffix(" (coded)").strip().strip('"')
        named = plain(name)
        return f'route "{named}"' if named else "the coded route"
    if how == "a systemic product code":
        return "the product code"
    if '" in the ' in how:
        text, _, where = how.partition('" in the ')
        return f'{where.replace("dose form", "form")} "{text.strip(chr(34))}"'
    return plain(how)


_D = r"(\d{4}-\d\d-\d\d)"
_REF = r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+"
# The cycle clock's doubts (rules/cycles.py) with the point first, so that a shortened line keeps it; any
# other sentence is shown through `plain`.
_DOUBTS = (
    (re.compile(rf"cycle (\d+) day 1 isatuximab was given on {_D} \({_REF}\), (\d+) days after the "
                r"calendar's day 1: .*"),
     r"cycle \1 may have been delayed: its day 1 isatuximab was given \2, \3 days late, later cycles counted "
     r"from it"),
    (re.compile(rf"{_REF} starts on {_D}, (\d+) days after isatuximab was first given \({_D}, {_REF}\): .*"),
     r"cycles counted from the first isatuximab given, \3: the treatment plan starts \2 days later, \1"),
    (re.compile(rf"{_REF} starts on {_D}, but isatuximab was first given (\d+) days later "
                rf"\({_D}, {_REF}\): .*"),
     r"cycles counted from the first isatuximab given, \3: the treatment plan starts \2 days earlier, \1"),
    (re.compile(rf"the enrolment has no date: isatuximab given or ordered from {_D} to {_D} is taken for a "
                r"previous line.*"),
     r"isatuximab from \1 to \2 taken for a previous line: the enrolment has no date"),
)


def short_doubt(text: str) -> str:
    """One doubt of the cycle clock in a clinician's words, its point first."""
    for pattern, words in _DOUBTS:
        if pattern.fullmatch(text):
            return pattern.sub(words, text)
    return plain(text)


def _doubts(finding: DexFinding | Situation) -> list[str]:
    clock = finding.clock
    return [short_doubt(d) for d in clock.doubts] if clock else []


def _notes(finding: DexFinding) -> list[str]:
    """The last line: route first (it is about this order), then the cycle clock's doubts."""
    return [*_route_notes(finding), *_doubts(finding)]


def _full_doubts(finding: DexFinding | Situation) -> list[str]:
    """The rules' own sentences behind the last line, for `extension.dexfree.doubts`."""
    found = list(finding.clock.doubts) if finding.clock else []
    facts = getattr(finding, "facts", None)
    if facts is not None and facts.route_doubt:
        found.append(facts.route_doubt)
    elif facts is not None and facts.route_how == ROUTE_NOT_STATED:
        found.append(facts.route_how)
    for note in getattr(finding, "notes", ()) or ():
        found.append(note)
    return list(dict.fromkeys(found))


def _dose_words(finding: DexFinding) -> str:
    facts = finding.facts
    return unit_words(facts.dose_how) if facts and facts.dose_how else "no readable dose"


def _starts(finding: DexFinding) -> str:
    """ "starts 2026-10-27, cycle 3 day 1" or "starts 2026-08-25, before cycle 1"."""
    start = _d(finding.facts.start)
    if finding.cycle is None:
        return f"starts {start}, before cycle 1"
    return f"starts {start}, cycle {finding.cycle} day {finding.cycle_day}"


# --- links, extension, summary -------------------------------------------------------------------------


def _links(knowledge: Knowledge, finding: DexFinding | Situation | None) -> list[dict[str, Any]]:
    """The protocol, then the regimen the finding was checked against, else the study's regimens."""
    links = [protocol_link(knowledge)]
    regimen = finding.clock.regimen if finding and finding.clock else None
    if regimen:
        label = f"{regimen.key} regimen, arm {regimen.arm}: cycle by cycle"
        links.append(artifact_link(label, regimen.canonical))
    else:
        links.append(artifact_link(f"{knowledge.study.nct_id} regimens", knowledge.study.protocol_url))
    return links


def _extension(knowledge: Knowledge, finding: DexFinding, **more: Any) -> dict[str, Any]:
    return dexfree_extension(
        knowledge,
        finding.rule,
        finding.evidence,
        arm=finding.arm,
        regimen=finding.regimen,
        cycle=finding.cycle,
        cycleDay=finding.cycle_day,
        orderDate=finding.facts.start if finding.facts else None,
        # Whose regimen the order was checked against (a site's adaptation or the published one).
        regimenCanonical=finding.clock.regimen.canonical if finding.clock and finding.clock.regimen else None,
        doubts=_full_doubts(finding),
        **more,
    )


def _summary(text: str) -> str:
    return fit(text, SUMMARY_LIMIT)


def _premedication_first(knowledge: Knowledge) -> str:
    reason = next(r for r in knowledge.override_reasons if r.code == PREMEDICATION)
    return ("**Isatuximab infusion day: this may be premedication,** which the protocol leaves open for "
            "arm B. "
            f"Decide with the investigator, then remove the order or override: {reason.display.lower()}.")


# --- the order cards -----------------------------------------------------------------------------------


def _arm_b_warning(finding: DexFinding, knowledge: Knowledge, summary: str, detail: str,
                   suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    """The two arm B warnings share everything but their text and suggestion."""
    return card(
        summary=_summary(summary),
        indicator="warning",
        source=source(knowledge, finding.rule),
        detail=detail,
        suggestions=suggestions,
        override_reasons=override_reasons(knowledge),
        links=_links(knowledge, finding),
        extension=_extension(knowledge, finding),
    )


def _stopped(finding: DexFinding) -> str:
    """ "no dexamethasone from cycle 3, which began 2026-10-27" (or why its day is not known)."""
    stop = finding.stop_cycle
    if finding.stop_date is None:
        return f"no dexamethasone from cycle {stop}; a delayed cycle leaves the day it began unrecorded"
    verb = "began" if finding.stop_date <= finding.facts.start else "begins"
    return f"no dexamethasone from cycle {stop}, which {verb} {finding.stop_date.isoformat()}"


def after_cycle_2(finding: DexFinding, knowledge: Knowledge) -> dict[str, Any]:
    """Arm B, the order starts in a cycle without dexamethasone: warn, offer to remove it."""
    regimen = _regimen_name(finding.clock) or "regimen unknown"
    first = (_premedication_first(knowledge) if finding.infusion_day else
             "**Remove this dexamethasone order,** or override with a reason if the investigator decided so.")
    why = f"Arm B, {regimen}: {_stopped(finding)}. This order {_starts(finding)}."
    source_line = _from_line(finding.enrolled, finding.clock, finding.facts.start, _order_start_how(finding))
    remove = action("delete", "Remove the draft dexamethasone order", resource_id=finding.order_ref)
    summary = (f"Arm B: no dexamethasone from cycle {finding.stop_cycle} — this order is for cycle "
               f"{finding.cycle}, day {finding.cycle_day}")
    return _arm_b_warning(finding, knowledge, summary,
                          compose([first, why, source_line], _notes(finding), DETAIL_LIMIT),
                          [suggestion("Remove this dexamethasone order", [remove], recommended=True)])


def _shortened(raw: dict[str, Any], start: date, last: date) -> dict[str, Any]:
    """The draft order ending on `last`: timing bounded, later events, count and duration dropped, no refills
    and no dispense quantity (the prescriber sets the quantity of the shorter course)."""
    order = copy.deepcopy(raw)
    for dosage in order.get("dosageInstruction") or []:
        timing = dosage.setdefault("timing", {})
        if isinstance(timing.get("event"), list):
            timing["event"] = [e for e in timing["event"] if str(e)[:10] <= last.isoformat()]
        repeat = timing.setdefault("repeat", {})
        for key in ("boundsDuration", "boundsRange", "count", "countMax"):
            repeat.pop(key, None)
        repeat["boundsPeriod"] = {"start": start.isoformat(), "end": last.isoformat()}
    dispense = order.get("dispenseRequest")
    if isinstance(dispense, dict):
        dispense.pop("numberOfRepeatsAllowed", None)
        dispense.pop("quantity", None)  # it may hold more doses than the shortened course
        days = (last - start).days + 1
        if "expectedSupplyDuration" in dispense:
            dispense["expectedSupplyDuration"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
    return order


def _runs(finding: DexFinding) -> str:
    """ "has no end", "runs until 2026-10-29, in cycle 3", with what carries it there (supply, refills)."""
    facts = finding.facts
    if facts.open_ended:
        return "has no end"
    how = facts.end_how or ""
    by = ""
    if "supply" in how or "quantity" in how:
        by = " with its refills" if "refill" in how else " by the supply dispensed"
    elif "number of doses" in how:
        by = " by its number of doses"
    where = f", in cycle {finding.end_cycle}" if finding.end_cycle else ""
    return f"runs until {_d(facts.end)}{where}{by}"


def extends_past_cycle_2(
    finding: DexFinding, knowledge: Knowledge, raw_order: dict[str, Any] | None
) -> dict[str, Any]:
    """Arm B, the order would run into the first cycle without dexamethasone: warn, offer to shorten it."""
    last = last_dex_day(finding)
    facts = finding.facts
    stop = finding.stop_cycle
    regimen = _regimen_name(finding.clock) or "regimen unknown"
    end_label = f"End the order on {_d(last)} (last day of cycle {stop - 1})"
    first = (f"**End this dexamethasone order on {_d(last)},** the last day of cycle {stop - 1}." if last
             else f"**End this dexamethasone order before cycle {stop}.**")
    why = f"Arm B, {regimen}: {_stopped(finding)}. This order {_starts(finding)}, and {_runs(finding)}."
    source_line = _from_line(finding.enrolled, finding.clock, facts.start, _order_start_how(finding))
    suggestions = []
    if raw_order is not None and last is not None and last >= facts.start:
        update = action("update", f"End the dexamethasone order on {_d(last)}, the last day of cycle "
                        f"{stop - 1}, without refills", resource=_shortened(raw_order, facts.start, last))
        suggestions.append(suggestion(end_label, [update], recommended=True))
    ends = f"end it on {_d(last)}" if last else f"end it before cycle {stop}"
    summary = f"Arm B: this dexamethasone order runs into cycle {stop}, which has none — {ends}"
    return _arm_b_warning(finding, knowledge, summary,
                          compose([first, why, source_line], _notes(finding), DETAIL_LIMIT), suggestions)


def _regimen_doses(clock: CycleClock | None, cycle: int | None) -> tuple[DoseOption, ...]:
    """The dexamethasone dose options of the cycle (several when the dose depends on age)."""
    for regimen in clock.regimens if clock and cycle else ():
        block = regimen.block(cycle)
        found = block.drug(DEX) if block else None
        if found is not None:
            return found.options
    return ()


def _by_age(clock: CycleClock | None, cycle: int | None) -> bool:
    return len(_regimen_doses(clock, cycle)) > 1


_WRITTEN_DOSE = re.compile(r"\d+(?:[.,]\d+)?\s*(?:mg|g|µg|mcg)\b", re.IGNORECASE)


def _with_dose(raw: dict[str, Any], dose: DoseOption) -> dict[str, Any]:
    """The draft order with the regimen's dose in every dosage. A dosage text that writes a dose is dropped
    (it would contradict the structured dose), and so is the dispense quantity (it was for the other dose:
    the prescriber sets it)."""
    order = copy.deepcopy(raw)
    quantity = {"value": dose.value, "unit": dose.unit, "system": UCUM, "code": dose.unit}
    for dosage in order.get("dosageInstruction") or []:
        if isinstance(dosage.get("text"), str) and _WRITTEN_DOSE.search(dosage["text"]):
            del dosage["text"]
        rates = dosage.get("doseAndRate") or [{}]
        for rate in rates:
            rate.pop("doseRange", None)
            rate["doseQuantity"] = dict(quantity)
        dosage["doseAndRate"] = rates
    dispense = order.get("dispenseRequest")
    if isinstance(dispense, dict):
        dispense.pop("quantity", None)
    return order


def dose_mismatch(finding: DexFinding, knowledge: Knowledge,
                  raw_order: dict[str, Any] | None = None) -> dict[str, Any]:
    """Any arm: dose or days differ from the regimen (for the patient's age when the dose depends on it)."""
    expected = finding.expected
    days = _days(finding.expected_days)
    regimen = _regimen_name(finding.clock) or "the regimen"
    ordered = _dose_words(finding)
    dose_differs = abs((finding.facts.dose_mg or 0) - expected.value) > DOSE_TOLERANCE_MG
    by_age = _by_age(finding.clock, finding.cycle)
    age = f" at age {finding.age}" if by_age and finding.age is not None else ""
    where = f"cycle {finding.cycle} day {finding.cycle_day}"
    if dose_differs:
        first = f"**Change the dose to {expected.describe()}**, the dose of {regimen}{age}."
        summary = (f"Dexamethasone dose: {regimen} gives {expected.describe()}{age} — this order gives "
                   f"{ordered}, {where}")
    else:
        first = f"**Give dexamethasone on days {days} of cycle {finding.cycle} only,** as {regimen} does."
        summary = f"Dexamethasone days: {regimen} gives it on days {days} — this order is for {where}"
    arm = f"Arm {finding.arm}, " if finding.arm else ""
    bands = f" ({_bands(finding.clock, finding.cycle)})" if by_age and dose_differs else ""
    given = expected.text if expected.text.startswith(expected.describe()) else expected.describe()
    why = (f"{arm}{regimen}{bands}: {given}, on days {days} of cycle {finding.cycle}. "
           f"This order gives {ordered}, {_starts(finding).removeprefix('starts ')}")
    off = [_off_days(n) for n in finding.notes]
    why += f"; {off[0]}." if off else "."
    # The site id, not its publisher's full name: short, and without parentheses inside the sentence.
    whose = "; ".join(dict.fromkeys(f"site {r.site}'s regimen" if r.site else "the published regimen"
                                    for r in finding.checked_against))
    why += f" Checked against {whose}." if whose else ""
    source_line = _from_line(finding.enrolled, finding.clock, finding.facts.start, _order_start_how(finding))
    suggestions = []
    if dose_differs and raw_order is not None:
        update = action("update", f"Set this dexamethasone order's dose to {expected.describe()}",
                        resource=_with_dose(raw_order, expected))
        label = f"Change the dose to {expected.describe()}"
        suggestions.append(suggestion(label, [update], recommended=True))
    notes = [*_route_notes(finding), *_doubts(finding)]
    return card(
        summary=_summary(summary),
        indicator="info",
        source=source(knowledge, finding.rule),
        detail=compose([first, why, source_line], notes, DETAIL_LIMIT),
        suggestions=suggestions,
        links=_links(knowledge, finding),
        extension=_extension(knowledge, finding, expectedDose=expected.describe(),
                             expectedDays=list(finding.expected_days) or None),
    )


_OFF_DAYS = re.compile(r"doses on cycle days ([\d, ]+), outside the regimen's days")


def _off_days(note: str) -> str:
    """ "doses on cycle days 28, outside the regimen's days" (rules/dexamethasone.py) as "day 28 is not a
    dexamethasone day"."""
    found = _OFF_DAYS.fullmatch(note)
    if not found:
        return plain(note)
    days = found.group(1).strip().rstrip(",")
    if "," in days:
        return f"days {days} are not dexamethasone days"
    return f"day {days} is not a dexamethasone day"


def _bands(clock: CycleClock | None, cycle: int | None) -> str:
    return dose_text(_regimen_doses(clock, cycle))


# --- could not verify ----------------------------------------------------------------------------------

# What the rules could not tell (`DexFinding.missing`, rules/dexamethasone.py), in words; anything else is
# shown through `plain`.
MISSING_WORDS = {
    "arm unknown": "the study arm is not known",
    "cycle 1 day 1 unknown": "the start of cycle 1 is not in the record",
    "regimen unknown": "the regimen is not in the record",
    "cycle of the order's first day unclear": "the cycle of the order's first day is unclear",
    "cycle of the order's last day unclear": "the cycle of the order's last day is unclear",
    "the order's last day is not stated": "the order's last day is not stated",
    "dose not checked, age unknown": "the dose depends on age and the birth date is not recorded",
    "dose not checked, regimen unknown": "the possible regimens give different doses",
    "dose not readable": "the dose could not be read",
}
_DOSE_MISSING = frozenset(m for m in MISSING_WORDS if m.startswith("dose"))


def _missing_words(finding: DexFinding) -> list[str]:
    return [MISSING_WORDS.get(m, plain(m)) for m in finding.missing] or ["the record does not say"]


def _stop_cycle_b(knowledge: Knowledge) -> int | None:
    stops = {r.first_cycle_without(DEX) for r in knowledge.regimens if r.arm == "B"}
    return stops.pop() if len(stops) == 1 else None


def _check_first(finding: DexFinding, knowledge: Knowledge) -> str:
    """What the clinician can do, for what could not be checked."""
    if finding.missing and set(finding.missing) <= _DOSE_MISSING:
        doses = _regimen_doses(finding.clock, finding.cycle)
        regimen = _regimen_name(finding.clock)
        if doses and regimen and finding.expected_days:
            return (f"**Check the dose before signing:** {regimen} gives {dose_text(doses)} on days "
                    f"{_days(finding.expected_days)}.")
        if doses and regimen:
            return f"**Check the dose before signing:** {regimen} gives {dose_text(doses)}."
        return "**Check the dose against the regimen before signing.**"
    stop = _stop_cycle_b(knowledge)
    rule = f" Arm B gives no dexamethasone from cycle {stop}." if stop else ""
    if finding.enrolled is None or finding.enrolled.arm is None:
        return f"**Check the arm and cycle with the study team before signing.**{rule}"
    if "medication" in " ".join(finding.missing) or "could not be read" in " ".join(finding.missing):
        return f"**Check the order with the prescriber before signing.**{rule}"
    return f"**Check the cycle with the study team before signing.**{rule}"


def cannot_verify(finding: DexFinding, knowledge: Knowledge) -> dict[str, Any]:
    """The record cannot answer: what could not be checked, why, and what the clinician can do."""
    what = _missing_words(finding)
    why = [plain(n) for n in finding.notes]
    clock_doubts = set(finding.clock.doubts) if finding.clock else set()
    reasons = [w for w, n in zip(why, finding.notes, strict=True) if n not in clock_doubts]
    facts = finding.facts
    order = f" This order starts {_d(facts.start)}." if facts is not None else ""
    unreadable = "dose not readable" in finding.missing
    if facts is not None and facts.dose_mg is None and facts.dose_how and unreadable:
        order += f" It says {unit_words(facts.dose_how)}."
    told = sentence(f"Could not check: {'; '.join(what)}") + order
    arm = finding.enrolled.arm if finding.enrolled else None
    regimen = _regimen_name(finding.clock)
    known = ", ".join(p for p in (f"arm {arm.key}" if arm else None, regimen) if p)
    until = facts.start if facts is not None else date.max
    source_line = _from_line(finding.enrolled, finding.clock, until,
                             _order_start_how(finding) if facts is not None else None)
    if known and not source_line:
        source_line = sentence(f"Known: {known}")
    notes = [*reasons, *_route_notes(finding), *_doubts(finding)]
    dose_only = bool(finding.missing) and set(finding.missing) <= _DOSE_MISSING
    subject = "the dose of this dexamethasone order" if dose_only else "this dexamethasone order"
    summary = f"Could not check {subject}: {what[0]}"
    return card(
        summary=_summary(summary),
        indicator="info",
        source=source(knowledge, "cannot-verify"),
        detail=compose([_check_first(finding, knowledge), told, source_line], notes, DETAIL_LIMIT,
                       prefix="**Why:** "),
        links=_links(knowledge, finding),
        extension=_extension(knowledge, finding, missing=list(finding.missing) or None),
    )


def order_cards(
    findings: list[DexFinding], knowledge: Knowledge, raw_orders: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The cards of an order-select / order-sign call, warnings first."""
    cards = []
    for finding in findings:
        if finding.rule == "dex-after-cycle-2":
            cards.append(after_cycle_2(finding, knowledge))
        elif finding.rule == "dex-extends-past-cycle-2":
            cards.append(extends_past_cycle_2(finding, knowledge, raw_orders.get(finding.order_ref)))
        elif finding.rule == "dex-dose-mismatch":
            cards.append(dose_mismatch(finding, knowledge, raw_orders.get(finding.order_ref)))
        else:
            cards.append(cannot_verify(finding, knowledge))
    order = {"warning": 0, "info": 1}
    return sorted(cards, key=lambda c: order.get(c["indicator"], 2))


# --- patient-view: the trial status --------------------------------------------------------------------


def trial_status(situation: Situation, knowledge: Knowledge, today: date,
                 exposure: Sequence[Finding] = ()) -> dict[str, Any]:
    """patient-view, patient on study treatment: what to order, the arm, regimen, cycle today, the sources;
    `exposure`: what the record already shows against the arm (rules/exposure.py `chart_findings`), said
    first because it asks the clinician to tell the study team."""
    enrolled, clock = situation.enrolled, situation.clock
    nct = knowledge.study.nct_id
    arm = enrolled.arm
    regimen = _regimen_name(clock)
    where = f"cycle {situation.cycle} day {situation.cycle_day}" if situation.cycle else "cycle unknown"
    named = ", ".join(p for p in (f"arm {arm.key}" if arm else None, regimen, where) if p)
    problems = [plain(p) for p in (clock.problems if clock else ())]
    if arm is None:
        stop = _stop_cycle_b(knowledge)
        summary = f"{nct}: on study, arm not recorded — could not verify the dexamethasone plan"
        first = (f"**Check the arm with the study team before ordering dexamethasone:** arm B gives none "
                 f"from cycle {stop}.")
        why = sentence(plain(enrolled.problems[0]) if enrolled.problems else "the study record names no arm")
    elif arm.key == "B":
        stop, stop_date = situation.stop_cycle, situation.stop_date
        if stop_date is None and situation.cycle is not None and stop is not None and situation.cycle >= stop:
            plan = f"no dexamethasone since cycle {stop}"
            first = f"**Do not order dexamethasone:** arm B gives none from cycle {stop}."
        elif stop_date is None:
            plan = f"none from cycle {stop}"
            first = (f"**No dexamethasone from cycle {stop};** check with the study team the day cycle "
                     f"{stop} begins.")
        elif today >= stop_date:
            plan = f"no dexamethasone since {stop_date.isoformat()}"
            first = (f"**Do not order dexamethasone:** arm B gives none since cycle {stop} began on "
                     f"{stop_date.isoformat()}.")
        else:
            last = stop_date - timedelta(days=1)
            plan = f"dexamethasone until {last.isoformat()}, none from cycle {stop}"
            first = (f"**Dexamethasone until {last.isoformat()},** the last day of cycle {stop - 1}: none "
                     f"from cycle {stop}, which begins {stop_date.isoformat()}.")
        summary = f"{nct} {named}: {plan}"
        why = sentence(f"Arm B, {regimen or 'regimen unknown'}, {where} today")
    else:
        expected = _arm_a_plan(situation)
        plan = f"dexamethasone {expected}" if expected else "dexamethasone in every cycle until progression"
        summary = f"{nct} {named}: {plan}"
        first = f"**Dexamethasone as the regimen gives it:** {expected or 'every cycle'}, until progression."
        why = sentence(f"Arm A, {regimen or 'regimen unknown'}, {where} today")
    if situation.cycle is None and arm is not None:
        why += " " + sentence("Could not tell the cycle: " + _no_cycle(clock, problems, today))
    evidence = [enrolled.reference, *(clock.evidence if clock else ())]
    found = [f"**In the record:** {finding.text}." for finding in exposure[:1]]
    detail = compose([*found, first, why, _from_line(enrolled, clock, today)],
                     [*problems[1:], *_doubts(situation)], DETAIL_LIMIT)
    return card(
        summary=_summary(summary),
        indicator="info",
        source=source(knowledge, "trial-status"),
        detail=detail,
        links=_links(knowledge, situation),
        extension=dexfree_extension(
            knowledge,
            "trial-status",
            evidence,
            arm=arm.key if arm else None,
            regimen=clock.regimen.key if clock and clock.regimen else None,
            cycle=situation.cycle,
            cycleDay=situation.cycle_day,
            doubts=[*(clock.problems if clock else ()), *enrolled.problems, *_full_doubts(situation)] or None,
        ),
    )


def enrolment_unverified(doubt: EnrolmentDoubt, knowledge: Knowledge,
                         patient_reference: str) -> dict[str, Any]:
    """patient-view, no readable enrolment in the study but a ResearchSubject that may be it: whether the
    patient is on study (and so in which arm) could not be verified. Said instead of the trial status,
    which it would need, and of the eligibility card, which would screen a patient who may be enrolled."""
    nct = knowledge.study.nct_id
    what = [plain(m) for m in doubt.missing]
    stop = _stop_cycle_b(knowledge)
    # Without one stop cycle (the arm B regimens of a site's adaptations disagree) no number is given.
    rule = f":** arm B gives none from cycle {stop}." if stop else ".**"
    first = f"**Check the patient's enrolment with the study team before ordering dexamethasone{rule}"
    return card(
        summary=_summary(f"Could not check whether the patient is on {nct}: {what[0]}"),
        indicator="info",
        source=source(knowledge, "cannot-verify"),
        detail=compose([first, sentence(f"Could not check: {'; '.join(what)}")],
                       [plain(n) for n in doubt.notes], DETAIL_LIMIT, prefix="**Why:** "),
        links=_links(knowledge, None),
        # The patient, whose ResearchSubjects these are: one that is not valid FHIR R4 has no reference.
        extension=dexfree_extension(knowledge, "cannot-verify", (*doubt.evidence, patient_reference),
                                    missing=list(doubt.missing)),
    )


def _no_cycle(clock: CycleClock | None, problems: list[str], today: date) -> str:
    """Why today has no cycle: the clock's problem, the date's own doubt, or what is missing."""
    if problems:
        return problems[0]
    unclear = clock.unclear(today) if clock else None
    if unclear:
        return plain(unclear)
    if clock is None or clock.c1d1 is None:
        return "the start of cycle 1 is not in the record"
    return "the regimen is not in the record"


def _arm_a_plan(situation: Situation) -> str | None:
    clock = situation.clock
    if not clock or not clock.regimen or not situation.cycle:
        return None
    block = clock.regimen.block(situation.cycle)
    action_ = block.drug(DEX) if block else None
    if action_ is None:
        return None
    return f"{dose_text(action_.options)} on days {_days(action_.days)}"


def dose_text(options: tuple[DoseOption, ...]) -> str:
    """ "40 mg under 75, 20 mg from 75" for doses by age band; the dose alone otherwise."""
    if len(options) == 1:
        return options[0].describe()
    parts = []
    for option in options:
        if option.age_low is not None:
            parts.append(f"{option.describe()} from {option.age_low}")
        elif option.age_high is not None:
            parts.append(f"{option.describe()} under {option.age_high + 1}")
    return ", ".join(parts)

