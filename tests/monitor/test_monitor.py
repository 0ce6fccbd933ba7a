"""`cds-service monitor`: a synthetic export with known truth, each input form, the output formats, bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cds_service.cli import main
from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.monitor.output import as_json
from cds_service.monitor.run import run_monitor
from cds_service.rules.exposure import monitor
from cds_service.screen.passes import RECORD_FIELDS
from tests.fixtures.eligibility.builders import TODAY
from tests.fixtures.eligibility.population import bundle
from tests.monitor.population import ARCHETYPES, SHARED, SITES, population, write_export

PARIS = ZoneInfo("Europe/Paris")
COUNT = 48  # four of each archetype


def run(knowledge, path: Path, fmt: str = "json"):
    out = io.StringIO()
    summary = run_monitor(path, knowledge, TODAY, PARIS, out=out, fmt=fmt)
    return summary, out.getvalue()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monitor-export")
    patients = list(population(COUNT))
    write_export(folder, iter(patients))
    return folder, patients


@pytest.fixture(scope="module")
def monitored(export, knowledge):
    folder, _ = export
    summary, text = run(knowledge, folder)
    return summary, json.loads(text)


def _found(entry):
    return tuple((f["code"], f["cycle"], f["cycleDay"]) for f in entry["findings"])


def test_every_planted_finding_and_nothing_else(export, monitored):
    _, patients = export
    summary, document = monitored
    by_subject = {entry["studySubjectId"]: entry for entry in document["patients"]}
    for synthetic in patients:
        expected = synthetic.archetype.expected
        entry = by_subject.get(synthetic.subject)
        if expected is None:
            assert entry is None, synthetic.archetype.name
            continue
        assert _found(entry) == expected, (synthetic.archetype.name, entry["findings"])
        assert entry["arm"] == synthetic.archetype.arm
        assert entry["site"] == (synthetic.archetype.site or "(site not recorded)")
    monitored_count = sum(a.expected is not None for a in ARCHETYPES) * COUNT // len(ARCHETYPES)
    assert len(document["patients"]) == summary.rows == monitored_count
    assert summary.warnings() == [] and summary.invalid == {}


def test_the_planted_deviations_say_where_and_what(monitored):
    _, document = monitored
    texts = {f["text"] for entry in document["patients"] for f in entry["findings"]}
    assert any(t.startswith("dexamethasone given ") and "cycle 3 day 1 — possible deviation" in t for t in texts)
    assert any(t.startswith("dexamethasone dispensed ") and "cycle 3 day 1" in t for t in texts)
    assert any(t.startswith("no dexamethasone given or ordered in cycle 3") for t in texts)


def test_cycles_and_cumulative_dose(monitored):
    _, document = monitored
    entry = next(e for e in document["patients"] if _found(e) and _found(e)[0][0] == "arm-a-cycle-without-dex")
    assert entry["regimen"] == "ICARIA" and entry["currentCycle"] == 5 and "CarePlan" in entry["cycle1Day1How"]
    assert [c["givenMg"] for c in entry["cycles"]] == [160, 160, 0, 160, 40]
    assert [c["cumulativeGivenMg"] for c in entry["cycles"]] == [160, 320, 320, 480, 520]
    assert entry["givenMg"] == 520
    given = entry["cycles"][0]["dexamethasone"]
    assert [(g["kind"], g["cycleDay"], g["doseMg"]) for g in given] == [("given", d, 40.0) for d in (1, 8, 15, 22)]


def test_rows_never_name_the_patient(export, monitored):
    _, patients = export
    _, document = monitored
    text = json.dumps(document)
    assert not any(p.pid in text for p in patients)  # EHR patient ids (resource ids start with them too)
    assert "Patient/" not in text and "MedicationAdministration/" not in text


def test_summary_per_arm_and_site(monitored):
    _, document = monitored
    rows = {(r["arm"], r["site"]): r for r in document["summary"]}
    assert rows[("B", SITES[0])]["findings"]["arm-b-dex-after-cycle-2"] == 4
    assert rows[("B", SITES[1])]["patientsWith"]["arm-b-dex-after-cycle-2"] == 4
    assert rows[("A", SITES[0])]["findings"]["arm-a-cycle-without-dex"] == 4
    assert sum(r["patients"] for r in document["summary"]) == len(document["patients"])
    assert document["input"]["notEnrolled"] == 12


def test_the_bulk_record_reads_what_the_full_record_does(export, monitored, knowledge):
    """The cut-down resources of the export give the same answer as the whole resources."""
    _, patients = export
    _, document = monitored
    by_subject = {entry["studySubjectId"]: entry for entry in document["patients"]}
    for synthetic in patients[:12]:
        record = PatientRecord(patient_id=synthetic.pid)
        for raw in (*synthetic.resources, *SHARED):
            resource = parse_resource(raw)
            kind = resource.get_resource_type()
            record.referenced[f"{kind}/{resource.id}"] = resource
            if kind == "Patient":
                record.patient = resource
            elif kind in RECORD_FIELDS and kind not in ("Condition", "Observation", "Procedure"):
                getattr(record, RECORD_FIELDS[kind]).append(resource)
        whole = monitor(record, knowledge, TODAY, PARIS)
        assert (as_json(whole) if whole else None) == by_subject.get(synthetic.subject), synthetic.archetype.name


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    patients = list(population(len(ARCHETYPES), seed=3))
    write_export(folder, iter(patients))
    return folder, patients


def _subjects(document):
    return sorted((e["studySubjectId"], _found(e)) for e in document["patients"])


def test_bundle_folder_of_json_and_gzip_give_the_same_answer(small, knowledge, tmp_path):
    folder, patients = small
    reference = _subjects(json.loads(run(knowledge, folder)[1]))
    resources = [r for p in patients for r in p.resources] + list(SHARED)
    one = tmp_path / "bundle.json"
    one.write_text(json.dumps(bundle(resources, uuid_refs=True)))
    assert _subjects(json.loads(run(knowledge, one)[1])) == reference
    loose = tmp_path / "loose"
    loose.mkdir()
    for number, resource in enumerate(resources):
        (loose / f"r{number:05d}.json").write_text(json.dumps(resource))
    assert _subjects(json.loads(run(knowledge, loose)[1])) == reference
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for path in folder.iterdir():
        with path.open("rb") as source, gzip.open(zipped / f"{path.name}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
    assert _subjects(json.loads(run(knowledge, zipped)[1])) == reference


def test_malformed_lines_are_counted_and_named_never_a_traceback(small, knowledge, tmp_path):
    folder, _ = small
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    with (broken / "MedicationAdministration.ndjson").open("a") as stream:
        stream.write('{"resourceType": "MedicationAdministration", "id": \n')
        stream.write("not json at all\n")
    lines = (broken / "MedicationAdministration.ndjson").read_text().count("\n")
    summary, text = run(knowledge, broken)
    assert summary.malformed == 2
    shown = " ".join(summary.warnings())
    assert "2 NDJSON line(s), Bundle entr(y/ies) or patient(s) skipped as unreadable" in shown
    assert f"MedicationAdministration.ndjson line {lines - 1}: " in shown
    assert f"MedicationAdministration.ndjson line {lines}: " in shown
    assert json.loads(text)["input"]["malformedAt"][0] == f"MedicationAdministration.ndjson line {lines - 1}"


def test_csv_has_a_row_per_patient_and_cycle_then_the_summary(small, knowledge):
    folder, _ = small
    _, text = run(knowledge, folder, "csv")
    table, _, summary = text.partition("\n\n")
    rows = list(csv.DictReader(io.StringIO(table)))
    deviations = [r for r in rows if "arm-b-dex-after-cycle-2" in r["findings"]]
    assert len(deviations) == 2 and {r["cycle"] for r in deviations} == {"3"}
    assert all(r["study_subject_id"].startswith("DXF-") for r in rows)
    assert summary.startswith("arm,site,patients,cycles,given_mg,")


def test_html_is_one_page(small, knowledge):
    folder, _ = small
    _, text = run(knowledge, folder, "html")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "Summary per arm and site" in text and "possible deviation" in text and "<script" not in text


def test_the_command_writes_the_file_whole_or_says_why(small, tmp_path, capsys):
    folder, _ = small
    out = tmp_path / "monitor.json"
    assert main(["monitor", str(folder), "--format", "json", "--out", str(out), "--today", "2026-11-24"]) == 0
    assert json.loads(out.read_text())["today"] == "2026-11-24"
    assert "monitored 9 enrolled patient(s)" in capsys.readouterr().err
    assert main(["monitor", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["monitor", str(folder), "--today", "24/11/2026"]) == 2
    not_fhir = tmp_path / "x.ndjson"
    not_fhir.write_text("hello\n")
    assert main(["monitor", str(not_fhir), "--out", str(tmp_path / "never.csv")]) == 2
    assert "not FHIR" in capsys.readouterr().err and not (tmp_path / "never.csv").exists()
