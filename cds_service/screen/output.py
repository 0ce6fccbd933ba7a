"""Screening rows, written as CSV (one column per criterion) or as a JSON array, one row at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from cds_service.rules.eligibility import Assessment


@dataclass(frozen=True)
class Row:
    """One patient with myeloma: the coordinator's own export, so the patient id is in it."""

    patient: str
    enrolment: str  # the status of a ResearchSubject for this study, if any
    overall: str  # eligible | needs-review | not-eligible, or on-study / study-ended
    assessment: Assessment | None  # None for patients already in the study

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"patient": self.patient, "enrolment": self.enrolment or None,
                               "overall": self.overall}
        if self.assessment is not None:
            history = self.assessment.history
            row.update(self.assessment.as_json())
            row["overall"] = self.overall
            row["priorLines"] = {"min": history.lines_min, "max": history.lines_max}
        return row


class RowWriter:
    """CSV or JSON rows to a text stream, without holding them."""

    def __init__(self, stream: TextIO, fmt: str, criteria: Sequence[str]) -> None:
        self.stream, self.fmt, self.criteria = stream, fmt, tuple(criteria)
        self.count = 0
        if fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(["patient", "enrolment", "overall", "regimens", "prior_lines", *self.criteria,
                                "needs_review"])
        else:
            stream.write("[")

    def write(self, row: Row) -> None:
        if self.fmt == "csv":
            self._csv.writerow(self._csv_row(row))
        else:
            separator = ",\n" if self.count else "\n"
            self.stream.write(separator + json.dumps(row.as_json(), ensure_ascii=False))
        self.count += 1

    def _csv_row(self, row: Row) -> list[str]:
        assessment = row.assessment
        if assessment is None:
            return [row.patient, row.enrolment, row.overall, "", "", *("" for _ in self.criteria), ""]
        history = assessment.history
        lines = (str(history.lines_min) if history.lines_min == history.lines_max
                 else f"{history.lines_min}-{history.lines_max}")
        statuses = {c.id: c.status for c in assessment.criteria}
        return [row.patient, row.enrolment, row.overall, " ".join(assessment.regimens), lines,
                *(statuses.get(cid, "") for cid in self.criteria), " ".join(assessment.unknown)]

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.flush()
