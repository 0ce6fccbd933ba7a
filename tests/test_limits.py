"""Each request limit answers with a clear error at its boundary, and no sooner."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.hooks.request import MAX_JSON_DEPTH, json_depth, json_text_depth
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.spec import check_operation_outcome

SIGN = "/cds-services/dex-free-order-sign"


def client_with(**settings):
    return create_app(runtime=Runtime(config=Config(**settings), clock=lambda: FIXED_NOW)).test_client()


def padded_to(size: int) -> bytes:
    body = load_fixture("requests/spec-order-sign.json")
    body["padding"] = ""
    base = len(json.dumps(body).encode())
    body["padding"] = "x" * (size - base)
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


def test_a_body_of_exactly_the_limit_is_accepted_one_byte_more_is_a_413():
    client = client_with(max_body_bytes=8192)
    assert client.post(SIGN, data=padded_to(8192), content_type="application/json").status_code == 200
    response = client.post(SIGN, data=padded_to(8193), content_type="application/json")
    assert response.status_code == 413
    issue = check_operation_outcome(response.get_json())
    assert issue["code"] == "too-costly" and "larger than 8192 bytes" in issue["diagnostics"]


def test_draft_orders_count_towards_the_resource_limit():
    body = load_fixture("requests/spec-order-sign.json")
    order = body["context"]["draftOrders"]["entry"][0]
    body["context"]["draftOrders"]["entry"] = [order] * 4
    # 4 draft orders + 5 prefetch values (patient and four empty searches) = 9 resources.
    assert client_with(max_resources=9).post(SIGN, json=body).status_code == 200
    response = client_with(max_resources=8).post(SIGN, json=body)
    assert response.status_code == 413
    assert "more than 8 FHIR resources" in check_operation_outcome(response.get_json())["diagnostics"]


def nested_body(depth: int) -> dict:
    body = load_fixture("requests/spec-order-sign.json")
    value: object = "x"
    for _ in range(depth - 3):  # the body, prefetch and patient objects are three levels
        value = [value]
    body["prefetch"]["patient"]["vendorNesting"] = value
    return body


def test_json_depth_counts_arrays_and_objects():
    assert json_depth(1) == 0
    assert json_depth({"a": [1, {"b": {}}]}) == 4  # the empty object is a level too
    assert json_depth(nested_body(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH


# Strings made of what could fool a reading of the text: brackets, quotes, backslashes, escapes, non-ASCII.
_TRICKY = st.lists(st.sampled_from([*'[]{}"\\/ x\u00e9\u20ac\n\t', "\\u005b", '\\"']), max_size=8).map("".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, derandomize=True)
@given(value=JSON_VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_depth_read_off_the_text_is_the_depth_of_the_value(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert json_text_depth(text.encode()) == json_depth(value)
    assert json_text_depth(text.encode("utf-16")) == json_depth(value)


@pytest.mark.parametrize("text", [
    '{"a":"{","b":""}', '["]","","["]', '[["",""],"}}}}"]', '{"":"","[":[[]]}', '["{[", [""], "]"]',
    '[[[""]],"{"]', '["", "", "[[[["]', '["[]"]', '{"a":"{}","b":"","c":"[[]]"}',
], ids=["bracket-then-empty", "both-sides", "closers-after-pairs", "empty-key", "nested-between",
        "deep-then-bracket", "pairs-then-openers", "balanced-inside", "balanced-among-empty"])
def test_a_string_holding_brackets_beside_strings_without_them_counts_no_bracket(text):
    # The pairs of adjacent quotes are counted left to right: a string holding a bracket must never be
    # taken for pairs of bracket-free ones.
    assert json_text_depth(text.encode()) == json_depth(json.loads(text))


def test_the_depth_read_off_the_text_stops_past_the_limit():
    deep = json.dumps(nested_body(MAX_JSON_DEPTH + 50)).encode()
    assert json_text_depth(deep, MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1
    assert json_text_depth(deep) == MAX_JSON_DEPTH + 50


def test_json_nested_to_the_limit_is_read_deeper_is_a_413():
    client = client_with()
    assert client.post(SIGN, json=nested_body(MAX_JSON_DEPTH)).status_code == 200
    response = client.post(SIGN, json=nested_body(MAX_JSON_DEPTH + 1))
    assert response.status_code == 413
    issue = check_operation_outcome(response.get_json())
    assert issue["diagnostics"] == f"The request body is nested deeper than {MAX_JSON_DEPTH} levels"


def test_deeper_than_the_json_parser_goes_is_a_400_not_a_crash():
    response = client_with().post(SIGN, data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert check_operation_outcome(response.get_json())["diagnostics"] == "The request body is not valid JSON"
