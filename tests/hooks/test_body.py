"""read_hook_body reads a body as read_json_body does, every value, refusal and depth alike; a prefetch value
sent again is decoded once, and nothing a call does changes what it shares."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service import jsonio
from cds_service.errors import CdsError
from cds_service.hooks import body as body_module
from cds_service.hooks.body import SentParts, read_hook_body
from cds_service.hooks.request import MAX_JSON_DEPTH, read_json_body
from tests.conftest import load_fixture

_SCALARS = st.none() | st.booleans() | st.text(max_size=6) | st.integers(-(2**63), 2**64 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
_FIELDS = ("hook", "hookInstance", "fhirServer", "fhirAuthorization", "context", "extension")
# A top object as clients send it: CDS Hooks' fields with any values, sometimes a field it does not name,
# `prefetch` an object of any values, null, or something else.
_BODIES = st.fixed_dictionaries({}, optional={
    **{name: _VALUES for name in _FIELDS},
    "prefetch": st.dictionaries(st.sampled_from(["patient", "medicationRequests", "a", "b"]), _VALUES,
                                max_size=3) | st.none() | _VALUES,
    "unnamed": _VALUES,
}) | _VALUES
_STYLES = st.sampled_from([{}, {"indent": 2}, {"ensure_ascii": False}, {"separators": (",", ":")}])


def _outcome(read, data: bytes):
    """What a reader makes of a text: its value, or the status and message of its refusal."""
    try:
        return "read", read(data)
    except CdsError as exc:
        return "refused", exc.status, exc.message


def _both(data: bytes, parts: SentParts | None = None):
    parts = parts or SentParts()
    return (_outcome(lambda d: read_hook_body(d, "application/json", parts).value, data),
            _outcome(lambda d: read_json_body(d, "application/json"), data))


@settings(max_examples=500, derandomize=True)
@given(_BODIES, _STYLES)
def test_any_body_is_read_as_read_json_body_reads_it(value, style):
    sent, general = _both(json.dumps(value, **style).encode())
    assert sent == general


@settings(max_examples=500, derandomize=True)
@given(_BODIES, _STYLES, st.integers(0, 10_000), st.sampled_from([b"", b"}", b",", b"\\", b'"', b"\xff", b"x"]))
def test_a_broken_body_is_refused_as_read_json_body_refuses_it(value, style, where, inserted):
    text = json.dumps(value, **style).encode()
    cut = where % (len(text) + 1)
    for broken in (text[:cut], text[:cut] + inserted + text[cut:]):
        sent, general = _both(broken)
        assert sent == general


def _nested(depth: int) -> object:
    """A value `depth` levels deep (an empty object is one)."""
    value: object = {}
    for level in range(depth - 1):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize("where", ["context", "prefetch", "extension", "unnamed"])
@pytest.mark.parametrize("over", [-1, 0, 1])
def test_the_depth_limit_is_where_read_json_body_puts_it(where, over):
    """A member sits one level below the body, a prefetch value two: at, under and over the limit."""
    below = 2 if where == "prefetch" else 1
    inner = _nested(MAX_JSON_DEPTH - below + over)
    value = {"hook": "order-sign", "prefetch": {"medicationRequests": inner} if where == "prefetch" else {}}
    if where != "prefetch":
        value[where] = inner
    data = json.dumps(value).encode()
    sent, general = _both(data)
    assert sent == general
    assert sent[0] == ("refused" if over > 0 else "read")
    # A prefetch value sent again is judged by the depth remembered with it.
    parts = SentParts()
    assert _both(data, parts) == _both(data, parts)


@pytest.mark.parametrize("data", [
    json.dumps({"hook": "order-sign", "prefetch": {"p": {"a": 1}}}).encode("utf-16"),
    b"\xef\xbb\xbf" + json.dumps({"hook": "order-sign", "prefetch": {"p": {"a": 1}}}).encode(),
    json.dumps({"hook": "order-sign", "unnamed": 1, "prefetch": {"p": {"a": 1}}}).encode(),
    json.dumps({"hook": "order-sign", "prefetch": [{"a": 1}]}).encode(),
    b'{"hook": "order-sign", "prefetch": {"p": [NaN]}}',
    b'{"hook": "order-sign", "prefetch": {"p": "\\ud800"}}',
    b'{"prefetch": {"p": ' + b"[" * 1100 + b"]" * 1100 + b"}}",
    b"[1, 2]",
], ids=["utf-16", "bom", "unnamed-field", "prefetch-array", "nan", "lone-surrogate", "past-msgspec-nesting",
        "not-an-object"])
def test_a_body_msgspec_does_not_split_is_read_the_general_way(data):
    sent, general = _both(data)
    assert sent == general
    if sent[0] == "read":
        assert read_hook_body(data, "application/json", SentParts()).texts == {}


def test_a_nan_in_a_prefetch_value_reads_as_nan():
    value = read_hook_body(b'{"prefetch": {"p": [NaN]}}', "application/json", SentParts()).value
    assert math.isnan(value["prefetch"]["p"][0])


@pytest.mark.parametrize(("data", "content_type", "status"), [
    (b'{"hook": "x"}', "text/plain", 415),
    (b"   ", "application/json", 400),
    (b"", "application/fhir+json", 400),
])
def test_content_type_and_emptiness_are_checked_first(data, content_type, status):
    with pytest.raises(CdsError) as caught:
        read_hook_body(data, content_type, SentParts())
    assert caught.value.status == status


def test_each_prefetch_text_is_the_key_of_its_value_and_a_value_sent_again_is_shared():
    body = load_fixture("requests/spec-order-sign.json")
    parts = SentParts()
    first = read_hook_body(json.dumps(body).encode(), "application/json", parts)
    body["hookInstance"] = "another call"
    body["prefetch"]["patient"] = {**body["prefetch"]["patient"], "gender": "other"}
    again = read_hook_body(json.dumps(body).encode(), "application/json", parts)
    assert set(first.texts) == set(body["prefetch"]) == set(again.texts)
    for key, text in first.texts.items():
        assert jsonio.loads(text) == first.value["prefetch"][key]
        if key == "patient":
            assert again.value["prefetch"][key] != first.value["prefetch"][key]
        else:
            assert again.value["prefetch"][key] is first.value["prefetch"][key]
            assert again.texts[key] is text
    assert again.value["hookInstance"] == "another call"


def test_what_sent_parts_holds_is_bounded_and_a_part_too_deep_is_not_held():
    parts = SentParts(max_bytes=40)
    texts = [json.dumps({"n": n, "pad": "x" * 10}).encode() for n in range(5)]
    for text in texts:
        parts.decode(text)
    assert sum(len(t) for t in parts._entries) <= 40
    deep = json.dumps(_nested(MAX_JSON_DEPTH + 5)).encode()
    assert parts.decode(deep)[2] > MAX_JSON_DEPTH
    assert deep not in parts._entries


@pytest.mark.parametrize("fixture", ["requests/spec-order-sign.json", "requests/spec-patient-view.json",
                                     "requests/sandbox-order-select.json"])
def test_no_call_changes_a_value_it_shares(client, app, fixture):
    """Two calls of the service with one body: what SentParts holds afterwards is what its texts decode to."""
    body = load_fixture(fixture)
    path = f"/cds-services/{_service_of(body['hook'])}"
    for _ in range(2):
        assert client.post(path, data=json.dumps(body), content_type="application/json").status_code == 200
    held = app.extensions["cds_runtime"].sent_parts._entries
    assert held
    for text, (_, value, _) in held.items():
        assert value == jsonio.loads(text)


def _service_of(hook: str) -> str:
    return {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select",
            "patient-view": "dex-free-patient-view"}[hook]


def test_the_split_names_every_field_of_a_cds_hooks_request():
    """A field of the specification missing from the split would send every body the general way."""
    assert set(body_module._Sent.__struct_fields__) == {*_FIELDS, "prefetch"}
