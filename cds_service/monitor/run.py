"""`cds-service monitor PATH`: the per-patient pass with the monitor's selection, the rules, the writer."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from cds_service.config import Config
from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.monitor.output import MonitorWriter
from cds_service.monitor.selection import MEDICATION_TYPES, external_medication, project, selection
from cds_service.rules.enrolment import enrolment
from cds_service.rules.exposure import monitor
from cds_service.screen.command import run_export
from cds_service.screen.passes import PassSummary, Shared, file_resource, per_patient_pass
from cds_service.screen.progress import Progress

log = logging.getLogger(__name__)

FORMATS = ("csv", "json", "html")
# Types the monitoring reads; an input without any of one kind is pointed out at the end.
_READ = ("Patient", "ResearchSubject", "CarePlan", "MedicationAdministration",
         "MedicationRequest|MedicationDispense|MedicationStatement")


@dataclass
class Summary(PassSummary):
    """What a monitoring read and wrote: counts only, never patient data."""

    reads: tuple[str, ...] = _READ
    reader: str = "the monitoring"
    not_enrolled: int = 0

    def describe(self) -> str:
        return (f"monitored {self.rows} enrolled patient(s) of {self.patients} from {self.resources} "
                f"resource(s) ({self.kept} read)")

    def counts(self) -> dict[str, Any]:
        return {"resources": self.resources, "read": self.kept, "patients": self.patients,
                "enrolled": self.rows, "notEnrolled": self.not_enrolled, "malformedLines": self.malformed,
                "malformedAt": list(self.malformed_at), "invalid": dict(self.invalid),
                "noPatient": self.no_patient}


def _record(patient: str, bodies: list[str], knowledge: Knowledge, shared: Shared, *, summary: Summary,
            zone: ZoneInfo) -> PatientRecord | None:
    """One patient's record, or None when no enrolment in the study is on or past study treatment."""
    record = PatientRecord(patient_id=patient)
    raws = [project(json.loads(body)) for body in bodies]
    for raw in raws:
        if raw["resourceType"] == "ResearchSubject":
            reference = (raw.get("study") or {}).get("reference")
            if reference:
                shared.link(record, reference)
            file_resource(record, raw, summary)
    enrolled = enrolment(record, knowledge, zone)
    if enrolled is None or enrolled.phase == "screening":
        return None  # the rest is not even parsed
    for raw in raws:
        kind = raw["resourceType"]
        if kind == "ResearchSubject":
            continue
        linked = external_medication(raw) if kind in MEDICATION_TYPES else None
        if linked:
            shared.link(record, linked)  # not found: the rules see an unresolved medication
        file_resource(record, raw, summary)
    return record


def run_monitor(path: Path, knowledge: Knowledge, today: date, zone: ZoneInfo, *, out: TextIO,
                fmt: str = "csv", progress: Progress | None = None) -> Summary:
    """Monitor every enrolled patient of the input at `path`; their entries and the summary go to `out`."""
    summary = Summary()
    header = {"title": f"{knowledge.study.nct_id} dexamethasone monitoring", "study": knowledge.study.nct_id,
              "today": today.isoformat(), "timezone": zone.key}
    writer = MonitorWriter(out, fmt, header)

    def visit(patient: str, bodies: list[str], shared: Shared) -> None:
        record = _record(patient, bodies, knowledge, shared, summary=summary, zone=zone)
        found = monitor(record, knowledge, today, zone) if record is not None else None
        if found is None:
            summary.not_enrolled += 1
            return
        writer.write(found)
        summary.rows += 1

    per_patient_pass(path, selection(knowledge), visit, summary, label="monitoring", progress=progress)
    writer.close(summary.counts())
    return summary


def run(args: argparse.Namespace) -> int:
    """The command: exit 0 when monitored, 2 on input it cannot read (the message says which and why)."""
    config = Config.from_env()
    zone = ZoneInfo(config.timezone)

    def work(path: Path, knowledge: Knowledge, today: date, out: TextIO, progress: Progress) -> PassSummary:
        return run_monitor(path, knowledge, today, zone, out=out, fmt=args.format, progress=progress)

    return run_export("monitor", args, config, work)


def add_parser(commands: Any) -> None:
    """The `monitor` subcommand (cli.py adds it with one line)."""
    parser = commands.add_parser("monitor", help="the dexamethasone given to NCT06561854 patients, by arm "
                                 "and cycle, from a FHIR export (possible deviations)")
    parser.add_argument("path", help="a Bundle file, a folder of JSON resources/Bundles, or a folder of Bulk "
                        "FHIR NDJSON files")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default: csv)")
    parser.add_argument("--out", help="output file (default: standard output)")
    parser.add_argument("--today", help="monitoring date, YYYY-MM-DD (default: today in CDS_TIMEZONE)")
    parser.set_defaults(handler=run)
