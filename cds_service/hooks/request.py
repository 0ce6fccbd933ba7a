"""CDS Hooks 2.0.1 request parsing: the body of a service call, checked field by field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from cds_service import jsonio
from cds_service.errors import CdsError, bad_request

# Required context fields of each hook (HL7 cds-hooks-library: patient-view 1.0, order-select 1.0,
# order-sign 1.0) and the JSON type each must have.
HOOK_CONTEXT: Mapping[str, Mapping[str, type]] = {
    "patient-view": {"userId": str, "patientId": str},
    "order-select": {"userId": str, "patientId": str, "selections": list, "draftOrders": dict},
    "order-sign": {"userId": str, "patientId": str, "draftOrders": dict},
}
OPTIONAL_CONTEXT: Mapping[str, type] = {"encounterId": str}

JSON_CONTENT_TYPES = ("application/json", "application/fhir+json")
_PRINTABLE_TOKEN = re.compile(r"[\x21-\x7e]+")
# Real FHIR data nests a few dozen levels at most (Bundle, entry, resource, contained, extension, …).
# Deeper input is refused before anything walks it recursively: parsing and repairing resources
# would exhaust the stack of a worker (a 500) at a few hundred levels.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class FhirAuthorization:
    """The bearer token the CDS client lends for reads from its FHIR server (never logged, never shown)."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    scope: str | None = None
    subject: str | None = None
    expires_in: int | None = None
    patient: str | None = None


@dataclass(frozen=True)
class HookRequest:
    """One validated hook call. `prefetch` keeps what the client sent, null values included;
    `prefetch_texts`, when the body was read as sent (hooks/body.py), the exact text of each value."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = field(default=None, repr=False)
    prefetch: Mapping[str, Any] = field(default_factory=dict, repr=False)
    prefetch_texts: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def patient_id(self) -> str:
        return self.context["patientId"]

    @property
    def user_id(self) -> str:
        return self.context["userId"]

    @property
    def encounter_id(self) -> str | None:
        return self.context.get("encounterId")

    @property
    def draft_orders(self) -> Mapping[str, Any] | None:
        return self.context.get("draftOrders")

    @property
    def selections(self) -> tuple[str, ...]:
        return tuple(self.context.get("selections") or ())


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Read a request body of at most `limit` bytes; 413 past it, whether or not Content-Length was sent."""
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise CdsError(413, f"The request body is larger than {limit} bytes", code="too-costly")


def read_json_body(data: bytes, content_type: str | None) -> Any:
    """The request body as JSON, or a 415/400/413 CdsError that says what is wrong with it."""
    check_body(data, content_type)
    return decode_body(data)


def decode_body(data: bytes) -> Any:
    """A body `check_body` passed, decoded whole: a 400 when it is not JSON, a 413 when nested too deep."""
    try:
        body = jsonio.loads(data)
    except (ValueError, RecursionError):
        raise not_json() from None
    check_depth(json_text_depth(data, MAX_JSON_DEPTH))
    return body


def check_body(data: bytes, content_type: str | None) -> None:
    """A 415 for a body that is not JSON by its Content-Type, a 400 for an empty one."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_CONTENT_TYPES:
        raise CdsError(415, f"Content-Type must be application/json, not {media_type or 'absent'}",
                       code="not-supported")
    if not data.strip():
        raise bad_request("The request body is empty; a JSON object is required")


def not_json() -> CdsError:
    """The 400 for a body that does not decode."""
    # json's own message quotes the body: say where it broke, never what it contained.
    return bad_request("The request body is not valid JSON")


def check_depth(depth: int) -> None:
    """A 413 for a body nested deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise CdsError(413, f"The request body is nested deeper than {MAX_JSON_DEPTH} levels",
                       code="too-costly")


def json_depth(value: Any, limit: int | None = None) -> int:
    """How deeply arrays and objects nest in a parsed JSON value, level by level (no recursion on input);
    stops counting once past `limit`. Bodies are json.loads output: plain dicts and lists only."""
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level and (limit is None or depth <= limit):
        depth += 1
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend([c for c in children if type(c) in (dict, list)])
        level = below
    return depth


# The bytes of a JSON text the nesting depth does not depend on: all but brackets and quotes. Arrays and
# objects count alike, so both map to one pair.
_ONE_PAIR = bytes.maketrans(b"[]", b"{}")
_UNNEEDED = bytes(b for b in range(256) if b not in b'[]{}"')
# A backslash and the character it escapes, left to right as the decoder reads them (`\\`, `\"`, `\u`…).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def json_text_depth(data: bytes, limit: int | None = None) -> int:
    """`json_depth` of the value a valid JSON text encodes, read off the text with bytes operations: a
    hook body is decoded once in C, and walking its objects again in Python costs as much again.

    Escapes are dropped (a backslash and the character after it, left to right, as the decoder reads them);
    only brackets and quotes are kept; what lies between two quotes is a string and goes; each round then
    removes the innermost pairs, one level (tests/test_limits.py compares it with `json_depth`). Texts
    that are not UTF-8 (the decoder also reads UTF-16 and UTF-32, whose ASCII bytes come with NULs) are
    decoded and walked."""
    if b"\x00" in data[:4]:
        return json_depth(json.loads(data), limit)
    text = _ESCAPE.sub(b"", data) if b"\\" in data else data
    # Deleting first, then mapping the few bytes left, is a quarter faster than both in one pass.
    marks = text.translate(None, _UNNEEDED)
    # A string without brackets is left as two adjacent quotes. Counted left to right, the pairs of
    # adjacent quotes take every quote only if no string holds a bracket (such a string's opening quote is
    # followed by the bracket, not by a quote): then all quotes go in the same pass as the mapping.
    # Counting is cheaper than cutting the pairs out (a body has thousands of strings).
    if marks.count(b'"') == 2 * marks.count(b'""'):
        skeleton = marks.translate(_ONE_PAIR, b'"')
    else:
        # Some string holds a bracket: strings are cut out one by one.
        skeleton = b"".join(marks.translate(_ONE_PAIR).split(b'"')[::2])
    depth = 0
    while skeleton and (limit is None or depth <= limit):
        inner = skeleton.replace(b"{}", b"")
        if len(inner) == len(skeleton):
            # Unbalanced: not the text of a decoded value. Its walk answers, rather than a loop.
            return json_depth(json.loads(data), limit)
        skeleton = inner
        depth += 1
    return depth


def _require(body: Mapping[str, Any], name: str, kind: type, where: str = "") -> Any:
    path = f"{where}{name}"
    if name not in body or body[name] is None:
        raise bad_request(f"Required field {path} is missing", path)
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad_request(f"Field {path} must be a JSON {_json_type(kind)}", path)
    if kind is str and not value.strip():
        raise bad_request(f"Field {path} must not be empty", path)
    return value


def _json_type(kind: type) -> str:
    return {str: "string", list: "array", dict: "object", int: "number"}.get(kind, kind.__name__)


def _check_url(value: str, path: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request(f"Field {path} must be an absolute http(s) URL", path)
    return value.rstrip("/")


def parse_hook_request(body: Any, expected_hook: str, service_id: str,
                       texts: Mapping[str, bytes] | None = None) -> HookRequest:
    """Check a service call against the specification and the service's hook; unknown fields are ignored.
    `texts`: the exact text of each prefetch value, as `read_hook_body` gives them."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    hook = _require(body, "hook", str)
    if hook != expected_hook:
        raise bad_request(f"Service {service_id} answers the {expected_hook} hook, not {hook}", "hook")
    hook_instance = _require(body, "hookInstance", str)
    context = _require(body, "context", dict)
    for name, kind in HOOK_CONTEXT[hook].items():
        _require(context, name, kind, "context.")
    for name, kind in OPTIONAL_CONTEXT.items():
        if context.get(name) is not None:
            _require(context, name, kind, "context.")
    if hook == "order-select" and not all(isinstance(s, str) for s in context["selections"]):
        raise bad_request("Field context.selections must be an array of strings", "context.selections")
    if "draftOrders" in HOOK_CONTEXT[hook]:
        if context["draftOrders"].get("resourceType") != "Bundle":
            # The Sandbox omits Bundle.type; only the resourceType is insisted on.
            raise bad_request("Field context.draftOrders must be a FHIR Bundle", "context.draftOrders")
        _check_entries(context["draftOrders"], "context.draftOrders")
        _check_orders(context["draftOrders"])

    fhir_server = None
    if body.get("fhirServer") is not None:
        fhir_server = _check_url(_require(body, "fhirServer", str), "fhirServer")
    authorization = None
    if body.get("fhirAuthorization") is not None:
        auth = _require(body, "fhirAuthorization", dict)
        if fhir_server is None:
            raise bad_request("Field fhirServer is required when fhirAuthorization is sent", "fhirServer")
        token = _require(auth, "access_token", str, "fhirAuthorization.")
        if not _PRINTABLE_TOKEN.fullmatch(token):
            # It goes into an Authorization header: a space or a control character there is an injection
            # or a broken client, never a token (RFC 6750 b64token has neither). The value is not echoed.
            raise bad_request("fhirAuthorization.access_token holds spaces or control characters",
                              "fhirAuthorization.access_token")
        token_type = _require(auth, "token_type", str, "fhirAuthorization.")
        if token_type.lower() != "bearer":
            raise bad_request("fhirAuthorization.token_type must be Bearer", "fhirAuthorization.token_type")
        expires_in = auth.get("expires_in")
        authorization = FhirAuthorization(
            access_token=token,
            token_type="Bearer",  # noqa: S106 - a scheme name
            scope=auth.get("scope") if isinstance(auth.get("scope"), str) else None,
            subject=auth.get("subject") if isinstance(auth.get("subject"), str) else None,
            expires_in=expires_in if type(expires_in) is int else None,
            patient=auth.get("patient") if isinstance(auth.get("patient"), str) else None,
        )
    prefetch = body.get("prefetch")
    if prefetch is None:
        prefetch = {}
    elif not isinstance(prefetch, dict):
        raise bad_request("Field prefetch must be a JSON object", "prefetch")
    for key, value in prefetch.items():
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"Prefetch value {key} must be a FHIR resource or null", f"prefetch.{key}")
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            _check_entries(value, f"prefetch.{key}")
    return HookRequest(hook=hook, hook_instance=hook_instance, context=context, fhir_server=fhir_server,
                       fhir_authorization=authorization, prefetch=prefetch,
                       prefetch_texts={key: texts[key] for key in prefetch if key in texts} if texts else {})


def _check_entries(bundle: Mapping[str, Any], path: str) -> None:
    # Bundle.entry is walked as a list everywhere after this: an object or number there is a 400.
    if bundle.get("entry") is not None and not isinstance(bundle["entry"], list):
        raise bad_request(f"Field {path}.entry must be a JSON array", f"{path}.entry")


def _check_orders(bundle: Mapping[str, Any]) -> None:
    # The orders to check must at least be resources: one that is not cannot even be said to be
    # unreadable on a card. (A resource that does not validate is kept, and the rules say so.)
    for index, entry in enumerate(bundle.get("entry") or []):
        path = f"context.draftOrders.entry[{index}]"
        if not isinstance(entry, dict):
            raise bad_request(f"{path} must be a JSON object", path)
        if not isinstance(entry.get("resource"), dict):
            raise bad_request(f"Required field {path}.resource is missing or not a JSON object",
                              f"{path}.resource")


def count_resources(request: HookRequest) -> int:
    """How many FHIR resources a request carries in its prefetch and draftOrders (Bundle entries count)."""
    total = 0
    for value in (*request.prefetch.values(), request.draft_orders):
        if isinstance(value, dict):
            entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
            total += len(entries) if isinstance(entries, list) else 1
    return total
