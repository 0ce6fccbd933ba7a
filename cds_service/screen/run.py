"""`cds-service screen PATH`: the two passes of bulk screening (see the package docstring) and the command."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from cds_service.config import Config
from cds_service.fhir import raw as safe
from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.criteria import CRITERION_IDS
from cds_service.rules.eligibility import assess, has_myeloma
from cds_service.rules.enrolment import enrolment
from cds_service.rules.facts import Options
from cds_service.screen.command import run_export
from cds_service.screen.output import Row, RowWriter
from cds_service.screen.passes import PassSummary, Selection, Shared, file_resource, per_patient_pass
from cds_service.screen.progress import Progress
from cds_service.screen.relevance import (
    MEDICATION_TYPES,
    PATIENT_TYPES,
    external_medication,
    keep,
    line_filter,
    medication_matches,
    project,
)

log = logging.getLogger(__name__)

# Resource types the criteria read; an input without any of one kind is pointed out at the end.
_READ = ("Patient", "Condition", "Observation", "Procedure", "MedicationRequest|MedicationAdministration|"
         "MedicationStatement")
_PHASE_ROW = {"on-treatment": "on-study", "ended": "study-ended"}


@dataclass
class Summary(PassSummary):
    """What a screening read and wrote: counts only, never patient data."""

    reads: tuple[str, ...] = _READ

    def describe(self) -> str:
        return (f"screened {self.patients} patient(s) from {self.resources} resource(s) ({self.kept} read); "
                f"{self.rows} with multiple myeloma written")


def selection(knowledge: Knowledge) -> Selection:
    """What screening keeps: the resources a criterion can read (relevance.py), cut down to what it reads."""
    return Selection(
        patient_types=PATIENT_TYPES,
        keep=lambda raw: keep(raw, knowledge),
        project=project,
        keep_shared=lambda raw: raw["resourceType"] != "Medication" or medication_matches(raw, knowledge),
        line_filter=lambda kind: line_filter(kind, knowledge),
    )


def _record(patient: str, bodies: list[str], knowledge: Knowledge, shared: Shared,
            summary: Summary) -> PatientRecord | None:
    """One patient's record (R4B, as the service builds it), or None without multiple myeloma."""
    record = PatientRecord(patient_id=patient)
    raws = [project(json.loads(body)) for body in bodies]
    for raw in raws:
        if raw["resourceType"] == "Condition":
            file_resource(record, raw, summary)
    if not has_myeloma(record, knowledge):
        return None  # the rest is not even parsed
    for raw in raws:
        kind = raw["resourceType"]
        if kind == "Condition":
            continue
        linked = external_medication(raw) if kind in MEDICATION_TYPES else None
        if kind == "ResearchSubject":
            linked = safe.reference(raw, "study")
        if linked and not shared.link(record, linked) and kind != "ResearchSubject":
            continue  # its Medication is not an anti-myeloma drug (or not in the export)
        file_resource(record, raw, summary)
    return record


def screen(path: Path, knowledge: Knowledge, today: date, options: Options, *, out: TextIO,
           fmt: str = "csv", progress: Progress | None = None) -> Summary:
    """Screen every patient of the input at `path`; one row per patient with myeloma is written to `out`."""
    summary = Summary()
    writer: RowWriter | None = None

    def visit(patient: str, bodies: list[str], shared: Shared) -> None:
        nonlocal writer
        writer = writer or RowWriter(out, fmt, CRITERION_IDS)
        record = _record(patient, bodies, knowledge, shared, summary)
        if record is not None:
            writer.write(_row(record, knowledge, today, options))
            summary.rows += 1

    per_patient_pass(path, selection(knowledge), visit, summary, label="screening", progress=progress)
    (writer or RowWriter(out, fmt, CRITERION_IDS)).close()
    return summary


def _row(record: PatientRecord, knowledge: Knowledge, today: date, options: Options) -> Row:
    enrolled = enrolment(record, knowledge, options.zone)
    if enrolled is not None and enrolled.phase in _PHASE_ROW:
        return Row(record.patient_id, enrolled.status, _PHASE_ROW[enrolled.phase], None)
    assessment = assess(record, knowledge, today, options)
    return Row(record.patient_id, enrolled.status if enrolled else "", assessment.overall, assessment)


def run(args: argparse.Namespace) -> int:
    """The command: exit 0 when screened, 2 on input it cannot read (the message says which and why)."""
    config = Config.from_env()
    options = Options.from_config(config)

    def work(path: Path, knowledge: Knowledge, today: date, out: TextIO, progress: Progress) -> Summary:
        return screen(path, knowledge, today, options, out=out, fmt=args.format, progress=progress)

    return run_export("screen", args, config, work)


def add_parser(commands: Any) -> None:
    """The `screen` subcommand (cli.py adds it with one line)."""
    parser = commands.add_parser("screen", help="screen a FHIR export for NCT06561854 eligibility (one row "
                                 "per patient with multiple myeloma)")
    parser.add_argument("path", help="a Bundle file, a folder of JSON resources/Bundles, or a folder of Bulk "
                        "FHIR NDJSON files")
    parser.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="output format (default: csv)")
    parser.add_argument("--out", help="output file (default: standard output)")
    parser.add_argument("--today", help="screening date, YYYY-MM-DD (default: today in CDS_TIMEZONE)")
    parser.set_defaults(handler=run)
