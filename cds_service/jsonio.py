"""JSON in and out of the service: orjson on the hot path, the standard library wherever orjson refuses.

Every hook call decodes its body and encodes its answer and a log line; orjson does each in about half
(decoding) to a tenth (encoding) of the standard library's time (bench/README.md, "Hook latency").
Where orjson refuses a text the standard library reads — a UTF-8 byte-order mark, UTF-16 or UTF-32,
NaN or Infinity, a lone surrogate escape, nesting past orjson's 1,024 levels — the standard library
decides, so a body is accepted or refused exactly as before. One difference is by design: an integer
beyond 64 bits decodes as the nearest float (as in the JavaScript of most EHRs). No FHIR R4 integer is
that large (they are 32-bit: validation refuses it either way), and a decimal of that size is read as
the standard library reads any number with a fraction.

Encoding writes UTF-8 (not `\\u` escapes) without spaces, and NaN or an infinity, which JSON cannot
hold, as null; a value orjson cannot write (a key that is not a string, an integer beyond 64 bits) is
written by the standard library.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """The value of a JSON text; ValueError (or RecursionError) when it is not one, as `json.loads`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any, default: Any = None) -> str:
    """`value` as a JSON text (UTF-8 characters, no spaces); `default` turns unknown objects into JSON."""
    try:
        return orjson.dumps(value, default=default).decode("utf-8")
    except TypeError:
        return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))


# Objects orjson would write as if they were JSON (dates as strings, dataclasses as objects): refused here.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def exact_text(value: Any) -> bytes | None:
    """A decoded JSON value written so that only an equal value is written alike, for cache keys; None
    when that cannot be promised: NaN and the infinities (written as null, like None: any null in the text
    refuses it), a lone surrogate, an integer beyond 64 bits, anything that is not JSON. Fast (orjson):
    a 100-resource history in about 10 µs, where `repr` takes ten times as long."""
    text = json_text(value)
    return text if text is not None and is_exact(text) else None


def json_text(value: Any) -> bytes | None:
    """`exact_text` before its check for null (`is_exact`): None for a lone surrogate, an integer beyond 64
    bits, anything that is not JSON. A cache that stores only texts passing `is_exact` may look up with
    this one: a text holding a null was never stored, so it cannot be found."""
    try:
        return orjson.dumps(value, option=_STRICT)
    except TypeError:
        return None


def is_exact(text: bytes) -> bool:
    """Whether a `json_text` holds no null (None, NaN and the infinities all write as null). This scan is
    as long as writing the text (9 µs for a 48-resource Bundle): a cache does it only before storing."""
    return b"null" not in text
