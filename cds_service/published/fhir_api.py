"""A read-only FHIR R4 API over plan_definitions/: read, search by canonical URL, and the CapabilityStatement.

It answers the published artifacts exactly as `cds-service publish` writes them (the folder's JSON with
its generated narratives, the Library with its ELM), and nothing else: no patient resource is stored here,
so none can be reached, with or without authentication. Search follows the R4 rules for unknown
parameters: ignored (and left out of the `self` link) unless the client asks `Prefer: handling=strict`,
then a 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from cds_service import __version__
from cds_service.errors import CdsError
from cds_service.knowledge.artifacts import canonical_url, canonical_version
from cds_service.knowledge.model import Knowledge
from cds_service.published.locations import FHIR_PATH, fhir_url

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
SOFTWARE = "Dex-Free CDS"
# Search parameters of a canonical resource, and their R4 types.
SEARCH_PARAMS = {"url": "uri", "version": "token"}


def _not_found() -> CdsError:
    # The id is not echoed: whatever a caller probes for stays out of the body and the log.
    return CdsError(404, "No published artifact of that type and id; GET /fhir/metadata lists what is "
                    "served", code="not-found")


def served_types(knowledge: Knowledge) -> list[str]:
    """The resource types of the artifacts, sorted."""
    return sorted({r["resourceType"] for r in knowledge.published})


def searchable_by_url(knowledge: Knowledge, resource_type: str) -> bool:
    """Whether the type has a `url` element in R4 (ResearchStudy and NamingSystem do not)."""
    return any("url" in r for r in knowledge.published.of_type(resource_type))


def read(knowledge: Knowledge, resource_type: str, resource_id: str) -> dict[str, Any]:
    """The artifact `Type/id` as published; 404 if there is none."""
    found = knowledge.published.by_ref.get(f"{resource_type}/{resource_id}")
    if found is None:
        raise _not_found()
    return found


def _values(raw: Sequence[str]) -> list[list[str]]:
    # Repeated parameters are ANDed, comma-separated values within one are ORed (R4 search).
    return [[v for v in value.split(",") if v] for value in raw]


def _matches(resource: Mapping[str, Any], urls: list[list[str]], versions: list[list[str]]) -> bool:
    url, version = canonical_url(resource), canonical_version(resource)
    for alternatives in urls:
        # A canonical with its version (`url|1.0.0`) is accepted where a url is expected.
        if not any(a.partition("|")[0] == url and (not a.partition("|")[2] or a.partition("|")[2] == version)
                   for a in alternatives):
            return False
    return all(version in alternatives for alternatives in versions)


def search(knowledge: Knowledge, resource_type: str, params: Mapping[str, Sequence[str]], base_url: str,
           *, strict: bool = False) -> dict[str, Any]:
    """A searchset Bundle of the artifacts of a type matching `url` and `version`; 404 for a type not
    served, 400 for an unknown parameter when `strict`."""
    if resource_type not in served_types(knowledge):
        raise CdsError(404, "No published artifact of that type; GET /fhir/metadata lists what is served",
                       code="not-found")
    supported = SEARCH_PARAMS if searchable_by_url(knowledge, resource_type) else {}
    unknown = sorted(name for name in params if name not in supported)
    if unknown and strict:
        raise CdsError(400, f"Search parameters not supported here: {', '.join(unknown)[:200]}; this server "
                       f"searches {resource_type} by {', '.join(supported) or 'nothing but its type'}",
                       code="not-supported")
    urls = _values(params.get("url", ())) if "url" in supported else []
    versions = _values(params.get("version", ())) if "version" in supported else []
    matches = [r for r in knowledge.published.of_type(resource_type) if _matches(r, urls, versions)]
    matches.sort(key=lambda r: r["id"])
    used = [(name, value) for name in supported for value in params.get(name, ())]
    self_url = f"{base_url.rstrip('/')}{FHIR_PATH}/{resource_type}" + (f"?{urlencode(used)}" if used else "")
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": [{"relation": "self", "url": self_url}],
    }
    if matches:
        bundle["entry"] = [{"fullUrl": fhir_url(base_url, r["resourceType"], r["id"]), "resource": r,
                            "search": {"mode": "match"}} for r in matches]
    return bundle


def capability_statement(knowledge: Knowledge, base_url: str) -> dict[str, Any]:
    """What this endpoint does: an R4 server instance, read and search-type by url, without authentication."""
    dates = [str(r["date"]) for r in knowledge.published if r.get("date")]
    resources = []
    for resource_type in served_types(knowledge):
        entry: dict[str, Any] = {"type": resource_type,
                                 "interaction": [{"code": "read"}, {"code": "search-type"}]}
        if searchable_by_url(knowledge, resource_type):
            entry["searchParam"] = [{"name": name, "type": kind} for name, kind in SEARCH_PARAMS.items()]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        # The newest artifact's date: the statement changes when what is served changes.
        "date": max(dates),
        "publisher": knowledge.published.of_type("PlanDefinition")[0].get("publisher"),
        "kind": "instance",
        "software": {"name": SOFTWARE, "version": __version__},
        "implementation": {
            "description": f"The published FHIR artifacts of trial {knowledge.study.nct_id} (study, "
                           "protocol, regimens, decision rule, value sets), read-only",
            "url": base_url.rstrip("/") + FHIR_PATH,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only, public: the trial's published artifacts only, never patient data. "
                             "No authentication is asked for these.",
            "security": {"cors": True},
            "resource": resources,
        }],
    }


def dump(body: Mapping[str, Any]) -> bytes:
    """FHIR JSON as `cds-service publish` writes it (same bytes for an artifact read)."""
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def wants_strict(prefer: str | None) -> bool:
    """`Prefer: handling=strict`: the client wants unknown search parameters refused, not ignored."""
    return any(part.strip().replace(" ", "") == "handling=strict" for part in (prefer or "").split(","))
