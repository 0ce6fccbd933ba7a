"""What every card of the service shares: its source, its links and its machine-readable extension."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cds_service.hooks.response import coding, link
from cds_service.knowledge.model import Knowledge

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

    Integrators route and count cards by it; the audit trail records it. Empty findings are left out by
    the response builder.
    """
    return {"dexfree": {"rule": rule, "study": knowledge.study.nct_id, **findings,
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
