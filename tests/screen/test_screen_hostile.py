"""`cds-service screen` on hostile files (issue 13): a bad line or entry is counted and named, never a crash.

NDJSON lines that are not JSON, not an object, of a resourceType that is not a string, with a subject
reference of the wrong type, nested past the limit; Bundle entries of every broken shape; and a seeded
sweep of hostile values over every path of a Bundle. Each: exit code 0, the screening of the others
done, the bad ones named on stderr by file and line (or entry index), no traceback.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.screen.run import screen
from tests import mutation
from tests.fixtures.eligibility.builders import baseline, patient
from tests.fixtures.eligibility.population import bundle
from tests.screen.test_screen import OPTIONS, TODAY, rows_of

TRACE_MARKS = ("Traceback", 'File "', '.py"')
DEEP = "[" * 150 + "]" * 150


def _screen_command(path: Path, capsys) -> tuple[int, str, str]:
    code = main(["screen", str(path), "--today", TODAY.isoformat()])
    captured = capsys.readouterr()
    assert not any(mark in captured.err for mark in TRACE_MARKS), captured.err
    return code, captured.out, captured.err


def _conditions() -> list[dict]:
    return [r for r in baseline() if r["resourceType"] == "Condition"]


BAD_LINES = {
    "not JSON": "{not json",
    "JSON that is not an object": "[1, 2]",
    "a JSON string": '"Condition"',
    "resourceType an array": json.dumps({"resourceType": ["Condition"], "id": "x"}),
    "resourceType an object": json.dumps({"resourceType": {"a": 1}, "id": "x"}),
    "resourceType a number": json.dumps({"resourceType": 7}),
    "no resourceType": json.dumps({"id": "x"}),
    "nested past the limit": json.dumps({"resourceType": "Condition", "id": "deep", "note": "X"}).replace(
        '"X"', DEEP),
    "truncated": json.dumps(_conditions()[0])[:40],
}
WHY = {"not JSON": "not JSON", "JSON that is not an object": "an array", "a JSON string": "a string",
       "resourceType an array": "its resourceType is an array",
       "resourceType an object": "its resourceType is an object",
       "resourceType a number": "its resourceType is a number", "no resourceType": "no resourceType",
       "nested past the limit": "nested deeper than 100 levels", "truncated": "not JSON"}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_a_bad_ndjson_line_is_counted_and_named_by_line(tmp_path, capsys, kind):
    lines = [json.dumps(r) for r in _conditions()]
    (tmp_path / "Condition.ndjson").write_text("\n".join([lines[0], BAD_LINES[kind], *lines[1:]]) + "\n")
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient()) + "\n")
    code, out, err = _screen_command(tmp_path, capsys)
    assert code == 0 and "p1" in rows_of(out)
    assert "1 NDJSON line(s), Bundle entr(y/ies) or patient(s) skipped as unreadable" in err
    assert f"Condition.ndjson line 2: {WHY[kind]}" in err


@pytest.mark.parametrize("subject", [["Patient/p1"], {"reference": ["Patient/p1"]}, {"reference": 5}, "p1",
                                     {"reference": {"id": "p1"}}], ids=repr)
def test_a_subject_reference_of_the_wrong_type_is_a_resource_without_a_patient(tmp_path, capsys, subject):
    resources = _conditions()
    resources[0] = dict(resources[0], subject=subject)
    (tmp_path / "Condition.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient()) + "\n")
    code, _, err = _screen_command(tmp_path, capsys)
    assert code == 0
    assert "1 resource(s) skipped: no Patient reference" in err


BAD_ENTRIES = [None, 3, "Condition", [], {"resource": None}, {"resource": []},
               {"resource": {"resourceType": ["Condition"]}}, {"fullUrl": "urn:uuid:1"}]


def test_bad_bundle_entries_are_counted_and_named_by_index(tmp_path, capsys):
    document = bundle([*baseline("p1")])
    first_bad = len(document["entry"])
    document["entry"] += BAD_ENTRIES
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(document))
    code, out, err = _screen_command(path, capsys)
    assert code == 0 and "p1" in rows_of(out)
    assert f"{len(BAD_ENTRIES)} NDJSON line(s), Bundle entr(y/ies) or patient(s) skipped as unreadable" in err
    assert f"clinic.json entry[{first_bad}]: the entry is null, not an object" in err
    assert f"clinic.json entry[{first_bad + 6}]: its resourceType is an array" in err


@pytest.mark.parametrize("entry", [{"a": 1}, 5, "x"], ids=repr)
def test_a_bundle_whose_entry_is_not_an_array_is_a_one_line_error(tmp_path, capsys, entry):
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entry}))
    code, _, err = _screen_command(path, capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "clinic.json" in err and "entry is" in err


def test_a_document_nested_too_deep_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "clinic.json"
    path.write_text('{"resourceType": "Patient", "id": "p1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = _screen_command(path, capsys)
    assert code == 2 and "clinic.json" in err


def test_hostile_values_anywhere_in_a_bundle_never_stop_the_screening(knowledge, tmp_path):
    document = bundle([*baseline("p1")])
    rng = random.Random(13)
    catalogue = (*mutation.HOSTILE, *mutation.STRUCTURAL)
    candidates = [p for p in mutation.paths(document) if p[:1] == ("entry",) and len(p) >= 3]
    for number, where in enumerate(rng.sample(candidates, 60)):
        how = rng.choice(catalogue)
        path = tmp_path / f"mutated-{number}.json"
        path.write_text(json.dumps(mutation._set(document, where, how)))
        out = io.StringIO()
        summary = screen(path, knowledge, TODAY, OPTIONS, out=out)  # raises on a crash
        assert summary.resources > 0, (where, how)
