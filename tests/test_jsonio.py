"""jsonio reads and writes JSON as the standard library does, faster: every value alike, every refusal alike."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service import jsonio
from cds_service.hooks.request import read_json_body

# JSON values as a hook body holds them: any text (non-ASCII, escapes, controls), 64-bit integers,
# finite floats, nesting.
_SCALARS = st.none() | st.booleans() | st.text() | st.integers(-(2**63), 2**64 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@settings(max_examples=400, derandomize=True)
@given(_VALUES, st.sampled_from([{}, {"indent": 2}, {"ensure_ascii": False}, {"separators": (",", ":")}]))
def test_any_text_the_standard_library_writes_is_read_alike(value, style):
    text = json.dumps(value, **style).encode("utf-8")
    assert _same(jsonio.loads(text), json.loads(text))


@settings(max_examples=400, derandomize=True)
@given(_VALUES)
def test_what_is_written_reads_back_as_the_same_value(value):
    assert _same(json.loads(jsonio.dumps(value)), value)


@pytest.mark.parametrize("text", [
    b"\xef\xbb\xbf{\"a\": 1}",  # a UTF-8 byte-order mark
    json.dumps({"a": "\u00e9"}).encode("utf-16"),
    json.dumps({"a": 1}).encode("utf-32"),
    b"[NaN, Infinity, -Infinity]",
    b'"\\ud800"',  # a lone surrogate
    b"1e400",
    b"[" * 1100 + b"]" * 1100,  # past orjson's nesting, within the standard library's
], ids=["bom", "utf-16", "utf-32", "nan", "lone-surrogate", "overflow", "deep"])
def test_texts_orjson_refuses_are_read_by_the_standard_library(text):
    try:
        expected = json.loads(text)
    except RecursionError:
        with pytest.raises(RecursionError):
            jsonio.loads(text)
        return
    assert _same(jsonio.loads(text), expected)


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff\xfe\xc3", b"{'a': 1}", b"[1,]", b"01"])
def test_what_is_not_json_is_refused_as_by_the_standard_library(text):
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        json.loads(text)
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        jsonio.loads(text)


def test_an_integer_beyond_64_bits_is_read_as_the_nearest_float():
    assert jsonio.loads(b"-9223372036854775809") == -9223372036854775809.0
    assert isinstance(jsonio.loads(b"123456789012345678901234567890"), float)


def test_a_hook_body_with_a_byte_order_mark_or_in_utf_16_is_still_accepted():
    body = {"hook": "order-sign", "context": {"patientId": "p\u00e9"}}
    for data in (b"\xef\xbb\xbf" + json.dumps(body).encode(), json.dumps(body).encode("utf-16")):
        assert read_json_body(data, "application/json") == body


def test_writing_uses_utf_8_and_no_spaces():
    assert jsonio.dumps({"summary": "Waldenstr\u00f6m", "n": [1, 2.5]}) == '{"summary":"Waldenstr\u00f6m","n":[1,2.5]}'


def test_values_orjson_cannot_write_are_written_by_the_standard_library():
    assert json.loads(jsonio.dumps({1: "a", "big": 2**70})) == {"1": "a", "big": 2**70}


def test_unknown_objects_go_through_default():
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    assert jsonio.dumps({"x": Opaque()}, default=str) == '{"x":"opaque"}'
    with pytest.raises(TypeError):
        jsonio.dumps({"x": Opaque()})


# Scalars that different writers confuse: null and NaN, 1 and 1.0 and true, 0.0 and -0.0, a number and its text.
_LOOK_ALIKES = [None, math.nan, math.inf, -math.inf, 0, 0.0, -0.0, 1, 1.0, True, False, "1", "", "null",
                "\ud800", 2**70, 2**63, [], {}]
_ALIKE_VALUES = st.recursive(st.sampled_from(_LOOK_ALIKES), lambda inner: st.lists(inner, max_size=3)
                             | st.dictionaries(st.sampled_from(["a", "b", "null"]), inner, max_size=3),
                             max_leaves=8)


def _with_one_leaf(value, draw):
    """`value` with one of its leaves (or itself) replaced by a drawn look-alike."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: _with_one_leaf(value[key], draw)}
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], _with_one_leaf(value[index], draw), *value[index + 1:]]
    return draw(st.sampled_from(_LOOK_ALIKES))


@settings(max_examples=1000, derandomize=True)
@given(_ALIKE_VALUES, st.data())
def test_the_exact_text_of_two_values_is_the_same_only_when_they_are(value, data):
    other = _with_one_leaf(value, data.draw)
    one, two = jsonio.exact_text(value), jsonio.exact_text(other)
    if one is not None and one == two:
        assert _same(value, other)
    assert one == jsonio.exact_text(json.loads(json.dumps(value))) or one is None


@settings(max_examples=300, derandomize=True)
@given(_VALUES)
def test_the_exact_text_of_a_value_without_null_is_its_json(value):
    text = jsonio.exact_text(value)
    if "null" not in json.dumps(value, ensure_ascii=False):
        assert text is not None and _same(json.loads(text), value)
    else:
        assert text is None


@pytest.mark.parametrize("value", [
    {"a": None}, [math.nan], {"x": math.inf}, "\ud800", 2**64, {1: "a"}, {"at": date(2026, 1, 1)},
    {"note": "null"}, b"bytes",
], ids=["null", "nan", "infinity", "lone-surrogate", "beyond-64-bits", "key-not-text", "date", "text-null",
        "bytes"])
def test_values_without_an_exact_text_are_refused(value):
    assert jsonio.exact_text(value) is None


@pytest.mark.parametrize("value", [{"a": None}, [math.nan], {"x": -math.inf}])
def test_a_json_text_with_null_is_written_but_not_exact(value):
    text = jsonio.json_text(value)
    assert text is not None and b"null" in text and not jsonio.is_exact(text)
    assert jsonio.is_exact(jsonio.json_text({"a": "full"}))


@pytest.mark.parametrize("value", [{"text": "full dose"}, {"text": "nul", "b": "l"}, ["nu", "ll"], {"ull": 1}])
def test_texts_that_only_look_partly_like_null_have_an_exact_text(value):
    assert jsonio.exact_text(value) == json.dumps(value, separators=(",", ":")).encode()


def _same(a, b) -> bool:
    """Equal, with -0.0 told from 0.0 and types kept (1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b
