"""The per-patient pass shared by bulk screening and trial monitoring: stream, keep, store by patient, visit.

A command gives a `Selection` (which raw resources it keeps and the elements of them it reads) and a visitor
called with one patient's resources at a time; `per_patient_pass` does the rest (see the package docstring
for the two passes and why memory stays flat). Counts go to a `PassSummary`, never patient data.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B.resource import Resource

from cds_service.fhir import raw as safe
from cds_service.fhir.assemble import remember
from cds_service.fhir.record import PatientRecord
from cds_service.screen.intern import Interner
from cds_service.screen.progress import Progress
from cds_service.screen.relevance import patient_key, reference_key
from cds_service.screen.sources import Hooks, input_files, read_all, total_bytes
from cds_service.screen.store import PatientStore

# PatientRecord list attribute of each patient resource type (Patient is the single `patient`).
RECORD_FIELDS = {
    "Condition": "conditions", "Observation": "observations", "Procedure": "procedures",
    "MedicationRequest": "medication_requests", "MedicationAdministration": "medication_administrations",
    "MedicationStatement": "medication_statements", "MedicationDispense": "medication_dispenses",
    "ResearchSubject": "research_subjects", "CarePlan": "care_plans",
}
SHARED_TYPES = frozenset({"Medication", "ResearchStudy"})
# Positions of malformed lines named in the warning; the rest are only counted.
MAX_POSITIONS = 10


@dataclass(frozen=True)
class Selection:
    """What one command keeps from the input.

    `patient_types`: the resource types of a patient it may read; `keep(raw)`: whether one of them can
    matter; `project(raw)`: the resource cut down to the elements read; `keep_shared(raw)`: whether a
    Medication or ResearchStudy is worth storing; `line_filter(kind)`: see `sources.Hooks`.
    """

    patient_types: frozenset[str]
    keep: Callable[[dict[str, Any]], bool]
    project: Callable[[dict[str, Any]], dict[str, Any]]
    keep_shared: Callable[[dict[str, Any]], bool] = lambda raw: True
    line_filter: Callable[[str], Callable[[bytes], bool] | None] = lambda kind: None


@dataclass
class PassSummary:
    """What a pass read: counts only, never patient data. `reads`: the types whose absence is pointed out
    (alternatives joined by `|`), `reader`: who reads them, in the warning."""

    reads: tuple[str, ...] = ()
    reader: str = "the criteria"
    resources: int = 0
    kept: int = 0
    patients: int = 0
    rows: int = 0
    malformed: int = 0  # NDJSON lines and Bundle entries that are not readable resources
    malformed_at: list[str] = field(default_factory=list)  # the first few, as "file line N"
    # The first unreadable items (malformed, or failing past the checks), by position and why.
    unreadable: list[str] = field(default_factory=list)
    failed: int = 0  # resources (or patients) whose reading failed past the checks: counted, not fatal
    no_patient: int = 0  # resources read whose patient could not be told
    invalid: Counter[str] = field(default_factory=Counter)  # kept resources that do not validate (by type)
    types: Counter[str] = field(default_factory=Counter)

    def warnings(self) -> list[str]:
        found = []
        skipped = self.malformed + self.failed
        if skipped:
            more = skipped - len(self.unreadable)
            positions = "; ".join(self.unreadable) + (f"; and {more} more" if more > 0 else "")
            found.append(f"{skipped} NDJSON line(s), Bundle entr(y/ies) or patient(s) skipped as unreadable "
                         f"({positions})")
        if self.invalid:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.invalid.items()))
            found.append(f"{sum(self.invalid.values())} resource(s) skipped: not valid FHIR R4 ({kinds})")
        if self.no_patient:
            found.append(f"{self.no_patient} resource(s) skipped: no Patient reference")
        for kinds in self.reads:
            if not any(self.types[k] for k in kinds.split("|")):
                found.append(f"no {kinds.replace('|', ' / ')} resources in the input: {self.reader} "
                             "read them as absent")
        return found

    def describe(self) -> str:
        """The closing line of a command (each command says it in its own words)."""
        return f"read {self.patients} patient(s) from {self.resources} resource(s) ({self.kept} kept)"

    def note(self, where: str, why: str) -> None:
        """Remember an unreadable item's position (the first few: a broken export must not flood stderr)."""
        if len(self.unreadable) < MAX_POSITIONS:
            self.unreadable.append(f"{where}: {why}")

    def log_fields(self) -> dict[str, Any]:
        return {"resources": self.resources, "kept": self.kept, "patients": self.patients, "rows": self.rows,
                "malformed": self.malformed, "failed": self.failed, "noPatient": self.no_patient,
                "invalid": dict(self.invalid)}


# What a resource of unvalidated JSON can raise in code that reads it raw (a value of an unexpected JSON
# type the checks missed): that resource (or patient) is counted and named, the pass goes on.
READ_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError, RecursionError, OverflowError)


def index(files: list[Path], selection: Selection, store: PatientStore, summary: PassSummary,
          progress: Progress) -> None:
    """Pass 1: every resource to its patient's rows (kept and cut down), shared ones by reference."""
    total, done = total_bytes(files), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress.update("reading", done, total, "B")

    def malformed(where: str, why: str) -> None:
        summary.malformed += 1
        if len(summary.malformed_at) < MAX_POSITIONS:
            summary.malformed_at.append(where)
        summary.note(where, why)

    def skipped(kind: str) -> None:
        summary.resources += 1
        summary.types[kind] += 1

    filters: dict[str, Any] = {}

    def line_filter_of(kind: str) -> Any:
        if kind not in filters:
            filters[kind] = selection.line_filter(kind)
        return filters[kind]

    hooks = Hooks(progress=advance, malformed=malformed, line_filter=line_filter_of, skipped=skipped)
    for item in read_all(files, hooks):
        try:
            _index_one(item, selection, store, summary)
        except READ_ERRORS as exc:
            summary.failed += 1
            summary.note(item.where, f"could not be read ({type(exc).__name__})")


def _index_one(item: Any, selection: Selection, store: PatientStore, summary: PassSummary) -> None:
    raw, kind = item.raw, item.raw["resourceType"]
    summary.resources += 1
    summary.types[kind] += 1
    if kind in SHARED_TYPES:
        own = safe.text(raw, "id")
        keys = [k for k in (f"{kind}/{own}" if own else None, item.full_url) if k]
        if keys and selection.keep_shared(raw):
            store.add_shared(keys, json.dumps(selection.project(raw)))
        return
    if kind not in selection.patient_types or not selection.keep(raw):
        return
    patient = patient_key(raw, item.aliases, item.full_url)
    if patient is None:
        summary.no_patient += 1
    else:
        summary.kept += 1
        # An NDJSON line is stored as read (cheaper than encoding it again); cut down when read back.
        store.add(patient, item.line.decode() if item.line else json.dumps(selection.project(raw)))


_INTERNER = Interner()


def parse(raw: dict[str, Any], summary: PassSummary) -> Resource | None:
    """The R4B resource (validated parts reused), or None counted as invalid."""
    try:
        return _INTERNER.parse(raw)
    except ValueError:
        summary.invalid[str(raw.get("resourceType"))[:40]] += 1
        return None


class Shared:
    """Shared resources (Medication, ResearchStudy), parsed once and kept in a bounded cache."""

    def __init__(self, store: PatientStore, summary: PassSummary) -> None:
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
        model = parse(raw, self.summary)
        return (raw, model) if model is not None else None

    def link(self, record: PatientRecord, reference: str) -> bool:
        """Make a shared resource reachable from the record; whether it was found."""
        found = self.get(reference)
        if found is None:
            return False
        record.referenced[reference] = found[1]
        remember(record, found[1])
        return True


def file_resource(record: PatientRecord, raw: dict[str, Any], summary: PassSummary) -> None:
    """Parse one raw resource into its place in the record (an invalid one is counted and left out)."""
    model = parse(raw, summary)
    if model is None:
        return
    kind = raw["resourceType"]
    if kind == "Patient":
        record.patient = record.patient or model
    else:
        getattr(record, RECORD_FIELDS[kind]).append(model)
    remember(record, model)


Visitor = Callable[[str, list[str], Shared], None]


def per_patient_pass(path: Path, selection: Selection, visit: Visitor, summary: PassSummary, *,
                     label: str, progress: Progress | None = None) -> PassSummary:
    """Both passes over the input at `path`: index it, then `visit(patient, bodies, shared)` per patient.

    `bodies` are the JSON texts of the patient's kept resources (not yet cut down: `selection.project`).
    """
    progress = progress or Progress(sys.stderr, enabled=False)
    files = input_files(path)
    with tempfile.TemporaryDirectory(prefix=f"dexfree-{label}-") as folder:
        store = PatientStore(Path(folder))
        try:
            index(files, selection, store, summary, progress)
            summary.patients = store.finish()
            shared = Shared(store, summary)
            for number, (patient, bodies) in enumerate(store.patients(), start=1):
                progress.update(label, number, summary.patients, "patients")
                try:
                    visit(patient, bodies, shared)
                except READ_ERRORS as exc:
                    # Named by its rank, not its id: stderr is no place for patient identifiers.
                    summary.failed += 1
                    summary.note(f"patient #{number} (in the store's order)",
                                 f"could not be assessed ({type(exc).__name__})")
        finally:
            store.close()
            progress.close()
    return summary
