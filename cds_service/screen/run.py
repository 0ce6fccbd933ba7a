"""`cds-service screen PATH`: the two passes of bulk screening (see the package docstring) and the command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from fhir.resources.R4B.resource import Resource

from cds_service.config import Config
from cds_service.fhir.assemble import remember
from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge, load_knowledge
from cds_service.logs import log_event
from cds_service.rules.criteria import CRITERION_IDS
from cds_service.rules.eligibility import assess, has_myeloma
from cds_service.rules.enrolment import enrolment
from cds_service.rules.facts import Options
from cds_service.screen.intern import Interner
from cds_service.screen.output import Row, RowWriter
from cds_service.screen.progress import Progress
from cds_service.screen.relevance import (
    MEDICATION_TYPES,
    PATIENT_TYPES,
    SHARED_TYPES,
    external_medication,
    keep,
    line_filter,
    medication_matches,
    patient_key,
    project,
    reference_key,
)
from cds_service.screen.sources import Hooks, InputError, input_files, read_all, total_bytes
from cds_service.screen.store import PatientStore

log = logging.getLogger(__name__)

_FIELDS = {
    "Condition": "conditions", "Observation": "observations", "Procedure": "procedures",
    "MedicationRequest": "medication_requests", "MedicationAdministration": "medication_administrations",
    "MedicationStatement": "medication_statements", "ResearchSubject": "research_subjects",
}
# Resource types the criteria read; an input without any of one kind is pointed out at the end.
_READ = ("Patient", "Condition", "Observation", "Procedure", "MedicationRequest|MedicationAdministration|"
         "MedicationStatement")
_PHASE_ROW = {"on-treatment": "on-study", "ended": "study-ended"}


@dataclass
class Summary:
    """What a screening read and wrote: counts only, never patient data."""

    resources: int = 0
    kept: int = 0
    patients: int = 0
    rows: int = 0
    malformed: int = 0  # NDJSON lines that are not JSON resources
    no_patient: int = 0  # resources the criteria read whose patient could not be told
    invalid: Counter[str] = field(default_factory=Counter)  # kept resources that do not validate (by type)
    types: Counter[str] = field(default_factory=Counter)

    def warnings(self) -> list[str]:
        found = []
        if self.malformed:
            found.append(f"{self.malformed} NDJSON line(s) skipped: not a JSON resource")
        if self.invalid:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.invalid.items()))
            found.append(f"{sum(self.invalid.values())} resource(s) skipped: not valid FHIR R4 ({kinds})")
        if self.no_patient:
            found.append(f"{self.no_patient} resource(s) skipped: no Patient reference")
        for kinds in _READ:
            if not any(self.types[k] for k in kinds.split("|")):
                found.append(f"no {kinds.replace('|', ' / ')} resources in the input: the criteria read them "
                             "as absent")
        return found

    def describe(self) -> str:
        return (f"screened {self.patients} patient(s) from {self.resources} resource(s) ({self.kept} read); "
                f"{self.rows} with multiple myeloma written")

    def log_fields(self) -> dict[str, Any]:
        return {"resources": self.resources, "kept": self.kept, "patients": self.patients, "rows": self.rows,
                "malformed": self.malformed, "noPatient": self.no_patient, "invalid": dict(self.invalid)}


def _index(files: list[Path], knowledge: Knowledge, store: PatientStore, summary: Summary,
           progress: Progress) -> None:
    """Pass 1: every resource to its patient's rows (kept and cut down), shared ones by reference."""
    total, done = total_bytes(files), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress.update("reading", done, total, "B")

    def malformed() -> None:
        summary.malformed += 1

    def skipped(kind: str) -> None:
        summary.resources += 1
        summary.types[kind] += 1

    filters: dict[str, Any] = {}

    def line_filter_of(kind: str) -> Any:
        if kind not in filters:
            filters[kind] = line_filter(kind, knowledge)
        return filters[kind]

    hooks = Hooks(progress=advance, malformed=malformed, line_filter=line_filter_of, skipped=skipped)
    for item in read_all(files, hooks):
        raw, kind = item.raw, item.raw["resourceType"]
        summary.resources += 1
        summary.types[kind] += 1
        if kind in SHARED_TYPES:
            keys = [k for k in (f"{kind}/{raw['id']}" if raw.get("id") else None, item.full_url) if k]
            if keys and (kind != "Medication" or medication_matches(raw, knowledge)):
                store.add_shared(keys, json.dumps(project(raw)))
            continue
        if kind not in PATIENT_TYPES:
            continue
        if not keep(raw, knowledge):
            continue
        patient = patient_key(raw, item.aliases, item.full_url)
        if patient is None:
            summary.no_patient += 1
        else:
            summary.kept += 1
            # An NDJSON line is stored as read (cheaper than encoding it again); cut down when read back.
            store.add(patient, item.line.decode() if item.line else json.dumps(project(raw)))


_INTERNER = Interner()


def _parse(raw: dict[str, Any], summary: Summary) -> Resource | None:
    try:
        return _INTERNER.parse(raw)
    except ValueError:
        summary.invalid[str(raw.get("resourceType"))[:40]] += 1
        return None


class _Shared:
    """Shared resources (Medication, ResearchStudy), parsed once and kept in a bounded cache."""

    def __init__(self, store: PatientStore, summary: Summary) -> None:
        self.store, self.summary = store, summary
        self.get = lru_cache(maxsize=512)(self._load)

    def _load(self, reference: str) -> tuple[dict[str, Any], Resource] | None:
        body = self.store.shared(reference)
        key = reference_key(reference)
        if body is None and key:
            body = self.store.shared(key)
        if body is None:
            return None
        raw = json.loads(body)
        model = _parse(raw, self.summary)
        return (raw, model) if model is not None else None


def _file(record: PatientRecord, raw: dict[str, Any], summary: Summary) -> None:
    model = _parse(raw, summary)
    if model is None:
        return
    kind = raw["resourceType"]
    if kind == "Patient":
        record.patient = record.patient or model
    else:
        getattr(record, _FIELDS[kind]).append(model)
    remember(record, model)


def _record(patient: str, bodies: list[str], knowledge: Knowledge, shared: _Shared,
            summary: Summary) -> PatientRecord | None:
    """One patient's record (R4B, as the service builds it), or None without multiple myeloma."""
    record = PatientRecord(patient_id=patient)
    raws = [project(json.loads(body)) for body in bodies]
    for raw in raws:
        if raw["resourceType"] == "Condition":
            _file(record, raw, summary)
    if not has_myeloma(record, knowledge):
        return None  # the rest is not even parsed
    for raw in raws:
        kind = raw["resourceType"]
        if kind == "Condition":
            continue
        linked = external_medication(raw) if kind in MEDICATION_TYPES else None
        if kind == "ResearchSubject":
            linked = (raw.get("study") or {}).get("reference")
        if linked:
            found = shared.get(linked)
            if found is None and kind != "ResearchSubject":
                continue  # its Medication is not an anti-myeloma drug (or not in the export)
            if found is not None:
                record.referenced[linked] = found[1]
                remember(record, found[1])
        _file(record, raw, summary)
    return record


def screen(path: Path, knowledge: Knowledge, today: date, options: Options, *, out: TextIO,
           fmt: str = "csv", progress: Progress | None = None) -> Summary:
    """Screen every patient of the input at `path`; one row per patient with myeloma is written to `out`."""
    progress = progress or Progress(sys.stderr, enabled=False)
    files = input_files(path)
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="dexfree-screen-") as folder:
        store = PatientStore(Path(folder))
        try:
            _index(files, knowledge, store, summary, progress)
            summary.patients = store.finish()
            writer = RowWriter(out, fmt, CRITERION_IDS)
            shared = _Shared(store, summary)
            for number, (patient, bodies) in enumerate(store.patients(), start=1):
                progress.update("screening", number, summary.patients, "patients")
                record = _record(patient, bodies, knowledge, shared, summary)
                if record is None:
                    continue
                writer.write(_row(record, knowledge, today, options))
                summary.rows += 1
            writer.close()
        finally:
            store.close()
            progress.close()
    return summary


def _row(record: PatientRecord, knowledge: Knowledge, today: date, options: Options) -> Row:
    enrolled = enrolment(record, knowledge, options.zone)
    if enrolled is not None and enrolled.phase in _PHASE_ROW:
        return Row(record.patient_id, enrolled.status, _PHASE_ROW[enrolled.phase], None)
    assessment = assess(record, knowledge, today, options)
    return Row(record.patient_id, enrolled.status if enrolled else "", assessment.overall, assessment)


def _fail(message: str) -> int:
    print(f"cds-service screen: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """The command: exit 0 when screened, 2 on input it cannot read (the message says which and why)."""
    config = Config.from_env()
    options = Options.from_config(config)
    try:
        today = date.fromisoformat(args.today) if args.today else datetime.now(options.zone).date()
        input_files(Path(args.path))  # bad input is refused before the knowledge is loaded
    except ValueError:
        return _fail(f"--today {args.today!r} is not a date (YYYY-MM-DD)")
    except InputError as exc:
        return _fail(str(exc))
    knowledge = load_knowledge(config.plan_definitions, config.local_valuesets, config.canonical_base)
    target = Path(args.out) if args.out else None
    partial = target.with_name(target.name + ".partial") if target else None
    try:
        with partial.open("w", encoding="utf-8", newline="") if partial else nullcontext(sys.stdout) as out:
            summary = screen(Path(args.path), knowledge, today, options, out=out, fmt=args.format,
                             progress=Progress(sys.stderr))
    except InputError as exc:
        _discard(partial)
        return _fail(str(exc))
    except OSError as exc:
        _discard(partial)
        return _fail(f"{exc.filename or args.out}: cannot be written ({exc.strerror})")
    if partial and target:
        os.replace(partial, target)  # the output appears complete or not at all
    for warning in summary.warnings():
        print(f"cds-service screen: warning: {warning}", file=sys.stderr)
    print(f"cds-service screen: {summary.describe()}", file=sys.stderr)
    log_event(log, "screen finished", **summary.log_fields())
    return 0


def _discard(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


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
