"""The demo population as FHIR transaction Bundle(s) of PUTs, for any R4 server."""

from __future__ import annotations

from typing import Any

from cds_service.demo.population import Population


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    # PUT with the stable id: loading twice leaves the server as loading once.
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def transaction_bundles(population: Population, max_entries: int = 0) -> list[dict[str, Any]]:
    """One transaction Bundle, or several of at most `max_entries` entries (Medplum caps at 50).

    A patient's resources are never split across Bundles, and the study comes first, so the parts load
    one after the other even on servers that check references on write.
    """
    groups = [[population.study], *[list(p.resources) for p in population.patients]]
    if max_entries > 0 and any(len(g) > max_entries for g in groups):
        raise ValueError(f"a demo patient has more than {max_entries} resources; use a larger --max-entries")
    parts: list[list[dict[str, Any]]] = [[]]
    for group in groups:
        if max_entries > 0 and parts[-1] and len(parts[-1]) + len(group) > max_entries:
            parts.append([])
        parts[-1].extend(group)
    return [{"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in part]}
            for part in parts]


def transaction_bundle(population: Population) -> dict[str, Any]:
    """Every demo resource in one transaction Bundle."""
    return transaction_bundles(population)[0]
