"""Override reasons sent back without their display (or system) are named from the service's own list."""

from __future__ import annotations

import pytest

from cds_service.hooks.feedback import ReasonCatalogue, parse_feedback
from cds_service.knowledge.model import Coding

OURS = "https://dexfree.example.org/fhir/CodeSystem/dexfree"
OTHER = "https://other.example/reasons"
CATALOGUE = ReasonCatalogue.of([Coding(OURS, "premedication", "Premedication"),
                                Coding(OURS, "other-indication", "Other indication"),
                                Coding(OTHER, "other-indication", "Their other indication")])


def entry(reason: dict | None) -> dict:
    item = {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"}
    if reason is not None:
        item["overrideReason"] = {"reason": reason}
    return {"feedback": [item]}


@pytest.mark.parametrize(("reason", "expected"), [
    ({"system": OURS, "code": "premedication"}, (OURS, "premedication", "Premedication")),
    ({"code": "premedication"}, (OURS, "premedication", "Premedication")),
    ({"system": OURS, "code": "premedication", "display": "Prémédication"}, (OURS, "premedication", "Prémédication")),
    # A code two systems share, sent without its system: which one is meant cannot be told.
    ({"code": "other-indication"}, (None, "other-indication", None)),
    ({"system": OTHER, "code": "other-indication"}, (OTHER, "other-indication", "Their other indication")),
    ({"system": "https://elsewhere.example", "code": "premedication"},
     ("https://elsewhere.example", "premedication", None)),
    ({"display": "Premedication"}, (None, None, "Premedication")),
    (None, (None, None, None)),
])
def test_reasons_are_completed_only_from_an_unambiguous_entry_of_the_catalogue(reason, expected):
    (parsed,) = parse_feedback(entry(reason), CATALOGUE)
    assert (parsed.override_system, parsed.override_code, parsed.override_display) == expected


def test_without_a_catalogue_the_reason_is_kept_as_sent():
    (parsed,) = parse_feedback(entry({"code": "premedication"}))
    assert (parsed.override_system, parsed.override_code, parsed.override_display) == (None, "premedication", None)
