"""Monitoring output: one entry per enrolled patient, written as it comes (CSV, JSON or HTML), then a summary.

Rows name the study subject identifier (`ResearchSubject.identifier` of this study), never the patient's
name or EHR id, nor the ids of the resources found (the site finds them by subject, day and kind). The
summary, per arm and site, is the only thing held until the end (a few counters per arm and site).
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from cds_service.rules.exposure import FINDINGS, KINDS, CycleExposure, Finding, Monitoring

NO_SUBJECT = "(no study subject identifier)"
# A FHIR reference (`CarePlan/123`, `ResearchSubject/abc`) in the rules' explanations: its id is an EHR id.
_REFERENCE = re.compile(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}\b")


def plain(text: str | None) -> str | None:
    """The rules' words without EHR ids: `CarePlan/123 period.start` becomes `the CarePlan period.start`."""
    return _REFERENCE.sub(lambda m: f"the {m.group(1)}", text) if text else text


def _d(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _mg(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


def finding_json(finding: Finding) -> dict[str, Any]:
    return {"code": finding.code, "cycle": finding.cycle, "cycleDay": finding.cycle_day,
            "day": _d(finding.day), "kinds": list(finding.kinds),
            "eventStarts": [d.isoformat() for d in finding.starts], "text": plain(finding.text)}


def _cycle_json(cycle: CycleExposure) -> dict[str, Any]:
    return {"cycle": cycle.cycle, "start": _d(cycle.start), "end": _d(cycle.end),
            "regimenGivesDexamethasone": cycle.expected,
            "dexamethasone": [{"kind": e.kind, "day": e.day.isoformat(), "cycleDay": e.cycle_day,
                               "days": e.days, "doseMg": e.dose_mg, "dose": e.dose_how, "route": e.route_how,
                               "startedOn": e.starts.isoformat()} for e in cycle.events],
            "givenMg": _mg(cycle.given_mg), "cumulativeGivenMg": _mg(cycle.cumulative_mg)}


def as_json(m: Monitoring) -> dict[str, Any]:
    """One patient, as the JSON format writes it (and `report --monitor` reads it)."""
    return {"studySubjectId": m.subject_id, "site": m.site, "status": m.status, "arm": m.arm,
            "regimen": m.regimen, "regimenHow": plain(m.regimen_how), "cycle1Day1": _d(m.c1d1),
            "cycle1Day1How": plain(m.c1d1_how),
            "currentCycle": m.cycle, "currentCycleDay": m.cycle_day, "givenMg": _mg(m.given_mg),
            "cycles": [_cycle_json(c) for c in m.cycles], "findings": [finding_json(f) for f in m.findings]}


@dataclass
class _Group:
    patients: int = 0
    cycles: int = 0
    given_mg: float = 0.0
    findings: Counter[str] = field(default_factory=Counter)
    patients_with: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    """Per arm and site: patients, cycles, systemic dexamethasone given, findings (and patients with each)."""

    groups: dict[tuple[str, str], _Group] = field(default_factory=lambda: defaultdict(_Group))

    def add(self, m: Monitoring) -> None:
        group = self.groups[(m.arm or "unknown", m.site)]
        group.patients += 1
        group.cycles += len(m.cycles)
        group.given_mg += m.given_mg
        codes = Counter(f.code for f in m.findings)
        group.findings.update(codes)
        group.patients_with.update(codes.keys())

    def rows(self) -> list[dict[str, Any]]:
        return [{"arm": arm, "site": site, "patients": g.patients, "cycles": g.cycles,
                 "givenMg": _mg(g.given_mg), "findings": {c: g.findings[c] for c in FINDINGS},
                 "patientsWith": {c: g.patients_with[c] for c in FINDINGS}}
                for (arm, site), g in sorted(self.groups.items())]


def _events_cell(cycle: CycleExposure, kind: str) -> str:
    return "; ".join(f"{e.day.isoformat()} (day {e.cycle_day}{f', {e.days} days' if e.days > 1 else ''}"
                     f"{', ' + e.dose_how if e.dose_how else ''}, {e.route_how})"
                     for e in cycle.events if e.kind == kind)


def _cell(value: Any) -> Any:
    # Free text must never run as a spreadsheet formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


CSV_COLUMNS = ("study_subject_id", "site", "status", "arm", "regimen", "cycle1_day1", "cycle1_day1_how",
               "current_cycle", "cycle", "cycle_start", "cycle_end", "regimen_gives_dexamethasone",
               *KINDS, "given_mg", "cumulative_given_mg", "findings")
SUMMARY_COLUMNS = ("arm", "site", "patients", "cycles", "given_mg", *(f"{c}" for c in FINDINGS),
                   *(f"patients_with_{c}" for c in FINDINGS))


class MonitorWriter:
    """CSV (one row per patient and cycle, a patient row for findings outside any cycle, then the summary
    table after an empty row), JSON (one document: header, patients, summary) or HTML (one page)."""

    def __init__(self, stream: TextIO, fmt: str, header: dict[str, Any]) -> None:
        self.stream, self.fmt, self.header = stream, fmt, header
        self.summary, self.count = Summary(), 0
        if fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)
        elif fmt == "json":
            stream.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "patients": [')
        else:
            stream.write(_html_head(header))

    def write(self, m: Monitoring) -> None:
        self.summary.add(m)
        if self.fmt == "csv":
            self._write_csv(m)
        elif self.fmt == "json":
            self.stream.write((",\n" if self.count else "\n") + json.dumps(as_json(m), ensure_ascii=False))
        else:
            self.stream.write(_html_patient(m))
        self.count += 1

    def _write_csv(self, m: Monitoring) -> None:
        lead = [m.subject_id or NO_SUBJECT, m.site, m.status, m.arm, m.regimen, _d(m.c1d1), plain(m.c1d1_how),
                m.cycle]
        loose = [f for f in m.findings if f.cycle is None]
        blank = ("",) * (4 + len(KINDS))
        self._csv.writerow([_cell(v) for v in (*lead, *blank, _mg(m.given_mg), "", _findings_cell(loose))])
        for cycle in m.cycles:
            found = [f for f in m.findings if f.cycle == cycle.cycle]
            self._csv.writerow([_cell(v) for v in (
                *lead, cycle.cycle, _d(cycle.start), _d(cycle.end), _yes(cycle.expected),
                *(_events_cell(cycle, k) for k in KINDS), _mg(cycle.given_mg), _mg(cycle.cumulative_mg),
                _findings_cell(found))])

    def close(self, counts: dict[str, Any]) -> None:
        rows = self.summary.rows()
        if self.fmt == "csv":
            self._csv.writerow([])
            self._csv.writerow(SUMMARY_COLUMNS)
            for r in rows:
                self._csv.writerow([_cell(r["arm"]), _cell(r["site"]), r["patients"], r["cycles"],
                                    r["givenMg"],
                                    *(r["findings"][c] for c in FINDINGS),
                                    *(r["patientsWith"][c] for c in FINDINGS)])
        elif self.fmt == "json":
            tail = json.dumps({"summary": rows, "input": counts}, ensure_ascii=False)
            self.stream.write(("\n" if self.count else "") + "], " + tail[1:] + "\n")
        else:
            self.stream.write(_html_tail(rows, counts))
        self.stream.flush()


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def _findings_cell(findings: list[Finding]) -> str:
    return "; ".join(f"{f.code}: {plain(f.text)}" for f in findings)


def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;
margin:.5em 0 1.5em;width:100%}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;
overflow-wrap:break-word}th{background:#f2f2f2}td.n{text-align:right}.finding{color:#b71c1c}
.cannot{color:#6d4c41}"""


def _html_head(header: dict[str, Any]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{_e(header["title"])}</title>'
            f"<style>{_STYLE}</style></head><body>\n<h1>{_e(header['title'])}</h1>\n"
            f"<p>Study {_e(header['study'])}; on {_e(header['today'])} ({_e(header['timezone'])}). Systemic "
            "dexamethasone found in the record, per enrolled patient and cycle.</p>\n")


def _html_patient(m: Monitoring) -> str:
    title = (f"{_e(m.subject_id or NO_SUBJECT)} — arm {_e(m.arm or 'unknown')}, "
             f"{_e(m.regimen or 'regimen unknown')}, site {_e(m.site)}")
    facts = (f"Cycle 1 day 1: {_e(_d(m.c1d1) or 'unknown')} ({_e(plain(m.c1d1_how))}); current cycle: "
             f"{_e(m.cycle or 'unknown')}; given in all: {_e(_mg(m.given_mg))} mg.")
    items = "".join(f'<li class="{"cannot" if f.code == "cannot-verify" else "finding"}">'
                    f"<b>{_e(f.code)}</b>: {_e(plain(f.text))}</li>" for f in m.findings)
    rows = "".join(
        f'<tr><td class="n">{c.cycle}</td><td>{_e(_d(c.start))}</td><td>{_e(_d(c.end))}</td>'
        f"<td>{_yes(c.expected)}</td>" + "".join(f"<td>{_e(_events_cell(c, k))}</td>" for k in KINDS) +
        f'<td class="n">{_e(_mg(c.given_mg))}</td><td class="n">{_e(_mg(c.cumulative_mg))}</td></tr>'
        for c in m.cycles)
    head = "".join(f"<th>{h}</th>" for h in ("Cycle", "Start", "End", "Regimen gives", *KINDS, "Given mg",
                                             "Cumulative mg"))
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" if rows else ""
    return f"<h2>{title}</h2>\n<p>{facts}</p>\n" + (f"<ul>{items}</ul>\n" if items else "") + table + "\n"


def _html_tail(rows: list[dict[str, Any]], counts: dict[str, Any]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in ("Arm", "Site", "Patients", "Cycles", "Given mg", *FINDINGS))
    body = "".join(f"<tr><td>{_e(r['arm'])}</td><td>{_e(r['site'])}</td>" +
                   "".join(f'<td class="n">{_e(r[k])}</td>' for k in ("patients", "cycles", "givenMg")) +
                   "".join(f'<td class="n">{r["findings"][c]} ({r["patientsWith"][c]} patients)</td>'
                           for c in FINDINGS) + "</tr>" for r in rows)
    read = ", ".join(f"{_e(k)} {_e(v)}" for k, v in counts.items() if not isinstance(v, dict | list))
    return (f"<h2>Summary per arm and site</h2>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table>\n<p>Input: {read}.</p>\n</body></html>\n")
