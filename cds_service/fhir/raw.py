"""Safe reads of unvalidated FHIR JSON: typed getters and a Bundle reader that names what it cannot read.

Everything that looks into raw JSON before validation (selection, paging links, reference resolution,
counting) reads it through these: a value of the wrong JSON type is the getter's default, never an
exception, and a Bundle entry that is not a resource is named by position (`entry[3]: …`) so the caller
can count it and say so. Names and reasons hold positions and JSON types only, never content (PHI).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


def text(value: Any, key: str) -> str | None:
    """`value[key]` when `value` is an object and that is a non-empty string; else None."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, str) and found else None


def obj(value: Any, key: str) -> dict[str, Any] | None:
    """`value[key]` when it is a JSON object; else None."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, dict) else None


def items(value: Any, key: str) -> list[Any]:
    """`value[key]` when it is a JSON array; else an empty list (its items are still unchecked)."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def objects(value: Any, key: str) -> list[dict[str, Any]]:
    """The JSON objects in the array `value[key]` (anything else in it, or no array, is left out)."""
    return [item for item in items(value, key) if isinstance(item, dict)]


def resource_type(value: Any) -> str | None:
    """The resourceType of a raw resource when it is a non-empty string; else None."""
    return text(value, "resourceType")


def reference(value: Any, key: str) -> str | None:
    """The `reference` string of the Reference `value[key]`; None when either is not of its JSON type."""
    return text(obj(value, key), "reference")


def json_kind(value: Any) -> str:
    """The JSON type of a value, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


@dataclass
class Entries:
    """The resources of a Bundle (or of a single resource), and the entries that are not readable."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    # One line per unreadable entry, by position: "entry[2]: resourceType is an array".
    unreadable: list[str] = field(default_factory=list)


def entry_problem(entry: Any) -> str | None:
    """Why a Bundle entry holds no readable resource, or None when it does."""
    if not isinstance(entry, dict):
        return f"the entry is {json_kind(entry)}, not an object"
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        return "it has no resource" if resource is None else f"its resource is {json_kind(resource)}"
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not kind:
        return f"its resourceType is {json_kind(kind)}" if kind is not None else "it has no resourceType"
    return None


def bundle_entries(value: Any) -> Entries:
    """A Bundle's entry resources, skipping (and naming) the unreadable; any other resource is itself."""
    found = Entries()
    if resource_type(value) != "Bundle":
        if resource_type(value) is not None:
            found.resources.append(value)
        return found
    entries = value.get("entry")
    if entries is not None and not isinstance(entries, list):
        found.unreadable.append(f"entry is {json_kind(entries)}, not an array")
        return found
    entries = entries or []
    # The usual Bundle, every entry {"resource": {"resourceType": "…", …}}, read in one pass without the
    # checks that name a problem (a history holds hundreds of entries); any other entry, the slow way.
    resources = [resource for entry in entries
                 if type(entry) is dict and type(resource := entry.get("resource")) is dict
                 and type(kind := resource.get("resourceType")) is str and kind]
    if len(resources) == len(entries):
        found.resources = resources
        return found
    for index, entry in enumerate(entries):
        problem = entry_problem(entry)
        if problem is None:
            found.resources.append(entry["resource"])
        else:
            found.unreadable.append(f"entry[{index}]: {problem}")
    return found


def iter_resources(value: Any) -> Iterator[dict[str, Any]]:
    """The readable resources of `bundle_entries(value)`, for callers that only skip."""
    yield from bundle_entries(value).resources


def link_problem(bundle: Any) -> str | None:
    """Why a Bundle's `link` cannot be read (so whether it has a next page cannot be told), or None."""
    links = bundle.get("link") if isinstance(bundle, dict) else None
    if links is None:
        return None
    if not isinstance(links, list):
        return f"link is {json_kind(links)}, not an array"
    for index, link in enumerate(links):
        if not isinstance(link, dict):
            return f"link[{index}] is {json_kind(link)}, not an object"
        for name in ("relation", "url"):
            if not isinstance(link.get(name), str):
                return f"link[{index}].{name} is {json_kind(link.get(name))}, not a string"
        if link["relation"] == "next" and not _is_url(link["url"]):
            return f"link[{index}].url is not a URL"
    return None


def next_link(bundle: Any) -> str | None:
    """The `next` link of a Bundle whose `link` is readable (see link_problem), if any."""
    if link_problem(bundle) is not None:
        return None
    for link in items(bundle, "link"):
        if link["relation"] == "next" and link["url"].strip():
            return link["url"].strip()
    return None


def _is_url(value: str) -> bool:
    try:
        urlsplit(value.strip())
    except ValueError:  # "http://[x": an unbalanced IPv6 bracket, which urljoin would raise on later
        return False
    return True


def concept(value: Any) -> dict[str, Any] | None:
    """A raw CodeableConcept with only its readable parts (string text; codings of string system, code,
    display), for matchers that expect the types R4 gives them; None when it is not an object."""
    if not isinstance(value, dict):
        return None
    codings = [{key: item[key] for key in ("system", "code", "display") if isinstance(item.get(key), str)}
               for item in objects(value, "coding")]
    found: dict[str, Any] = {"coding": codings}
    if isinstance(value.get("text"), str):
        found["text"] = value["text"]
    return found
