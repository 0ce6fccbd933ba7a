"""Generated narratives: the `text` a FHIR server or IG viewer shows for each published artifact.

Generated at publish time from the artifact's own elements (the source files stay as written): a regimen
shows its cycle definitions with each drug's dose and days, a value set its codes and filters, the
CodeSystem its concepts and names, the study its arms and criteria, the eca-rule its actions and triggers.
Every text is escaped; the result is an XHTML `div` (FHIR's narrative rules: no script, no attributes but
the namespace) with `status` generated. An artifact that already carries a narrative keeps it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import Any

from cds_service.knowledge.artifacts import Artifacts, canonical_url, canonical_version

XHTML = "http://www.w3.org/1999/xhtml"
DAYS_OF_CYCLE = "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle"
AGE_CONTEXT = "age"

Row = Iterable[Any]


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=False)


def _table(head: Row, rows: Iterable[Row]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _heading(resource: Mapping[str, Any]) -> str:
    title = resource.get("title") or resource.get("name") or resource.get("id")
    url, version = canonical_url(resource), canonical_version(resource)
    where = f"<p><code>{_e(url)}</code>{_e(' version ' + version) if version else ''}</p>" if url else ""
    status = f" ({_e(resource.get('status'))})" if resource.get("status") else ""
    description = f"<p>{_e(resource['description'])}</p>" if resource.get("description") else ""
    return f"<h3>{_e(title)}{status}</h3>{where}{description}"


def _days(action: Mapping[str, Any]) -> list[int]:
    for ext in action.get("extension") or []:
        if ext.get("url") == DAYS_OF_CYCLE:
            return sorted(e["valueInteger"] for e in ext.get("extension") or [] if e.get("url") == "day")
    return []


def _dose(activity: Mapping[str, Any]) -> str:
    """An ActivityDefinition's dose, route and age band, as a prescriber reads it."""
    parts = []
    for dosage in activity.get("dosage") or []:
        for rate in dosage.get("doseAndRate") or []:
            quantity = rate.get("doseQuantity") or {}
            if quantity.get("value") is not None:
                parts.append(
                    f"{quantity['value']:g} {quantity.get('unit') or quantity.get('code') or ''}".strip()
                )
        route = dosage.get("route") or {}
        if route.get("text"):
            parts.append(route["text"])
    band = _age_band(activity)
    return ", ".join(parts) + (f" ({band})" if band else "")


def _age_band(activity: Mapping[str, Any]) -> str:
    for context in activity.get("useContext") or []:
        if (context.get("code") or {}).get("code") == AGE_CONTEXT:
            band = context.get("valueRange") or {}
            low, high = (band.get("low") or {}).get("value"), (band.get("high") or {}).get("value")
            if low is not None and high is not None:
                return f"age {low:g} to {high:g} years"
            if low is not None:
                return f"age {low:g} years or more"
            if high is not None:
                return f"age up to {high:g} years"
    return ""


def _activities(action: Mapping[str, Any], artifacts: Artifacts) -> list[Mapping[str, Any]]:
    canonicals = (
        [action["definitionCanonical"]]
        if action.get("definitionCanonical")
        else [c["definitionCanonical"] for c in action.get("action") or [] if c.get("definitionCanonical")]
    )
    found = []
    for canonical in canonicals:
        url = canonical.partition("|")[0]
        if url in artifacts.by_url:
            found.append(artifacts.by_url[url])
    return found


def _cycle_length(cycle: Mapping[str, Any]) -> str:
    repeat = (cycle.get("timingTiming") or {}).get("repeat") or {}
    length = f"{repeat.get('duration', '?')} {repeat.get('durationUnit', '')}".strip()
    count = repeat.get("count")
    return f"{length}, {count} cycle{'s' if count != 1 else ''}" if count else f"{length}, until progression"


def _regimen(plan: Mapping[str, Any], artifacts: Artifacts) -> str:
    rows = []
    first = 1
    for cycle in (plan.get("action") or [{}])[0].get("action") or []:
        count = ((cycle.get("timingTiming") or {}).get("repeat") or {}).get("count")
        cycles = (
            (f"cycle {first}" if count == 1 else f"cycles {first}–{first + count - 1}")
            if count
            else f"cycles {first} on"
        )
        first += count or 0
        drugs = cycle.get("action") or []
        if not drugs:
            rows.append((cycles, cycle.get("title", ""), _cycle_length(cycle), "no drug", "", ""))
        for drug in drugs:
            doses = "; ".join(_dose(a) for a in _activities(drug, artifacts)) or "see the order set"
            days = ", ".join(str(d) for d in _days(drug))
            rows.append(
                (cycles, cycle.get("title", ""), _cycle_length(cycle), drug.get("title", ""), doses, days)
            )
    return _table(("Cycles", "Cycle definition", "Length", "Drug", "Dose", "Days of the cycle"), rows)


def _protocol(plan: Mapping[str, Any], artifacts: Artifacts) -> str:
    rows = []

    def walk(actions: list[dict[str, Any]], arm: str) -> None:
        for action in actions:
            if action.get("definitionCanonical"):
                target = artifacts.by_url.get(action["definitionCanonical"].partition("|")[0]) or {}
                rows.append(
                    (arm, action.get("title", ""), target.get("title") or action["definitionCanonical"])
                )
            walk(action.get("action") or [], action.get("title", arm) if action.get("action") else arm)

    walk(plan.get("action") or [], "")
    return _table(("Arm", "Regimen", "Order set"), rows)


def _rule(plan: Mapping[str, Any]) -> str:
    rows = []
    for action in plan.get("action") or []:
        triggers = ", ".join(t.get("name", "") for t in action.get("trigger") or [])
        conditions = "; ".join(
            (c.get("expression") or {}).get("expression", "") for c in action.get("condition") or []
        )
        rows.append(
            (
                action.get("id", ""),
                action.get("title", ""),
                action.get("priority", ""),
                triggers,
                conditions,
                action.get("description", ""),
            )
        )
    return _table(("Rule", "Title", "Priority", "Triggers", "Condition (CQL)", "Action"), rows)


def _plan_definition(plan: Mapping[str, Any], artifacts: Artifacts) -> str:
    kind = next((c.get("code") for c in (plan.get("type") or {}).get("coding") or []), "")
    if kind == "order-set":
        return _regimen(plan, artifacts)
    if kind == "clinical-protocol":
        return _protocol(plan, artifacts)
    if kind == "eca-rule":
        return _rule(plan)
    return ""


def _activity(activity: Mapping[str, Any], _: Artifacts) -> str:
    product = activity.get("productCodeableConcept") or {}
    codes = ", ".join(f"{c.get('code')} ({c.get('system')})" for c in product.get("coding") or [])
    return _table(("Product", "Codes", "Dose"), [(product.get("text", ""), codes, _dose(activity))])


def _value_set(valueset: Mapping[str, Any], _: Artifacts) -> str:
    rows = []
    compose = valueset.get("compose") or {}
    for part, entries in (
        ("include", compose.get("include") or []),
        ("exclude", compose.get("exclude") or []),
    ):
        for entry in entries:
            for concept in entry.get("concept") or []:
                rows.append(
                    (part, entry.get("system", ""), concept.get("code", ""), concept.get("display", ""))
                )
            for flt in entry.get("filter") or []:
                rows.append(
                    (
                        part,
                        entry.get("system", ""),
                        f"{flt.get('op')} {flt.get('value')}",
                        f"filter on {flt.get('property')}",
                    )
                )
            for nested in entry.get("valueSet") or []:
                rows.append((part, "value set", nested, "every code of that value set"))
    return _table(("", "Code system", "Code", "Display"), rows)


def _concept_rows(concepts: list[dict[str, Any]], parent: str = "") -> list[Row]:
    rows = []
    for concept in concepts:
        names = ", ".join(d.get("value", "") for d in concept.get("designation") or [])
        rows.append((parent, concept.get("code", ""), concept.get("display", ""), names))
        rows += _concept_rows(concept.get("concept") or [], concept.get("code", ""))
    return rows


def _code_system(codesystem: Mapping[str, Any], _: Artifacts) -> str:
    return _table(
        ("Group", "Code", "Display", "Names matched"), _concept_rows(codesystem.get("concept") or [])
    )


def _study(study: Mapping[str, Any], _: Artifacts) -> str:
    ids = ", ".join(i.get("value", "") for i in study.get("identifier") or [])
    arms = _table(
        ("Arm", "Description"),
        [(a.get("name", ""), a.get("description", "")) for a in study.get("arm") or []],
    )
    criteria = [
        c
        for g in study.get("contained") or []
        if g.get("resourceType") == "Group"
        for c in g.get("characteristic") or []
    ]
    listed = (
        _table(
            ("Criterion", "Inclusion or exclusion"),
            [
                (
                    (c.get("code") or {}).get("text", c.get("id", "")),
                    "exclusion" if c.get("exclude") else "inclusion",
                )
                for c in criteria
            ],
        )
        if criteria
        else ""
    )
    return f"<p>Identifier: {_e(ids)}</p>{arms}{listed}"


def _library(library: Mapping[str, Any], _: Artifacts) -> str:
    content = ", ".join(c.get("contentType", "") for c in library.get("content") or [])
    parameters = _table(
        ("Parameter", "Use", "Type"),
        [(p.get("name", ""), p.get("use", ""), p.get("type", "")) for p in library.get("parameter") or []],
    )
    return f"<p>Content: {_e(content)}</p>{parameters}"


def _naming_system(naming: Mapping[str, Any], _: Artifacts) -> str:
    return _table(
        ("Identifier", "Type", "Preferred"),
        [
            (u.get("value", ""), u.get("type", ""), "yes" if u.get("preferred") else "")
            for u in naming.get("uniqueId") or []
        ],
    )


BODIES: dict[str, Callable[[Mapping[str, Any], Artifacts], str]] = {
    "PlanDefinition": _plan_definition,
    "ActivityDefinition": _activity,
    "ValueSet": _value_set,
    "CodeSystem": _code_system,
    "ResearchStudy": _study,
    "Library": _library,
    "NamingSystem": _naming_system,
}


def narrative(resource: Mapping[str, Any], artifacts: Artifacts) -> dict[str, str]:
    """The generated Narrative of one artifact."""
    body = BODIES.get(resource["resourceType"], lambda *_: "")(resource, artifacts)
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{_heading(resource)}{body}</div>'}


def with_narrative(resource: Mapping[str, Any], artifacts: Artifacts) -> dict[str, Any]:
    """A copy of an artifact with its narrative (kept if it has one), placed after its id and meta."""
    if resource.get("text"):
        return copy.deepcopy(dict(resource))
    head = ("resourceType", "id", "meta", "implicitRules", "language")
    shipped = {k: copy.deepcopy(resource[k]) for k in head if k in resource}
    shipped["text"] = narrative(resource, artifacts)
    shipped.update({k: copy.deepcopy(v) for k, v in resource.items() if k not in shipped})
    return shipped
