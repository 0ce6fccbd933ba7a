"""Bulk screening: a 300-patient NDJSON export checked row by row, each input form, the output formats."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cds_service.rules.criteria import CRITERION_IDS
from cds_service.rules.eligibility import assess
from cds_service.rules.facts import Options
from cds_service.screen.progress import Progress
from cds_service.screen.run import screen
from tests.fixtures.eligibility.builders import (
    TODAY,
    baseline,
    build_record,
    condition,
    order,
    patient,
)
from tests.fixtures.eligibility.population import ARCHETYPES, SHARED, bundle, population, write_ndjson

OPTIONS = Options(ecog_window_days=90, zone=ZoneInfo("Europe/Paris"))
COUNT, SEED = 300, 42


def run_screen(knowledge, path: Path, fmt: str = "csv"):
    out = io.StringIO()
    summary = screen(path, knowledge, TODAY, OPTIONS, out=out, fmt=fmt)
    return summary, out.getvalue()


def rows_of(text: str) -> dict[str, dict[str, str]]:
    return {row["patient"]: row for row in csv.DictReader(io.StringIO(text))}


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, dict]:
    """A Bulk FHIR NDJSON export of 300 patients (fixed seed), and each patient's archetype."""
    folder = tmp_path_factory.mktemp("export")
    patients = list(population(COUNT, seed=SEED, detailed=False))
    write_ndjson(folder, iter(patients))
    return folder, {p.pid: p.archetype for p in patients}


@pytest.fixture(scope="module")
def screened(export, knowledge) -> tuple:
    folder, _ = export
    return run_screen(knowledge, folder)


def test_the_export_is_the_bulk_data_layout(export):
    folder, _ = export
    names = sorted(p.name for p in folder.iterdir())
    assert "Condition.000.ndjson" in names and "Condition.001.ndjson" in names  # several files for one type
    assert {"Patient.ndjson", "Observation.ndjson", "MedicationRequest.ndjson", "Medication.ndjson"} <= set(names)


def test_ndjson_export_checked_row_by_row(export, screened):
    _, archetypes = export
    summary, text = screened
    rows = rows_of(text)
    expected_rows = {pid for pid, a in archetypes.items() if a.overall is not None}
    assert set(rows) == expected_rows  # one row per patient with myeloma, none for the others
    assert summary.patients == COUNT and summary.rows == len(expected_rows)
    assert {a.name for a in archetypes.values()} == {a.name for a in ARCHETYPES}
    for pid, row in rows.items():
        archetype = archetypes[pid]
        assert row["overall"] == archetype.overall, (pid, archetype.name)
        assert row["enrolment"] == archetype.enrolment, (pid, archetype.name)
        expected = archetype.expected()
        if expected is None:  # already on study: no screening
            assert all(row[c] == "" for c in CRITERION_IDS)
            continue
        assert row["regimens"] == " ".join(archetype.regimens), (pid, archetype.name)
        assert {c: row[c] for c in CRITERION_IDS} == expected, (pid, archetype.name)
        assert row["needs_review"] == " ".join(c for c in CRITERION_IDS if expected[c] == "unknown")


def test_csv_header(screened):
    _, text = screened
    header = text.splitlines()[0].split(",")
    assert header == ["patient", "enrolment", "overall", "regimens", "prior_lines", *CRITERION_IDS, "needs_review"]


def test_invalid_resources_are_skipped_and_counted_without_patient_data(export, screened):
    _, archetypes = export
    summary, _ = screened
    invalid = sum(1 for a in archetypes.values() if a.name == "invalid-ecog")
    assert summary.invalid == {"Observation": invalid}
    text = " ".join(summary.warnings())
    assert f"{invalid} resource(s) skipped: not valid FHIR R4 (Observation {invalid})" in text
    assert not any(pid in text for pid in archetypes)


def test_screening_reads_what_the_service_would(knowledge, tmp_path):
    """The cut-down, pre-selected resources of the screen give the same result as whole records."""
    patients = list(population(2 * len(ARCHETYPES), seed=7, detailed=True))
    write_ndjson(tmp_path, iter(patients))
    _, text = run_screen(knowledge, tmp_path, fmt="json")
    rows = {row["patient"]: row for row in json.loads(text)}
    for synthetic in patients:
        if synthetic.pid not in rows or rows[synthetic.pid]["overall"] == "on-study":
            continue
        whole = assess(build_record([*synthetic.resources, *SHARED], synthetic.pid), knowledge, TODAY, OPTIONS)
        row = rows[synthetic.pid]
        assert row["overall"] == whole.overall and row["regimens"] == list(whole.regimens)
        assert row["criteria"] == whole.as_json()["criteria"], synthetic.archetype.name


def test_json_rows(knowledge, tmp_path):
    write_ndjson(tmp_path, population(len(ARCHETYPES), seed=3))
    _, text = run_screen(knowledge, tmp_path, fmt="json")
    rows = json.loads(text)
    assert rows and all(set(r) >= {"patient", "overall"} for r in rows)
    screened = [r for r in rows if r["overall"] not in ("on-study",)]
    assert screened and all(len(r["criteria"]) == 23 and {"min", "max"} == set(r["priorLines"]) for r in screened)


def test_empty_json_output_is_a_valid_array(knowledge, tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient("x")) + "\n")
    _, text = run_screen(knowledge, tmp_path, fmt="json")
    assert json.loads(text) == []


def two_patients() -> list[dict]:
    other = [r for r in baseline("p2")]
    other.append(order("pomalidomide", rid="p2-pom", pid="p2", start="2023-01-02", end="2023-06-01"))
    return [*baseline("p1"), *other, patient("p3"), condition("I10", rid="p3-htn", pid="p3")]


def test_a_bundle_file(knowledge, tmp_path):
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(bundle(two_patients())))
    summary, text = run_screen(knowledge, path)
    rows = rows_of(text)
    assert set(rows) == {"p1", "p2"} and summary.patients == 3
    assert rows["p1"]["regimens"] == "ICARIA IKEMA" and rows["p2"]["regimens"] == "IKEMA"


def test_a_transaction_bundle_with_uuid_references(knowledge, tmp_path):
    resources = [*baseline("p1"), {"resourceType": "Medication", "id": "pom-med", "code": {"text": "Imnovid"}},
                 order(None, rid="ref", pid="p1", start="2023-01-02", end="2023-06-01",
                       medication_reference="Medication/pom-med")]
    path = tmp_path / "transaction.json"
    path.write_text(json.dumps(bundle(resources, uuid_refs=True)))
    _, text = run_screen(knowledge, path)
    rows = rows_of(text)
    assert list(rows) == ["p1"] and rows["p1"]["regimens"] == "IKEMA"


def test_a_folder_of_json_resources_and_bundles(knowledge, tmp_path):
    resources = two_patients()
    for resource in resources[:10]:
        (tmp_path / f"{resource['resourceType']}-{resource['id']}.json").write_text(json.dumps(resource))
    (tmp_path / "rest.json").write_text(json.dumps(bundle(resources[10:])))
    (tmp_path / "notes.txt").write_text("not read")
    _, text = run_screen(knowledge, tmp_path)
    assert set(rows_of(text)) == {"p1", "p2"}


def test_gzipped_ndjson(knowledge, tmp_path):
    with gzip.open(tmp_path / "Patient.ndjson.gz", "wt") as out:
        out.write(json.dumps(patient("p1")) + "\n")
    with gzip.open(tmp_path / "Condition.ndjson.gz", "wt") as out:
        out.write(json.dumps(condition("C90.02", rid="mm")) + "\n")
    _, text = run_screen(knowledge, tmp_path)
    assert rows_of(text)["p1"]["I2"] == "met"


def test_same_rows_from_every_input_form(knowledge, tmp_path):
    resources = two_patients()
    (tmp_path / "ndjson").mkdir()
    for resource in resources:
        with (tmp_path / "ndjson" / f"{resource['resourceType']}.ndjson").open("a") as out:
            out.write(json.dumps(resource) + "\n")
    (tmp_path / "bundle.json").write_text(json.dumps(bundle(resources)))
    (tmp_path / "folder").mkdir()
    for index, resource in enumerate(resources):
        (tmp_path / "folder" / f"{index:03d}.json").write_text(json.dumps(resource))
    texts = {form: run_screen(knowledge, tmp_path / form)[1]
             for form in ("ndjson", "bundle.json", "folder")}
    assert texts["ndjson"] == texts["bundle.json"] == texts["folder"]


def test_malformed_lines_after_the_first_are_counted(knowledge, tmp_path):
    lines = [json.dumps(r) for r in baseline() if r["resourceType"] == "Condition"]
    (tmp_path / "Condition.ndjson").write_text("\n".join([lines[0], "{not json", "[1, 2]", ""]) + "\n")
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient()) + "\n")
    summary, text = run_screen(knowledge, tmp_path)
    assert summary.malformed == 2 and "p1" in rows_of(text)
    assert any(w.startswith("2 NDJSON line(s), Bundle entr(y/ies) or patient(s) skipped as unreadable")
               for w in summary.warnings())


def test_types_absent_from_the_input_are_pointed_out(knowledge, tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient()) + "\n")
    warnings = run_screen(knowledge, tmp_path)[0].warnings()
    assert "no Procedure resources in the input: the criteria read them as absent" in warnings


def test_progress_only_on_a_terminal(knowledge, tmp_path):
    (tmp_path / "bundle.json").write_text(json.dumps(bundle(two_patients())))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, shown in ((io.StringIO(), False), (Terminal(), True)):
        screen(tmp_path, knowledge, TODAY, OPTIONS, out=io.StringIO(), progress=Progress(stream))
        assert ("screening: 3/3 patients" in stream.getvalue()) is shown
        assert stream.getvalue().endswith("\r\x1b[2K") is shown


def test_the_export_fixture_folder_is_left_alone(export):
    folder, _ = export
    copy = folder.parent / "copy"
    shutil.copytree(folder, copy)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
