"""A hook call's body read as sent: each prefetch value decoded once per exact text, across a process's calls.

An EHR sends a patient's history again with every order-select, order-sign and patient-view. Decoding it
again (most of a body's bytes), writing it out again for the part cache's key, and reading its nesting
depth off the text was a third of the cost of a call whose history the process had seen
(bench/README.md, "Hook latency"). msgspec splits the body without decoding it: the members of the top
object and the values of `prefetch` as the exact bytes sent (its `Raw`). `SentParts` keeps, by those
bytes, the decoded value and its depth; the call's other members (its context and draft orders, a few
hundred bytes) are decoded each time.

The body is accepted or refused exactly as `read_json_body` does (tests/hooks/test_body.py holds the
two to each other): every member and part is decoded by `jsonio.loads` from its own text, as the whole
text would decode it, and the depth is put together from theirs. A body msgspec does not split — not
UTF-8, malformed, nested past msgspec's limit, a top-level field CDS Hooks 2.0.1 does not name,
`prefetch` not an object — goes the general way (`decode_body`), which then says what is wrong with it.

The decoded values are shared by every call that sends the same text: nothing may change them (nothing
does; the parse cache, the part cache and the repairs of resources all copy what they change).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cachetools import LRUCache

from cds_service import jsonio
from cds_service.hooks.request import (
    MAX_JSON_DEPTH,
    check_body,
    check_depth,
    decode_body,
    json_text_depth,
    not_json,
)

# What SentParts may hold, in bytes of the texts it keys on: some 280 patients' 100-resource histories.
# Their decoded values take about six times as much (about 25 MB a process then).
SENT_PARTS_BYTES = 4 * 1024 * 1024


class _Sent(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a CDS Hooks 2.0.1 request, as sent; another field sends the body the general way."""

    hook: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    hookInstance: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    fhirServer: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    fhirAuthorization: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    context: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    extension: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET


_SPLIT = msgspec.json.Decoder(_Sent)
_MEMBERS = tuple(name for name in _Sent.__struct_fields__ if name != "prefetch")


@dataclass(frozen=True)
class SentBody:
    """A decoded body and, for each prefetch value, its exact text as sent (empty when read the general
    way): a key under which equal texts, and only they, meet."""

    value: Any
    texts: Mapping[str, bytes] = field(default_factory=dict)


class SentParts:
    """Prefetch values by their exact text as sent: the decoded value and its nesting depth, bounded by
    the bytes of the texts held (SENT_PARTS_BYTES). Shared by the threads of a process."""

    def __init__(self, max_bytes: int = SENT_PARTS_BYTES) -> None:
        self._entries: LRUCache[bytes, tuple[bytes, Any, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: len(entry[0]))
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def decode(self, text: bytes) -> tuple[bytes, Any, int]:
        """(the text as held, its value, its depth up to MAX_JSON_DEPTH + 1); ValueError or RecursionError
        when it is not JSON, as `jsonio.loads`."""
        with self._lock:
            found = self._entries.get(text)
        if found is not None:
            return found
        entry = (text, jsonio.loads(text), json_text_depth(text, MAX_JSON_DEPTH))
        # A part too deep for any body is refused: it is not kept.
        if len(text) <= self._max_bytes and entry[2] <= MAX_JSON_DEPTH:
            with self._lock:
                self._entries[text] = entry
        return entry


def read_hook_body(data: bytes, content_type: str | None, parts: SentParts) -> SentBody:
    """The body of a service call, as `read_json_body` reads it, with its prefetch texts (see the module
    docstring); a 415, 400 or 413 CdsError as there."""
    check_body(data, content_type)
    try:
        sent = _SPLIT.decode(data)
    except (msgspec.MsgspecError, RecursionError):  # msgspec gives up nesting past its own limit
        return SentBody(decode_body(data))
    body: dict[str, Any] = {}
    texts: dict[str, bytes] = {}
    # The body is one level; each member nests below it, each prefetch value below `prefetch`.
    deepest = 0
    try:
        for name in _MEMBERS:
            raw = getattr(sent, name)
            if raw is not msgspec.UNSET:
                text = bytes(raw)
                body[name] = value = jsonio.loads(text)
                if isinstance(value, dict | list):  # a string or a number nests nothing
                    deepest = max(deepest, json_text_depth(text, MAX_JSON_DEPTH))
        if isinstance(sent.prefetch, dict):
            prefetch, inner = {}, 0
            for key, raw in sent.prefetch.items():
                texts[key], prefetch[key], depth = parts.decode(bytes(raw))
                inner = max(inner, depth)
            body["prefetch"] = prefetch
            deepest = max(deepest, 1 + inner)
        elif sent.prefetch is None:
            body["prefetch"] = None
    except (ValueError, RecursionError):
        raise not_json() from None
    check_depth(1 + deepest)
    return SentBody(body, texts)
