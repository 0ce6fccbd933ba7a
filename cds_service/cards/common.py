"""What every card of the service shares: its source, its links and its machine-readable extension."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from cds_service.hooks.response import coding, link
from cds_service.knowledge.model import Knowledge
from cds_service.published.locations import served_json_url, served_page_url

SOURCE_LABEL = "Dex-Free CDS · NCT06561854"


def source(knowledge: Knowledge, rule: str) -> dict[str, Any]:
    """The card's source: the service, the published rule it comes from, and the rule id as its topic."""
    rule_code = knowledge.rule_codes[rule]
    return {
        "label": SOURCE_LABEL,
        "url": knowledge.rule.partition("|")[0],
        "topic": coding(rule_code.system, rule_code.code, rule_code.display),
    }


def protocol_link(knowledge: Knowledge) -> dict[str, Any]:
    return link(f"{knowledge.study.nct_id} on ClinicalTrials.gov", knowledge.study.registry_url)


def artifact_link(label: str, canonical: str) -> dict[str, Any]:
    """A link to a published artifact (its canonical URL, without the version)."""
    return link(label, canonical.partition("|")[0])


def dexfree_extension(knowledge: Knowledge, rule: str, evidence: Iterable[str] = (),
                      **findings: Any) -> dict[str, Any]:
    """`card.extension.dexfree`: the rule id, the study, the findings and the FHIR references used.

    Integrators route and count cards by it; the audit trail records it (`orderDate`, the order's first
    day, is what the deviation report dates an arm B warning by). Dates are written as ISO days; empty
    findings are left out by the response builder.
    """
    shown = {key: value.isoformat() if isinstance(value, date) else value for key, value in findings.items()}
    return {"dexfree": {"rule": rule, "study": knowledge.study.nct_id, **shown,
                        "evidence": sorted(set(evidence))}}


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A GitHub-flavoured Markdown table (the spec's `detail` format); pipes in cells are escaped."""
    def cell(value: Any) -> str:
        return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")
    head = list(header)
    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def override_reasons(knowledge: Knowledge) -> list[dict[str, Any]]:
    return [reason.as_json() for reason in knowledge.override_reasons]


def served_links(cards: list[dict[str, Any]], knowledge: Knowledge, base_url: str) -> list[dict[str, Any]]:
    """The cards with `source.url` and link URLs naming a published artifact by its canonical made to point
    where this service serves it, under `base_url` (cds_service/published/locations.py).

    Cards name artifacts by canonical URL, their identity (kept as is in `extension.dexfree` and
    discovery); only a call knows the public base URL, so the service resolves them once per call,
    whatever builder made the card. `source.url` becomes the artifact's FHIR JSON (the published rule);
    a link becomes what a clinician can read: a regimen's page, the protocol's regimens. Other URLs
    (ClinicalTrials.gov) are left alone.
    """
    for card in cards:
        source_ = card.get("source")
        if isinstance(source_, Mapping) and isinstance(source_.get("url"), str):
            card["source"] = {**source_, "url": served_json_url(knowledge, source_["url"], base_url)}
        links = card.get("links")
        if isinstance(links, list):
            card["links"] = [_served_link(item, knowledge, base_url) for item in links]
    return cards


def _served_link(item: Any, knowledge: Knowledge, base_url: str) -> Any:
    # A SMART link launches an app at its own URL: never rewritten.
    if not isinstance(item, Mapping) or not isinstance(item.get("url"), str) or item.get("type") == "smart":
        return item
    return {**item, "url": served_page_url(knowledge, item["url"], base_url)}
