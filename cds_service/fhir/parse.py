"""Parsing raw FHIR R4 JSON with the fhir.resources R4B models, leniently where EHR data is slightly off."""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from typing import Any

from cachetools import LRUCache
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from cds_service import jsonio
from cds_service.fhir import raw as safe
from cds_service.fhir.r5compat import to_r4
from cds_service.logs import log_event

log = logging.getLogger(__name__)

# Repairs tried, in one pass, when a resource does not validate: real clients send single objects
# where R4 wants arrays (the CDS Hooks Sandbox's `category`, `reasonCode`) and vendor elements the
# models forbid. Anything else that is wrong makes the resource unreadable.
_MAX_REPAIR_ROUNDS = 3


def parse_resource(raw: Any) -> Resource:
    """Validate one resource with its R4B model, repairing list/extra-element slips; raises ValueError."""
    if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
        raise ValueError("not a FHIR resource")
    try:
        model = get_fhir_model_class(raw["resourceType"])
    except (KeyError, ValueError):
        raise ValueError(f"unknown resourceType {raw['resourceType'][:40]!r}") from None
    data = to_r4(raw)
    for _ in range(_MAX_REPAIR_ROUNDS):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            repaired = _repair(data, exc.errors())
            if repaired is None:
                raise ValueError(f"{raw['resourceType']} does not validate: {_where(exc)}") from None
            data = repaired
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            # fhir_core raises KeyError for an unknown resourceType inside the resource (a contained
            # resource, a Bundle entry) instead of a ValidationError; its message is not shown.
            raise ValueError(f"{raw['resourceType']} does not validate: {type(exc).__name__} "
                             "in a nested resource") from None
    raise ValueError(f"{raw['resourceType']} does not validate after repairs")


class ParseCache:
    """Validated models by the exact content they came from: the same history, sent again by the EHR with
    every order-select, order-sign and patient-view of a patient, is validated once.

    The key is the resource's content as decoded, written out unambiguously, so only identical content
    shares an entry (no data of one call reaches another: the caller already holds that content; the same
    content with its elements in another order only misses the cache): its `jsonio.exact_text` (orjson,
    several times faster than `repr`, which was most of the cost of a hit), itself when short and its
    digest otherwise; content without an exact text (a null, NaN, a lone surrogate) by a digest of its
    `repr`, which for JSON values (dicts, lists, strings, numbers, booleans, null) is unambiguous too.
    Failures are remembered too. Models are never changed after validation: sharing them between calls
    and threads is safe.
    """

    def __init__(self, size: int) -> None:
        self._entries: LRUCache[tuple[str, bytes], Resource | str] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def parse(self, raw: Any) -> Resource:
        """`parse_resource`, once per distinct content."""
        if not isinstance(raw, dict):
            return parse_resource(raw)
        key = _key(raw)
        if key is None:
            return parse_resource(raw)
        with self._lock:
            found = self._entries.get(key)
        if found is None:
            try:
                found = parse_resource(raw)
            except ValueError as exc:
                found = str(exc)
            with self._lock:
                self._entries[key] = found
        if isinstance(found, str):
            raise ValueError(found)
        return found


# Exact texts up to this length are their own key; longer ones are keyed by their digest.
_SHORT_KEY = 2048


def _key(raw: dict[str, Any]) -> tuple[str, bytes] | None:
    """The cache key of a resource's content (see ParseCache); None when it cannot be written out."""
    exact = jsonio.exact_text(raw)
    if exact is not None:
        if len(exact) <= _SHORT_KEY:
            return "json", exact
        return "json-digest", hashlib.blake2b(exact, digest_size=16).digest()
    try:
        text = repr(raw)
    except RecursionError:
        return None
    return "repr-digest", hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _where(exc: ValidationError) -> str:
    # Locations and error types only: pydantic's messages quote the input, which may be PHI.
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])} ({e['type']})" for e in exc.errors()[:3])


def _repair(data: dict[str, Any], errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    fixed = copy.deepcopy(data)
    changed = False
    for error in errors:
        loc = [p for p in error["loc"] if p != "__root__"]
        parent, key = _walk(fixed, loc[:-1]), loc[-1] if loc else None
        if parent is None or key is None:
            return None
        if error["type"] == "extra_forbidden" and isinstance(parent, dict) and key in parent:
            del parent[key]
            changed = True
        elif (error["type"] == "list_type" and isinstance(parent, dict)
              and isinstance(parent.get(key), dict)):
            parent[key] = [parent[key]]
            changed = True
        else:
            return None
    return fixed if changed else None


def _walk(data: Any, path: list[Any]) -> Any:
    for part in path:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if in_dict or in_list:
            data = data[part]
        else:
            return None
    return data


def bundle_resources(value: Any) -> list[dict[str, Any]]:
    """The readable resources in a prefetch value: a Bundle's entries, or the value itself (raw.py)."""
    return list(safe.iter_resources(value))


def warm_models(resource_types: tuple[str, ...]) -> None:
    """Build the R4B model classes at start-up, not on the first request (the first use costs ~50 ms)."""
    for resource_type in resource_types:
        try:
            get_fhir_model_class(resource_type).model_validate({"resourceType": resource_type})
        except ValidationError:
            log_event(log, "model warm-up validation failed", logging.DEBUG, resourceType=resource_type)
