"""What every card of the service shares: its source, its links and its machine-readable extension."""

from __future__ import annotations

import re
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


# --- words a clinician reads ------------------------------------------------------------------------------
# The rules explain themselves in developer words (references, element names, codes): the full text stays in
# `extension.dexfree`; what the card shows goes through `plain` first.

# What a reference names, in words (a resource type never reaches the text).
RECORD_WORDS = {
    "CarePlan": "the treatment plan", "ResearchSubject": "the study record", "ResearchStudy": "the study",
    "MedicationAdministration": "an administration record", "MedicationRequest": "the order",
    "MedicationStatement": "a medication statement", "Medication": "the medication record",
    "Patient": "the patient record", "Condition": "a diagnosis", "Observation": "an observation",
    "Procedure": "a procedure",
}
# Element names and type names that survive in the rules' sentences, as words.
_WORDS = (
    (re.compile(r"\s*\((?:assignedArm|actualArm)\s*/\s*(?:assignedArm|actualArm)\)"), ""),
    (re.compile(r"\b(?:actualArm|assignedArm|actualComparisonGroup|assignedComparisonGroup)\b"), "arm"),
    (re.compile(r"\s*period\.start\b"), "'s start"),
    (re.compile(r"\bauthoredOn\b"), "order date"),
    (re.compile(r"\bthe ResearchSubjects?\b"), "the study record"),
    (re.compile(r"\bResearchSubjects\b"), "study records"),
    (re.compile(r"\bResearchSubject\b"), "study record"),
    (re.compile(r"\bregimen CarePlans?\b"), "treatment plan"),
    (re.compile(r"\bCarePlans\b"), "treatment plans"),
    (re.compile(r"\bCarePlan\b"), "treatment plan"),
    (re.compile(r"\bPatient resource\b"), "patient record"),
    (re.compile(r"\bnot valid FHIR R4\b"), "not readable"),
)
REFERENCE = re.compile(r"\b([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]+)")
# Codes as the record writes them: SNOMED CT and other numeric ids, ICD-10, NCI thesaurus, LOINC, ATC.
CODE = re.compile(r"(?<![\w-])(?:\d{6,18}|[A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?|C\d{4,6}|LA\d{3,5}-\d|\d{3,5}-\d|"
                  r"[A-Z]\d{2}[A-Z]{2}\d{2}|(?=[0-9A-Z]{7}(?![\w-]))(?=[A-Z]*\d)(?=\d*[A-Z])[0-9A-Z]{7})(?![\w-])")
UCUM_ANNOTATION = re.compile(r"\{([^{}]*)\}")
_TABLETS = {"pill", "tbl", "tablet", "tab", "comprimé"}


def unit_words(text: str) -> str:
    """A dose as written without UCUM annotations: "1 {pill}" is "1 tablet", "2 tablet" "2 tablets"."""
    def word(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        return "tablet" if inner.casefold() in _TABLETS else inner
    text = UCUM_ANNOTATION.sub(word, text)
    return re.sub(r"\b(\d+(?:\.\d+)?) (tablet|tab)\b(?!s)",
                  lambda m: f"{m.group(1)} tablet" if m.group(1) == "1" else f"{m.group(1)} tablets", text)


def _record_words(match: re.Match[str]) -> str:
    return RECORD_WORDS.get(match.group(1), "a record")


def _flatten(text: str) -> str:
    """No parentheses inside parentheses: an inner pair becomes commas."""
    out, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
            out.append("(" if depth == 1 else ", ")
        elif char == ")":
            depth -= 1
            if depth == 0:
                out.append(")")
        else:
            out.append(char)
    return "".join(out)


def plain(text: str) -> str:
    """A rule's sentence in a clinician's words: no reference, element name, code, annotation or nesting."""
    text = _flatten(text)
    # A reference beside other facts in parentheses is evidence: dropped; alone, it becomes words.
    text = re.sub(r",\s*" + REFERENCE.pattern + r"(?=\))", "", text)
    text = re.sub(r"\(\s*" + REFERENCE.pattern + r"\s*\)", "", text)
    text = REFERENCE.sub(_record_words, text)
    for pattern, words in _WORDS:
        text = pattern.sub(words, text)
    text = CODE.sub("", text)
    text = unit_words(text)
    # What dropping left behind: empty or comma-only parentheses, doubled spaces, space before punctuation.
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)
    text = re.sub(r"\(\s*[,;]?\s*", "(", text)
    text = re.sub(r"\s*[,;]\s*\)", ")", text)
    text = re.sub(r"\s{2,}", " ", text)
    text = re.sub(r"\s+([,;:.)])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,;:])", "", text)
    return text.strip().rstrip(":;,").strip()


def fit(text: str, limit: int) -> str:
    """Cut at a word boundary, marked with "…" (the full text is in `extension.dexfree`)."""
    if len(text) <= limit:
        return text
    if limit < 2:
        return ""
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def shortened(text: str, limit: int) -> str:
    """A sentence fitted to `limit`: its first clause when that is enough to say it, else cut."""
    if len(text) <= limit:
        return text
    head = text.split(": ", 1)[0]
    if 20 <= len(head) <= limit and head != text:
        return head
    return fit(text, limit)


def sentence(text: str) -> str:
    """Capitalised, ending with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "…", "?", "!")) else text + "."


def duration(days: int) -> str:
    """Days as a person counts them: "12 days", "7 weeks", "5 months", "2 years 7 months"."""
    if days < 28:
        return f"{days} day{'s' if days != 1 else ''}"
    if days < 61:
        weeks = round(days / 7)
        return f"{weeks} weeks"
    months = round(days / 30.4375)
    years, months = divmod(months, 12)
    if not years:
        return f"{months} months"
    year_text = f"{years} year{'s' if years != 1 else ''}"
    return year_text + (f" {months} month{'s' if months != 1 else ''}" if months else "")


def human_durations(text: str) -> str:
    """ "(946 days)" in a rule's sentence as "(2 years 7 months)"; short spans stay in days."""
    return re.sub(r"\b(\d+) days\b", lambda m: duration(int(m.group(1))), text)


def compose(paragraphs: Iterable[str], notes: Iterable[str] = (), limit: int = 500,
            prefix: str = "**Check:** ") -> str:
    """The detail: paragraphs in order, then the notes as one last line, shortened to what `limit` leaves.

    Notes come most important first; those that no longer fit are left out (their full text is in
    `extension.dexfree`), the last one shown may be cut to its first clause.
    """
    body = fit("\n\n".join(p for p in paragraphs if p), limit)
    room = limit - len(body) - len("\n\n") - len(prefix) - len(".")
    shown: list[str] = []
    for note in dict.fromkeys(n for n in notes if n):
        left = room - sum(len(s) + len("; ") for s in shown)
        if left < 30:
            break
        shown.append(shortened(note.rstrip("."), left))
        if shown[-1] != note.rstrip("."):
            break
    if not shown:
        return body
    line = prefix + "; ".join(shown)
    return f"{body}\n\n{line}" + ("" if line.endswith("…") else ".")
