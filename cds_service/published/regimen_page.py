"""The regimens as pages a clinician can read: cycle by cycle, each drug with its dose and days.

Built from the regimen PlanDefinitions as the rules read them (cds_service/knowledge/regimens.py), so the
page shows what the cards check against. Self-contained HTML: no script, no third-party asset; every text
from the artifacts is escaped, and the Content-Security-Policy allows nothing but the page's own style.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from typing import Any

from cds_service.errors import CdsError
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import CycleBlock, DoseOption, DrugAction, Regimen
from cds_service.published.locations import fhir_url, regimen_url, regimens_url

DEX = "dexamethasone"

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222;"
    "line-height:1.4}"
    "table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;table-layout:fixed}"
    "th:first-child{width:20%}th:last-child{width:25%}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}.stop{border-left:6px solid #b71c1c;background:#fdecea;padding:.6em 1em}"
    ".keep{border-left:6px solid #2e7d32;background:#edf7ed;padding:.6em 1em}"
    ".none{color:#b71c1c;font-weight:600}.meta{color:#555;font-size:.9em}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Nothing may load or run but the page's own style block (by its hash); no form, no <base>. Framing is
# allowed: an EHR may show a card's link inside its own window, and the page has nothing to click-jack.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'"
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _not_found() -> CdsError:
    return CdsError(404, "No published regimen with that id; GET /regimens lists them", code="not-found")


def day_list(days: Iterable[int]) -> str:
    """Days of a cycle as a clinician writes them: "1, 8, 15 and 22", runs as "1–21"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(str(d) for d in r) for r in runs]
    text = ", ".join(parts)
    head, sep, last = text.rpartition(", ")
    return f"{head} and {last}" if sep else text


def age_band(option: DoseOption) -> str:
    """The age band a dose is for, in words ("" when the dose is for every age)."""
    if option.age_low is not None and option.age_high is not None:
        return f"aged {option.age_low} to {option.age_high}"
    if option.age_low is not None:
        return f"aged {option.age_low} and over"
    if option.age_high is not None:
        return f"under {option.age_high + 1}"
    return ""


def _dose_cell(action: DrugAction) -> str:
    # The ActivityDefinition's dosage text ("20 mg orally or IV once on the day") is the clinician's wording;
    # the coded quantity would show a UCUM code (mg/m2).
    lines = []
    for option in action.options:
        band = age_band(option)
        lines.append((f"<strong>{_e(band.capitalize())}:</strong> " if band else "")
                     + _e(option.text or option.describe()))
    return "<br>".join(lines)


def _cycles_label(block: CycleBlock) -> str:
    if block.last is None:
        return f"Cycles of {block.length_days} days, repeated until disease progression"
    count = block.last - block.first + 1
    return f"{count} cycle{'s' if count > 1 else ''} of {block.length_days} days"


def _block_section(regimen: Regimen, block: CycleBlock) -> str:
    start = regimen.cycle_start(block.first) + 1
    when = f"; begins on day {start} counted from cycle 1 day 1" if block.first > 1 else ""
    rows = "".join(
        f"<tr><td>{_e(action.drug.capitalize())}</td><td>{_dose_cell(action)}</td>"
        f"<td>{_e(day_list(action.days))}</td></tr>" for action in block.drugs)
    no_dex = "" if block.drug(DEX) else '<p class="none">No dexamethasone in these cycles.</p>'
    return (f"<section><h2>{_e(block.title)}</h2>"
            f'<p class="meta">{_e(_cycles_label(block))}{_e(when)}.</p>'
            f"{no_dex}<table><thead><tr><th>Drug</th><th>Dose</th><th>Days of the cycle</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>")


def dexamethasone_plan(regimen: Regimen) -> tuple[str, str]:
    """The page's banner: its class and the sentence saying when dexamethasone is given, and when it stops."""
    stop = regimen.first_cycle_without(DEX)
    if stop is None:
        return "keep", "Dexamethasone in every cycle, until disease progression."
    given = {2: "cycle 1 only", 3: "cycles 1 and 2 only"}.get(stop, f"cycles 1 to {stop - 1}")
    return "stop", (f"Dexamethasone in {given}. No dexamethasone from cycle {stop} on: cycle {stop} begins "
                    f"on day {regimen.cycle_start(stop) + 1} counted from cycle 1 day 1.")


def _regimen_of(knowledge: Knowledge, plan_id: str) -> tuple[Regimen, dict[str, Any]]:
    plan = knowledge.artifacts.by_ref.get(f"PlanDefinition/{plan_id}")
    regimen = knowledge.regimen_for_canonical(plan.get("url")) if plan else None
    if plan is None or regimen is None:
        raise _not_found()
    return regimen, plan


def _registry_link(knowledge: Knowledge) -> str:
    study = knowledge.study
    return f'<a href="{_e(study.registry_url)}">{_e(study.nct_id)} on ClinicalTrials.gov</a>'


def regimen_page(knowledge: Knowledge, plan_id: str, base_url: str) -> str:
    """One regimen PlanDefinition as a page; 404 if `plan_id` is not a regimen."""
    regimen, plan = _regimen_of(knowledge, plan_id)
    arm = knowledge.study.arm(regimen.arm)
    kind, plan_text = dexamethasone_plan(regimen)
    sections = "".join(_block_section(regimen, block) for block in regimen.blocks)
    body = (
        f"<h1>{_e(regimen.title)}</h1>"
        f"<p>Arm {_e(arm.key)}: {_e(arm.name)}. Regimen {_e(regimen.key)}.</p>"
        f'<p class="{kind}"><strong>{_e(plan_text)}</strong></p>'
        f"{sections}"
        f'<p class="meta">Version {_e(plan.get("version"))} ({_e(plan.get("status"))}), '
        f"{_e(plan.get('date'))}; {_e(plan.get('publisher'))}.</p>"
        f"<p>{_registry_link(knowledge)} · "
        f'<a href="{_e(regimens_url(base_url))}">All regimens of {_e(knowledge.study.nct_id)}</a> · '
        f'<a href="{_e(fhir_url(base_url, "PlanDefinition", plan["id"]))}">FHIR PlanDefinition (JSON)</a></p>'
    )
    return _page(regimen.title, body)


def regimens_index(knowledge: Knowledge, base_url: str) -> str:
    """The protocol's arms, each with its regimens' pages."""
    study = knowledge.study
    arms = []
    for arm in study.arms:
        items = "".join(
            f'<li><a href="{_e(regimen_url(base_url, _plan_id(knowledge, r)))}">{_e(r.title)}</a> — '
            f"{_e(dexamethasone_plan(r)[1])}</li>"
            for r in knowledge.regimens if r.arm == arm.key)
        arms.append(f"<section><h2>Arm {_e(arm.key)}: {_e(arm.name)}</h2><p>{_e(arm.description)}</p>"
                    f"<ul>{items}</ul></section>")
    protocol = knowledge.artifacts.resolve(study.protocol_url, "protocol")
    title = f"{study.nct_id}: arms and regimens"
    body = (
        f"<h1>{_e(title)}</h1><p>{_e(study.title)}</p>{''.join(arms)}"
        f"<p>{_registry_link(knowledge)} · "
        f'<a href="{_e(fhir_url(base_url, "PlanDefinition", protocol["id"]))}">Protocol PlanDefinition '
        f'(JSON)</a> · <a href="{_e(base_url.rstrip("/") + "/fhir/metadata")}">FHIR endpoint</a></p>'
    )
    return _page(title, body)


def _plan_id(knowledge: Knowledge, regimen: Regimen) -> str:
    return knowledge.artifacts.by_url[regimen.url]["id"]
