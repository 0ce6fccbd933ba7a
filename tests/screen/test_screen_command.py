"""`cds-service screen` as a coordinator runs it: output file, formats, and every bad-input case (exit 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.cli import main
from tests.fixtures.eligibility.builders import baseline, condition, patient
from tests.fixtures.eligibility.population import bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clinic(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(bundle([*baseline("p1"), patient("p3"), condition("I10", rid="htn", pid="p3")])))
    return path


def test_writes_csv_to_the_output_file(clinic, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["screen", str(clinic), "--out", str(out), "--today", "2026-11-24"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["patient"], r["overall"], r["I5"]) for r in rows] == [("p1", "needs-review", "met")]
    err = capsys.readouterr().err
    assert "screened 2 patient(s)" in err and "1 with multiple myeloma written" in err
    assert not (tmp_path / "rows.csv.partial").exists()


def test_writes_json_to_standard_output(clinic, capsys):
    assert main(["screen", str(clinic), "--format", "json", "--today", "2026-11-24"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["patient"] for r in rows] == ["p1"] and rows[0]["criteria"][4]["id"] == "I5"


def test_today_decides_recency(clinic, capsys):
    # ECOG recorded ten days before 2026-11-24 is too old for the 90-day window a year later.
    assert main(["screen", str(clinic), "--today", "2027-11-24"]) == 0
    row = next(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert row["I5"] == "unknown"


def not_json(tmp_path):
    path = tmp_path / "export.json"
    path.write_text("this is not json")
    return path


def not_fhir(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"hello": "world"}))
    return path


def not_fhir_ndjson(tmp_path):
    path = tmp_path / "Patient.ndjson"
    path.write_text("hello\n")
    return path


def empty_ndjson(tmp_path):
    path = tmp_path / "Patient.ndjson"
    path.write_text("\n")
    return path


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "nowhere", "no such file or folder"),
    (not_json, "not JSON"),
    (not_fhir, "not FHIR JSON (the document is not a resource with a resourceType)"),
    (not_fhir_ndjson, "not FHIR JSON (line 1 is not a resource"),
    (empty_ndjson, "no FHIR resource in this file"),
    (empty_folder, "no .json or .ndjson files in this folder"),
])
def test_bad_input_is_a_clear_error_and_exit_2(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert main(["screen", str(path)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and str(path) in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_unreadable_file(tmp_path, capsys, monkeypatch):
    path = tmp_path / "export.json"
    path.write_text("{}")
    original = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    assert main(["screen", str(path)]) == 2
    assert f"{path}: cannot be read (Permission denied)" in capsys.readouterr().err


def test_bad_today_and_unwritable_output(clinic, tmp_path, capsys):
    assert main(["screen", str(clinic), "--today", "24/11/2026"]) == 2
    assert "--today '24/11/2026' is not a date (YYYY-MM-DD)" in capsys.readouterr().err
    out = tmp_path / "missing-folder" / "rows.csv"
    assert main(["screen", str(clinic), "--out", str(out)]) == 2
    assert "cannot be written" in capsys.readouterr().err and not out.parent.exists()


def test_a_failed_screening_leaves_no_output_file(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text(json.dumps(patient()))
    (tmp_path / "in" / "b.json").write_text("broken")
    out = tmp_path / "rows.csv"
    assert main(["screen", str(tmp_path / "in"), "--out", str(out)]) == 2
    assert "b.json: not JSON" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "rows.csv.partial").exists()


def test_the_installed_command_and_its_help(clinic):
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "screen", "--help"], capture_output=True,
                          text=True, cwd=REPO, check=True)
    assert "--format {csv,json}" in done.stdout and "Bulk FHIR NDJSON" in done.stdout
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "screen", str(clinic), "--today",
                           "2026-11-24"], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0 and done.stdout.startswith("patient,enrolment,overall,")
    assert "\r" not in done.stderr  # no progress bar when stderr is not a terminal
