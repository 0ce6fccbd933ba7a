"""R5-shaped elements some servers already send in R4 resources, mapped to their R4 names before parsing.

Only what the rules read: ResearchSubject's `subject`, `assignedComparisonGroup` / `actualComparisonGroup`
and `progress[].subjectState` (R5) become `individual`, `assignedArm` / `actualArm` and `status` (R4).
A comparison group is an id in R5, not a name: it is matched against the arm aliases like any arm text.
"""

from __future__ import annotations

from typing import Any

from cds_service.fhir import raw as safe

_R4_SUBJECT_STATUS = frozenset({
    "candidate", "eligible", "follow-up", "ineligible", "not-registered", "off-study", "on-study",
    "on-study-intervention", "on-study-observation", "pending-on-study", "potential-candidate", "screening",
    "withdrawn",
})


def to_r4(raw: dict[str, Any]) -> dict[str, Any]:
    """The resource with R5 element names moved to R4 ones (a copy when anything changes)."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "ResearchSubject":
        return raw
    r5_keys = {"subject", "assignedComparisonGroup", "actualComparisonGroup", "progress"}
    if not r5_keys & raw.keys():
        return raw
    out = dict(raw)
    for r5, r4 in (("subject", "individual"), ("assignedComparisonGroup", "assignedArm"),
                   ("actualComparisonGroup", "actualArm")):
        if r5 in out:
            value = out.pop(r5)
            out.setdefault(r4, value)
    progress = out.pop("progress", None)
    # Unvalidated JSON: any of these may be of another JSON type (then it simply names no state).
    states = [coding.get("code") for step in (progress if isinstance(progress, list) else [])
              for coding in safe.objects(safe.obj(step, "subjectState"), "coding")]
    states = [s for s in states if isinstance(s, str) and s in _R4_SUBJECT_STATUS]
    status = out.get("status")
    if states and not (isinstance(status, str) and status in _R4_SUBJECT_STATUS):
        out["status"] = states[-1]
    return out
