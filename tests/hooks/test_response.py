"""The response builder enforces the specification's rules on every card."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.hooks.response import (
    CardError,
    action,
    card,
    cds_response,
    coding,
    link,
    prune,
    suggestion,
)
from tests.spec import check_cds_response, empty_values

SOURCE = {"label": "Dex-Free CDS"}


def test_prune_drops_every_kind_of_empty_value_recursively():
    value = {"a": None, "b": "", "c": [], "d": {}, "e": [None, "", {}, {"x": None}], "f": {"g": {"h": []}},
             "k": 0, "l": False, "m": "x"}
    assert prune(value) == {"k": 0, "l": False, "m": "x"}


def _pruned(value):
    # The rule as the specification puts it, written plainly: the reference the fast prune is held to.
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, list | tuple):
        return [v for v in map(_pruned, value) if v not in (None, "", [], {})]
    return value


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.floats(allow_nan=False) | st.sampled_from(["", "x"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=20)


@settings(max_examples=300, derandomize=True)
@given(value=_VALUES)
def test_prune_keeps_exactly_what_is_not_empty(value):
    assert prune(value) == _pruned(value)


def test_empty_cards_array_is_the_one_empty_value_allowed():
    assert cds_response([]) == {"cards": []}


def test_card_gets_uuid_and_no_empty_fields():
    built = card(summary="S", indicator="info", source=SOURCE, detail="", links=[], override_reasons=[])
    assert set(built) == {"uuid", "summary", "indicator", "source"}
    check_cds_response(cds_response([built]))


def test_long_summary_is_shortened_below_140_characters():
    built = card(summary="x" * 300, indicator="warning", source=SOURCE)
    assert len(built["summary"]) == 139 and built["summary"].endswith("…")


def test_summary_of_exactly_139_characters_is_kept():
    assert card(summary="y" * 139, indicator="info", source=SOURCE)["summary"] == "y" * 139


def test_summary_whitespace_is_collapsed():
    assert card(summary="  two\n lines ", indicator="info", source=SOURCE)["summary"] == "two lines"


def test_suggestions_get_uuids_and_a_selection_behavior():
    sugg = suggestion("Remove the order", [action("delete", "Remove the dexamethasone order",
                                                  resource_id="MedicationRequest/1")])
    built = card(summary="S", indicator="warning", source=SOURCE, suggestions=[sugg])
    assert built["selectionBehavior"] == "at-most-one"
    assert built["suggestions"][0]["uuid"]
    check_cds_response(cds_response([built]))


def test_a_resource_in_an_action_is_pruned_with_the_card_it_goes_into():
    resource = {"resourceType": "MedicationRequest", "id": "dex-1", "note": [{"text": ""}], "reasonCode": None,
                "dosageInstruction": [{"text": "x", "route": {}}]}
    update = action("update", "End the order", resource=resource)
    built = card(summary="S", indicator="warning", source=SOURCE,
                 suggestions=[suggestion("End it", [update], recommended=None)])
    assert built["suggestions"][0]["actions"][0]["resource"] == {
        "resourceType": "MedicationRequest", "id": "dex-1", "dosageInstruction": [{"text": "x"}]}
    assert "isRecommended" not in built["suggestions"][0]
    assert not empty_values(cds_response([built]))


def test_selection_behavior_is_dropped_without_suggestions():
    assert "selectionBehavior" not in card(summary="S", indicator="info", source=SOURCE, selection_behavior="any")


def test_cds_response_completes_cards_built_by_hand():
    body = cds_response([{"summary": "S", "indicator": "info", "source": {"label": "L", "url": ""},
                          "suggestions": [{"label": "Do", "actions": [{"type": "delete", "description": "d",
                                                                       "resourceId": "X/1"}]}]}])
    check_cds_response(body)
    assert not empty_values(body)


def test_a_card_built_by_card_and_pointed_by_served_links_is_answered_as_if_pruned_again(knowledge):
    """cds_response does not prune a card `card` made again; the links the service points since stay valid."""
    from cds_service.cards.common import protocol_link, served_links

    built = card(summary="S", indicator="warning", source={**SOURCE, "url": knowledge.rule},
                 detail="", links=[protocol_link(knowledge)],
                 suggestions=[suggestion("Remove", [action("delete", "Remove it", resource_id="X/1")])],
                 extension={"dexfree": {"rule": "r", "evidence": ("X/1",), "missing": ()}})
    plain = served_links([dict(built)], knowledge, "https://cds.example.org")
    answered = cds_response(served_links([built], knowledge, "https://cds.example.org"))
    assert answered == cds_response(plain)
    assert not empty_values(answered)
    check_cds_response(answered)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"summary": "", "indicator": "info", "source": SOURCE}, "summary"),
    ({"summary": "S", "indicator": "urgent", "source": SOURCE}, "indicator"),
    ({"summary": "S", "indicator": "info", "source": {"url": "https://x"}}, "source.label"),
    ({"summary": "S", "indicator": "info", "source": SOURCE, "override_reasons": [{"code": "x"}]}, "override"),
    ({"summary": "S", "indicator": "info", "source": SOURCE, "links": [{"label": "l", "url": "u", "type": "web"}]},
     "link"),
    ({"summary": "S", "indicator": "info", "source": SOURCE,
      "suggestions": [{"label": "x", "actions": [{"type": "delete", "description": "d"}]}]}, "resourceId"),
    ({"summary": "S", "indicator": "info", "source": SOURCE,
      "suggestions": [{"label": "x", "actions": [{"type": "update", "description": "d"}]}]}, "resource"),
    ({"summary": "S", "indicator": "info", "source": SOURCE,
      "suggestions": [{"label": "x", "actions": [{"type": "replace", "description": "d"}]}]}, "action type"),
    ({"summary": "S", "indicator": "info", "source": SOURCE,
      "suggestions": [{"label": "", "actions": [{"type": "delete", "description": "d", "resourceId": "X/1"}]}]},
     "label"),
])
def test_cards_breaking_the_spec_are_refused(kwargs, message):
    with pytest.raises(CardError, match=message):
        card(**kwargs)


def test_link_and_coding_helpers():
    assert link("Protocol", "https://clinicaltrials.gov/study/NCT06561854") == {
        "label": "Protocol", "url": "https://clinicaltrials.gov/study/NCT06561854", "type": "absolute"}
    assert coding("http://x", "c") == {"system": "http://x", "code": "c"}
    with pytest.raises(CardError, match="appContext"):
        card(summary="S", indicator="info", source=SOURCE, links=[link("a", "https://a", "absolute", "{}")])
