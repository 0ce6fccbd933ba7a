"""Cards of the dexamethasone rules and the trial-status card: short summaries, evidence in the detail."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from cds_service.cards.common import (
    artifact_link,
    dexfree_extension,
    override_reasons,
    protocol_link,
    source,
)
from cds_service.hooks.response import action, card, suggestion
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import DoseOption
from cds_service.rules.dexamethasone import DOSE_TOLERANCE_MG, DexFinding, Situation, last_dex_day
from cds_service.rules.exposure import Finding


def _d(day: date | None) -> str:
    return day.isoformat() if day else "unknown"


def _arm_line(finding: DexFinding | Situation, knowledge: Knowledge) -> str:
    enrolled = finding.enrolled
    arm = enrolled.arm
    said = f'{enrolled.arm_element} "{enrolled.arm_text}"' if enrolled.arm_text else "no arm"
    if arm is None:
        return f"**Arm:** unknown — {enrolled.reference} ({said})."
    return (
        f"**Arm:** {arm.key}, {arm.name}, of {knowledge.study.nct_id} — {enrolled.reference} ({said}, status "
        f"{enrolled.status})."
    )


def _clock_lines(finding: DexFinding | Situation) -> list[str]:
    clock = finding.clock
    if clock is None:
        return []
    regimen = clock.regimen.key if clock.regimen else "not known"
    lines = [f"**Regimen:** {regimen} — {clock.regimen_how}."]
    if clock.c1d1:
        lines.append(
            f"**Cycle 1 day 1:** {_d(clock.c1d1)} — from {clock.c1d1_how}; cycles counted with the "
            "regimen's cycle lengths, each cycle from its given day-1 isatuximab when recorded."
        )
    lines += [f"**Doubt:** {doubt}." for doubt in clock.doubts]
    return lines


def _order_line(finding: DexFinding) -> str:
    facts = finding.facts
    dose = f", {facts.dose_how}" if facts.dose_how else ""
    if facts.open_ended:
        when = f"from {_d(facts.start)} (from {facts.start_how}), with no end"
    elif facts.end and facts.end != facts.start:
        when = f"from {_d(facts.start)} (from {facts.start_how}) until {_d(facts.end)} (from {facts.end_how})"
    else:
        when = f"on {_d(facts.start)} (from {facts.start_how})"
    line = f"**Order:** {facts.label}{dose} ({facts.reference}), {when}; {facts.route_how}."
    if facts.route_doubt:
        line += f"\n\n**Route unclear:** {facts.route_doubt}; check the route with the prescriber."
    return line


def _cycles_with_dex(stop: int | None) -> str:
    if stop is None:
        return "every cycle"
    return "cycles 1 and 2" if stop == 3 else f"cycles 1 to {stop - 1}"


def _links(knowledge: Knowledge, finding: DexFinding | Situation) -> list[dict[str, Any]]:
    links = [protocol_link(knowledge)]
    regimen = finding.clock.regimen if finding.clock else None
    if regimen:
        links.append(
            artifact_link(f"{regimen.key} regimen, arm {regimen.arm} (PlanDefinition)", regimen.canonical)
        )
    else:
        links.append(
            artifact_link(f"{knowledge.study.nct_id} protocol (PlanDefinition)", knowledge.study.protocol_url)
        )
    return links


def _extension(knowledge: Knowledge, finding: DexFinding) -> dict[str, Any]:
    return dexfree_extension(
        knowledge,
        finding.rule,
        finding.evidence,
        arm=finding.arm,
        regimen=finding.regimen,
        cycle=finding.cycle,
        cycleDay=finding.cycle_day,
        orderDate=finding.facts.start if finding.facts else None,
    )


def _premedication_line(knowledge: Knowledge) -> str:
    reason = next(r for r in knowledge.override_reasons if r.code == "premedication-isatuximab")
    return (
        "**Isatuximab infusion day:** this dose may be premedication for the infusion. The protocol summary "
        "does not say how arm B premedicates after cycle 2: decide with the investigator; "
        f'"{reason.display}" is an override reason.'
    )


def _arm_b_warning(
    finding: DexFinding,
    knowledge: Knowledge,
    summary: str,
    detail: list[str],
    suggestions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The two arm B warnings share everything but their text and suggestion."""
    return card(
        summary=summary,
        indicator="warning",
        source=source(knowledge, finding.rule),
        detail="\n\n".join(detail),
        suggestions=suggestions,
        override_reasons=override_reasons(knowledge),
        links=_links(knowledge, finding),
        extension=_extension(knowledge, finding),
    )


def after_cycle_2(finding: DexFinding, knowledge: Knowledge) -> dict[str, Any]:
    """Arm B, the order starts in a cycle without dexamethasone: warn, offer to remove it."""
    stop = finding.stop_cycle
    detail = [
        _order_line(finding),
        _arm_line(finding, knowledge) + f" In arm B dexamethasone is given in {_cycles_with_dex(stop)} only.",
        *_clock_lines(finding),
        f"**Cycle of the order:** cycle {finding.cycle}, day {finding.cycle_day} "
        + (f"(cycle {stop} began {_d(finding.stop_date)})." if finding.stop_date
           else f"(a cycle was delayed: the day cycle {stop} began is not in the record)."),
    ]
    if finding.infusion_day:
        detail.append(_premedication_line(knowledge))
    remove = action(
        "delete", f"Remove the draft dexamethasone order {finding.order_ref}", resource_id=finding.order_ref
    )
    summary = (
        f"Arm B of {knowledge.study.nct_id}: no dexamethasone from cycle {stop} — this order "
        f"starts in cycle {finding.cycle}, day {finding.cycle_day}"
    )
    return _arm_b_warning(
        finding,
        knowledge,
        summary,
        detail,
        [suggestion("Remove this dexamethasone order", [remove], recommended=True)],
    )


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
            dispense["expectedSupplyDuration"] = {
                "value": days,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
    return order


def _starts(finding: DexFinding) -> str:
    if finding.cycle is None:
        c1d1 = finding.clock.c1d1 if finding.clock else None
        return f"on {_d(finding.facts.start)}, before cycle 1 day 1 ({_d(c1d1)}),"
    return f"in cycle {finding.cycle}, day {finding.cycle_day}"


def extends_past_cycle_2(
    finding: DexFinding, knowledge: Knowledge, raw_order: dict[str, Any] | None
) -> dict[str, Any]:
    """Arm B, the order would run into the first cycle without dexamethasone: warn, offer to shorten it."""
    last = last_dex_day(finding)
    facts = finding.facts
    runs = "has no end" if facts.open_ended else f"runs until {_d(facts.end)} (cycle {finding.end_cycle})"
    detail = [
        _order_line(finding),
        _arm_line(finding, knowledge) + f" In arm B dexamethasone is given in "
        f"{_cycles_with_dex(finding.stop_cycle)} only.",
        *_clock_lines(finding),
        f"**Cycle:** the order starts {_starts(finding)} and {runs}; cycle "
        f"{finding.stop_cycle} begins {_d(finding.stop_date)}, so the last day with dexamethasone is "
        f"{_d(last)}.",
    ]
    suggestions = []
    if raw_order is not None and last is not None and last >= facts.start:
        update = action(
            "update",
            f"End the order on {_d(last)}, the last day of cycle {finding.stop_cycle - 1}, without refills",
            resource=_shortened(raw_order, facts.start, last),
        )
        suggestions.append(suggestion(f"End it on {_d(last)}", [update], recommended=True))
    summary = (
        f"Arm B of {knowledge.study.nct_id}: this dexamethasone order runs into cycle "
        f"{finding.stop_cycle} — end it by {_d(last)}"
    )
    return _arm_b_warning(finding, knowledge, summary, detail, suggestions)


def dose_mismatch(finding: DexFinding, knowledge: Knowledge) -> dict[str, Any]:
    """Any arm: dose or days differ from the regimen for the patient's age band."""
    expected = finding.expected
    days = ", ".join(str(d) for d in finding.expected_days)
    regimen = finding.clock.regimen.key if finding.clock and finding.clock.regimen else "the regimen"
    age = f" at age {finding.age}" if finding.age is not None else ""
    ordered = finding.facts.dose_how or "a dose"
    detail = [
        _order_line(finding),
        f"**Expected:** {regimen} gives dexamethasone {expected.describe()}{age} on days {days} of cycle "
        f"{finding.cycle} ({expected.text}).",
        *[f"**Days:** {note}." for note in finding.notes],
        _arm_line(finding, knowledge),
        *_clock_lines(finding),
    ]
    what = "dose" if abs((finding.facts.dose_mg or 0) - expected.value) > DOSE_TOLERANCE_MG else "days"
    return card(
        summary=f"Dexamethasone {what} differs from {regimen}: expected {expected.describe()} on days "
        f"{days}, ordered {ordered}",
        indicator="info",
        source=source(knowledge, finding.rule),
        detail="\n\n".join(detail),
        links=_links(knowledge, finding),
        extension={
            "dexfree": {**_extension(knowledge, finding)["dexfree"], "expectedDose": expected.describe()}
        },
    )


def cannot_verify(finding: DexFinding, knowledge: Knowledge) -> dict[str, Any]:
    """The record cannot answer: say exactly what is missing, never stay silent."""
    missing = "; ".join(finding.missing) or "the record does not say"
    detail = []
    if finding.facts is not None:
        detail.append(_order_line(finding))
    detail.append(f"**Could not verify:** {missing}.")
    detail += [f"**Why:** {note}." for note in finding.notes]
    if finding.enrolled is not None:
        detail.append(_arm_line(finding, knowledge))
        detail += _clock_lines(finding)
    detail.append(
        "Check the arm and cycle with the study team before giving dexamethasone: in arm B "
        "(dexamethasone-free) none is given from cycle 3."
    )
    first = finding.missing[0] if finding.missing else "record incomplete"
    return card(
        summary=_fit(f"Could not verify the {knowledge.study.nct_id} dexamethasone rule: {first}"),
        indicator="info",
        source=source(knowledge, "cannot-verify"),
        detail="\n\n".join(detail),
        links=_links(knowledge, finding),
        extension=_extension(knowledge, finding),
    )


def _fit(summary: str, limit: int = 139) -> str:
    """Cut at a word boundary: the full text is in the detail."""
    if len(summary) <= limit:
        return summary
    return summary[: limit - 1].rsplit(" ", 1)[0] + "…"


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
            cards.append(dose_mismatch(finding, knowledge))
        else:
            cards.append(cannot_verify(finding, knowledge))
    order = {"warning": 0, "info": 1}
    return sorted(cards, key=lambda c: order.get(c["indicator"], 2))


def trial_status(situation: Situation, knowledge: Knowledge, today: date,
                 exposure: Sequence[Finding] = ()) -> dict[str, Any]:
    """patient-view, patient on study treatment: arm, regimen, cycle today and the dexamethasone plan;
    `exposure`: what the record shows against the arm (rules/exposure.py `chart_findings`)."""
    enrolled, clock = situation.enrolled, situation.clock
    nct = knowledge.study.nct_id
    arm = enrolled.arm
    detail = [_arm_line(situation, knowledge), *_clock_lines(situation)]
    regimen = clock.regimen.key if clock and clock.regimen else None
    where = f"cycle {situation.cycle} day {situation.cycle_day}" if situation.cycle else "cycle unknown"
    if arm is None:
        summary = f"{nct}: on study, arm not recorded — could not verify the dexamethasone plan"
        plan = "unknown until the arm is recorded (arm B: none from cycle 3)"
    elif arm.key == "B":
        stop, stop_date = situation.stop_cycle, situation.stop_date
        if stop_date is None:
            plan = f"none from cycle {stop}; the date of cycle {stop} day 1 is unknown"
        elif today >= stop_date:
            plan = f"no dexamethasone since {_d(stop_date)} (cycle {stop} day 1)"
        else:
            plan = f"dexamethasone until {_d(stop_date - timedelta(days=1))}, none from cycle {stop}"
        summary = f"{nct} arm B (dexamethasone-free){', ' + regimen if regimen else ''}, {where}: {plan}"
    else:
        expected = _arm_a_plan(situation)
        plan = f"dexamethasone {expected}" if expected else "dexamethasone in every cycle until progression"
        summary = f"{nct} arm A (dexamethasone){', ' + regimen if regimen else ''}, {where}: {plan}"
    detail.append(f"**Dexamethasone plan:** {plan}.")
    detail += [f"**In the record:** {finding.text}." for finding in exposure[:1]]
    if situation.cycle is None and arm is not None:
        detail.append(
            "**Could not verify the cycle:** "
            + (
                "; ".join(clock.problems)
                if clock and clock.problems
                else "cycle 1 day 1 or the regimen is unknown"
            )
            + "."
        )
    evidence = [enrolled.reference, *(clock.evidence if clock else ())]
    return card(
        summary=_fit(summary),
        indicator="info",
        source=source(knowledge, "trial-status"),
        detail="\n\n".join(detail),
        links=_links(knowledge, situation),
        extension=dexfree_extension(
            knowledge,
            "trial-status",
            evidence,
            arm=arm.key if arm else None,
            regimen=regimen,
            cycle=situation.cycle,
            cycleDay=situation.cycle_day,
        ),
    )


def _arm_a_plan(situation: Situation) -> str | None:
    clock = situation.clock
    if not clock or not clock.regimen or not situation.cycle:
        return None
    block = clock.regimen.block(situation.cycle)
    action_ = block.drug("dexamethasone") if block else None
    if action_ is None:
        return None
    return f"{dose_text(action_.options)} on days {', '.join(str(d) for d in action_.days)}"


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
