"""Where the service serves its published artifacts, under its public base URL.

An artifact's canonical URL names it (discovery, `extension.dexfree` and the audit keep that name); the
host of the canonical base is a placeholder nobody runs, so a link a clinician clicks must be a location
this service answers: `/fhir/{type}/{id}` for the FHIR JSON, `/regimens/{id}` for a regimen as a page,
`/regimens` for the protocol's arms and regimens.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from cds_service.knowledge.model import Knowledge

FHIR_PATH = "/fhir"
REGIMENS_PATH = "/regimens"


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def fhir_url(base_url: str, resource_type: str, resource_id: str) -> str:
    """The served FHIR read URL of an artifact."""
    return f"{_base(base_url)}{FHIR_PATH}/{quote(resource_type)}/{quote(resource_id)}"


def regimens_url(base_url: str) -> str:
    """The page listing the protocol's arms and regimens."""
    return _base(base_url) + REGIMENS_PATH


def regimen_url(base_url: str, plan_id: str) -> str:
    """The readable page of one regimen PlanDefinition."""
    return f"{_base(base_url)}{REGIMENS_PATH}/{quote(plan_id)}"


def _artifact(knowledge: Knowledge, url: str) -> dict | None:
    canonical = url.partition("|")[0]
    return knowledge.artifacts.by_url.get(canonical)


# Both below are pure functions of their arguments, asked again for every card (its source and links), and
# a process has a few knowledge objects and base URLs: remembered, bounded (a Host header is the caller's).
@lru_cache(maxsize=1024)
def served_json_url(knowledge: Knowledge, url: str, base_url: str) -> str:
    """A canonical (`url` or `url|version`) as the served FHIR read URL; any other URL unchanged."""
    found = _artifact(knowledge, url)
    if found is None:
        return url
    return fhir_url(base_url, found["resourceType"], found["id"])


@lru_cache(maxsize=1024)
def served_page_url(knowledge: Knowledge, url: str, base_url: str) -> str:
    """A canonical as what a clinician should open: a regimen's page, the regimens of the protocol, or else
    the served FHIR JSON; any other URL unchanged."""
    found = _artifact(knowledge, url)
    if found is None:
        # A site's adaptation is not served as a page of its own: the protocol's regimens page, never
        # the site's canonical host (which nobody may run).
        return regimens_url(base_url) if knowledge.regimen_for_canonical(url) is not None else url
    if found is _artifact(knowledge, knowledge.study.protocol_url):
        return regimens_url(base_url)
    if knowledge.regimen_for_canonical(url) is not None:
        return regimen_url(base_url, found["id"])
    return fhir_url(base_url, found["resourceType"], found["id"])
