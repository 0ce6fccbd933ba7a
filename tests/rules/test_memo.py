"""The cycle-clock memo answers as cycle_clock does: from the view it keys on, for the same input objects only."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.assemble import assemble_record, draft_record
from cds_service.fhir.parse import ParseCache
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.request import parse_hook_request
from cds_service.rules.cycles import cycle_clock
from cds_service.rules.enrolment import enrolment
from cds_service.rules.memo import ClockMemo, clock_view
from tests.rules.scenario import C1D1, call, care_plan, dex_order, research_subject
from tests.rules.test_cycle_clock import ROWS, STANDARD, course, record
from tests.services.test_no_card_because import BODIES, SERVICES

PARIS = ZoneInfo("Europe/Paris")


def _records() -> list[tuple[str, PatientRecord]]:
    """The cycle clock's own rows, and every hook body of the short-cut tables, assembled as a call does."""
    found = [(row[0], record(row[1] or research_subject(), *row[2])) for row in ROWS]
    for name, body in BODIES:
        request = parse_hook_request(body, body["hook"], SERVICES[body["hook"]])
        found.append((name, assemble_record(request, (), record=draft_record(request))))
    return found


RECORDS = _records()


def test_the_view_gives_the_whole_record_s_clock_and_so_does_the_memo(knowledge):
    memo, differ, clocks = ClockMemo(), [], 0
    for name, rec in RECORDS:
        enrolled = enrolment(rec, knowledge, PARIS)
        if enrolled is None or enrolled.arm is None:
            continue
        clocks += 1
        expected = cycle_clock(rec, knowledge, enrolled, PARIS)
        first, again = memo(rec, knowledge, enrolled, PARIS), memo(rec, knowledge, enrolled, PARIS)
        if not (cycle_clock(clock_view(rec), knowledge, enrolled, PARIS) == expected == first
                and again is first):
            differ.append(name)
    assert differ == []
    assert clocks > 100  # the tables reach the clock: the comparison is not vacuous
    assert memo.hits == clocks


def _history(parse, shift: int = 0, first_id: bool = True) -> PatientRecord:
    """The standard arm B patient, validated through `parse`; `shift` moves the first infusion."""
    infusions = course(*STANDARD)
    infusions[0]["effectiveDateTime"] = (C1D1 + timedelta(days=shift)).isoformat()
    if not first_id:  # then it is in no list of referenced resources, only in the record's part
        del infusions[0]["id"]
    body = call("order-sign", (dex_order(),), administrations=infusions, plans=(care_plan(),))
    request = parse_hook_request(body, "order-sign", SERVICES["order-sign"])
    return assemble_record(request, (), parse=parse, record=draft_record(request, parse))


def test_a_patient_s_calls_with_other_draft_orders_share_the_clock(knowledge):
    memo, cache = ClockMemo(), ParseCache(256)
    first = _history(cache.parse)
    second = _history(cache.parse)
    second.draft_orders = [cache.parse(dex_order(order_id="another", dose=20))]
    enrolled = enrolment(first, knowledge, PARIS)
    assert memo(second, knowledge, enrolled, PARIS) is memo(first, knowledge, enrolled, PARIS)
    assert (memo.hits, memo.misses) == (1, 1)


@pytest.mark.parametrize("first_id", [True, False], ids=["with ids", "an infusion without an id"])
def test_a_changed_history_or_equal_content_in_other_objects_is_computed_again(knowledge, first_id):
    memo, cache = ClockMemo(), ParseCache(256)
    usual = _history(cache.parse, first_id=first_id)
    enrolled = enrolment(usual, knowledge, PARIS)
    memo(usual, knowledge, enrolled, PARIS)
    moved = _history(cache.parse, shift=-1, first_id=first_id)  # one administration validated anew
    assert memo(moved, knowledge, enrolled, PARIS) == cycle_clock(moved, knowledge, enrolled, PARIS)
    same_content = _history(ParseCache(256).parse, first_id=first_id)  # equal models, other objects
    assert memo(same_content, knowledge, enrolled, PARIS) == cycle_clock(usual, knowledge, enrolled, PARIS)
    assert (memo.hits, memo.misses) == (0, 3)


def test_the_knowledge_every_field_of_the_enrolment_and_the_zone_are_in_the_key(knowledge):
    memo, cache = ClockMemo(), ParseCache(256)
    rec = _history(cache.parse)
    enrolled = enrolment(rec, knowledge, PARIS)
    usual = memo(rec, knowledge, enrolled, PARIS)
    later = dataclasses.replace(enrolled, enrolled_on=date(2026, 10, 1))
    assert memo(rec, knowledge, later, PARIS) == cycle_clock(rec, knowledge, later, PARIS) != usual
    memo(rec, knowledge, enrolled, ZoneInfo("Pacific/Kiritimati"))
    memo(rec, knowledge.for_site("site-a"), enrolled, PARIS)
    memo(rec, knowledge, enrolled, PARIS)
    assert (memo.hits, memo.misses) == (1, 4)


@pytest.mark.parametrize("site", [None, "site-a"])
def test_a_site_s_view_of_the_knowledge_is_one_object(knowledge, site):
    assert knowledge.for_site(site) is knowledge.for_site(site)
    assert (knowledge.for_site(site) is knowledge) == (site is None)
    assert knowledge.for_site("site-b") is not knowledge.for_site("site-a")


def test_the_memo_is_bounded_by_the_resources_it_keeps_alive(knowledge):
    cache = ParseCache(256)
    rec = _history(cache.parse)
    enrolled = enrolment(rec, knowledge, PARIS)
    held = 1 + len(rec.medication_requests) + len(rec.medication_administrations) + len(rec.care_plans) + \
        len(rec.referenced)
    too_small = ClockMemo(max_resources=held - 1)
    for _ in range(2):
        assert too_small(rec, knowledge, enrolled, PARIS) == cycle_clock(rec, knowledge, enrolled, PARIS)
    assert (too_small.hits, too_small.misses) == (0, 2)  # computed each time, never held
    one = ClockMemo(max_resources=held)
    moved = _history(cache.parse, shift=-1)
    for history in (rec, moved, rec):
        one(history, knowledge, enrolled, PARIS)
    assert (one.hits, one.misses) == (0, 3)  # room for one history: the second pushed the first out
