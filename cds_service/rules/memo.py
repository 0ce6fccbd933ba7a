"""Cycle clocks remembered across a patient's calls, by the identity of the resources they are read from.

An EHR calls the order hooks for the same patient again and again (order-select on each change of the
orders being written, then order-sign), with the same history each time. The parse cache
(fhir/parse.py) hands out the same validated model for the same content, so the history of such calls is
made of the same objects; the cycle clock, about a fifth of an arm B call's CPU, depends on the history
only (never on the draft orders), and is computed once for it.

Correctness does not rest on knowing what `cycle_clock` reads. It is given `clock_view(record)`, a record
holding only the parts below, and the key holds every input of that call: the identity of each resource
of the view, of the knowledge (a site's view is one object per site: `Knowledge.for_site`) and of each
field of the enrolment that is not a plain value, and of the zone. An entry keeps its inputs alive, so an
identity in a key cannot be taken by another object while the entry exists. Content that is equal but
not the same object misses (it is computed again, never confused). tests/rules/test_memo.py holds the
view to the whole record over the scenario tables, so a rule that starts reading another part fails there.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import fields
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from cachetools import LRUCache

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.cycles import CycleClock, cycle_clock
from cds_service.rules.enrolment import Enrolment

# What the memo may hold, counted in the resources its entries keep alive (each entry holds the view it was
# computed from): a history's kept medication resources, care plans and referenced resources, some twenty
# in the benchmark's record. The models are mostly those the parse and part caches hold too; alone, 20,000
# of them take about 60 MB.
CLOCK_MEMO_RESOURCES = 20_000


def clock_view(record: PatientRecord) -> PatientRecord:
    """The parts of a record the cycle clock is computed from: the history's medication requests and
    administrations, the care plans, and the resources they may refer to (never the draft orders)."""
    return PatientRecord(
        patient_id=record.patient_id,
        medication_requests=list(record.medication_requests),
        medication_administrations=list(record.medication_administrations),
        care_plans=list(record.care_plans),
        referenced=dict(record.referenced),
    )


class ClockMemo:
    """`cycle_clock`, computed once per distinct set of input objects (see the module docstring)."""

    def __init__(self, max_resources: int = CLOCK_MEMO_RESOURCES) -> None:
        self._entries: LRUCache[tuple[Any, ...], tuple[tuple[Any, ...], CycleClock, int]] = LRUCache(
            maxsize=max_resources, getsizeof=lambda entry: entry[2])
        self._max_resources = max_resources
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __call__(self, record: PatientRecord, knowledge: Knowledge, enrolled: Enrolment,
                 zone: ZoneInfo) -> CycleClock:
        """The cycle clock of `record` (as `cycle_clock(record, knowledge, enrolled, zone)`)."""
        view = clock_view(record)
        held: list[Any] = [view, knowledge, enrolled]
        key = (
            view.patient_id,
            tuple(map(id, view.medication_requests)),
            tuple(map(id, view.medication_administrations)),
            tuple(map(id, view.care_plans)),
            tuple(view.referenced),
            tuple(map(id, view.referenced.values())),
            id(knowledge),
            tuple(_token(getattr(enrolled, name), held) for name in _fields_of(type(enrolled))),
            zone,  # by identity (ZoneInfo keeps one object per zone name), held by the key
        )
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self.hits += 1
                return found[1]
            self.misses += 1
        clock = cycle_clock(view, knowledge, enrolled, zone)
        size = 1 + len(view.medication_requests) + len(view.medication_administrations) + \
            len(view.care_plans) + len(view.referenced)
        if size <= self._max_resources:
            with self._lock:
                # The inputs go with the clock: while the entry lives, no other object can take their ids.
                self._entries[key] = (tuple(held), clock, size)
        return clock


@functools.cache
def _fields_of(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def _token(value: Any, held: list[Any]) -> Any:
    """A plain value as itself; anything else (a model, an arm) by identity, held alive with the entry."""
    if value is None or isinstance(value, str | int | float | bool | date):
        return value
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return value
    held.append(value)
    return ("same object", id(value))
