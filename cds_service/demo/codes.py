"""Codings for the demo, taken from the shipped ValueSets (never retyped): what an EHR would send."""

from __future__ import annotations

from typing import Any

from cds_service.knowledge.model import Knowledge


def concepts(knowledge: Knowledge, valueset: str) -> list[dict[str, str]]:
    """The explicit concepts of a shipped ValueSet, as Codings, in the artifact's order.

    Concepts of the project's own CodeSystem are left out: they name groups for the rules, an EHR
    never sends them.
    """
    own = knowledge.terminology.codesystem["url"]
    resource = knowledge.artifacts.by_ref[f"ValueSet/{valueset}"]
    found = []
    for include in (resource.get("compose") or {}).get("include") or []:
        system = include.get("system")
        if not system or system == own:
            continue
        for concept in include.get("concept") or []:
            found.append({"system": system, "code": concept["code"],
                          "display": concept.get("display", concept["code"])})
    return found


def first(knowledge: Knowledge, valueset: str, *, outside: str | None = None) -> dict[str, str]:
    """The first concept of a ValueSet (optionally: the first not also in ValueSet `outside`)."""
    excluded = knowledge.codes(outside) if outside else None
    for coding in concepts(knowledge, valueset):
        if excluded is None or not excluded.has_code(coding["system"], coding["code"]):
            return coding
    raise LookupError(f"ValueSet {valueset} has no concept to use")


def concept(*codings: dict[str, str]) -> dict[str, Any]:
    """A CodeableConcept of these codings, its text the first one's display."""
    return {"coding": [dict(c) for c in codings], "text": codings[0]["display"]}


def dexamethasone_products(knowledge: Knowledge) -> list[dict[str, str]]:
    """The products an order may name: the systemic products, then the plain ingredient."""
    return [*concepts(knowledge, "dexamethasone-systemic-products"), first(knowledge, "dexamethasone")]


def routes(knowledge: Knowledge) -> list[dict[str, str]]:
    """Coded routes an order may carry: systemic ones first (the first is by mouth), then local ones."""
    return [*concepts(knowledge, "routes-systemic"), *concepts(knowledge, "routes-local")]
