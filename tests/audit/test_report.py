"""The trial team's report, on both back ends: a fixture of known counts, in json, csv and html."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from cds_service.audit.report import NO_SITE, Vocabulary, build_report, open_for_report, render
from cds_service.cli import main
from cds_service.config import Config
from cds_service.hooks.feedback import parse_feedback
from cds_service.knowledge.model import shared_knowledge
from cds_service.security.caller import ANONYMOUS, Caller
from tests.audit.conftest import SERVICE_ID, at, feedback_body, hook_request, runtime_with

PARIS = ZoneInfo("Europe/Paris")
SITE_A = Caller(issuer="https://ehr.site-a.example", tenant="site-a")
SITE_B = Caller(issuer="https://ehr.site-b.example", tenant="site-b")
RISKY_COMMENT = "=1+1 <b>not bold</b>"


@pytest.fixture
def audited(open_store, card_source):
    """Nine cards over four weeks (one without any), with known outcomes; returns the store and card uuids."""
    now = [at(3)]
    store = open_store(clock=lambda: now[0])
    runtime = runtime_with(store, card_source)
    cards = {}

    def show(name, when, caller, spec, subject="DXF-0042"):
        now[0] = when
        card_source.cards = [spec]
        cards[name] = runtime.call(SERVICE_ID, hook_request(subject), {}, caller)["cards"][0]["uuid"]

    def respond(name, *args, **kwargs):
        store.feedback_received(SERVICE_ID, parse_feedback(feedback_body(cards.get(name, name), *args, **kwargs)),
                                ANONYMOUS)

    arm_b = {"rule": "dex-after-cycle-2", "arm": "B", "cycle": 3, "cycle_day": 1}
    show("c1", at(3, 9), SITE_A, arm_b)
    show("c2", at(3, 10), SITE_A, arm_b)
    show("c3", at(3, 11), SITE_A, {**arm_b, "cycle": 4, "cycle_day": 8})
    show("c4", at(4), SITE_A, {"rule": "dex-dose-mismatch", "arm": "A", "indicator": "info"})
    show("c5", at(4), SITE_A, {"rule": "dex-dose-mismatch", "arm": "A", "indicator": "info"})
    show("c6", at(10), SITE_B, {"rule": "dex-extends-past-cycle-2", "arm": "B", "cycle": 2, "cycle_day": 22},
         "DXF-0107")
    show("c7", at(10, 23), SITE_B, {"rule": "dex-extends-past-cycle-2", "arm": "B", "cycle": 2,
                                    "cycle_day": 25}, "DXF-0107")
    show("c8", at(11), ANONYMOUS, {"rule": None})
    show("c9", at(24), SITE_A, {"rule": "cannot-verify", "arm": "B", "cycle": None})
    respond("c1", "accepted", at="2026-11-03T09:05:00Z")
    respond("c2", "overridden", at="2026-11-03T10:05:00Z", comment="Premedication before isatuximab")
    respond("c3", "overridden", at="2026-11-03T11:05:00Z", code="other", comment=RISKY_COMMENT)
    respond("c4", "accepted", at="2026-11-04T09:05:00Z")
    # Overridden, then the order was withdrawn after all: the latest decision counts.
    respond("c6", "overridden", at="2026-11-10T10:00:00Z")
    respond("c6", "accepted", at="2026-11-10T11:00:00Z")
    respond("c7", "overridden", at="2026-11-10T23:30:00Z", code=None)
    respond("never-shown", "accepted", at="2026-11-24T10:00:00Z")
    assert store.flush(10)
    return store, cards


EXPECTED_COUNTS = [
    {"rule": "cannot-verify", "arm": "B", "site": "site-a", "shown": 1, "accepted": 0, "overridden": 0,
     "noFeedback": 1, "overriddenByReason": []},
    {"rule": "dex-after-cycle-2", "arm": "B", "site": "site-a", "shown": 3, "accepted": 1, "overridden": 2,
     "noFeedback": 0, "overriddenByReason": [
         {"system": "https://dexfree.example/override", "code": "other", "display": "Other", "count": 1},
         {"system": "https://dexfree.example/override", "code": "premedication", "display": "Premedication",
          "count": 1}]},
    {"rule": "dex-dose-mismatch", "arm": "A", "site": "site-a", "shown": 2, "accepted": 1, "overridden": 0,
     "noFeedback": 1, "overriddenByReason": []},
    {"rule": "dex-extends-past-cycle-2", "arm": "B", "site": "site-b", "shown": 2, "accepted": 1,
     "overridden": 1, "noFeedback": 0,
     "overriddenByReason": [{"system": None, "code": None, "display": None, "count": 1}]},
    {"rule": "unknown", "arm": None, "site": NO_SITE, "shown": 1, "accepted": 0, "overridden": 0,
     "noFeedback": 1, "overriddenByReason": []},
]
# The report names rules in the published CodeSystem's words (tests/audit/test_deviations.py checks them).
WORDS = Vocabulary.of(shared_knowledge(Config().plan_definitions))
EXPECTED_COUNTS = [{**c, "ruleLabel": WORDS.rule(c["rule"])} for c in EXPECTED_COUNTS]
EXPECTED_WEEKS = [
    {"week": "2026-W45", "start": "2026-11-02", "shown": 5, "accepted": 2, "overridden": 2, "noFeedback": 1},
    {"week": "2026-W46", "start": "2026-11-09", "shown": 3, "accepted": 1, "overridden": 1, "noFeedback": 1},
    {"week": "2026-W47", "start": "2026-11-16", "shown": 0, "accepted": 0, "overridden": 0, "noFeedback": 0},
    {"week": "2026-W48", "start": "2026-11-23", "shown": 1, "accepted": 0, "overridden": 0, "noFeedback": 1},
]


def report_of(store, since=None):
    engine = open_for_report(store.url.render_as_string(hide_password=False))
    try:
        return build_report(engine, zone=PARIS, since=since, words=WORDS)
    finally:
        engine.dispose()


def test_json_report_has_the_fixture_counts_and_deviations(audited):
    store, cards = audited
    report = json.loads(render(report_of(store), "json"))
    assert report["counts"] == EXPECTED_COUNTS
    assert report["totals"] == {"shown": 9, "accepted": 3, "overridden": 3, "noFeedback": 3}
    assert report["weeks"] == EXPECTED_WEEKS
    assert report["feedbackForUnknownCards"] == 1
    deviations = report["potentialDeviations"]
    # Every arm B warning: the overridden ones first, then the accepted ones (none without feedback here).
    assert [d["cardUuid"] for d in deviations] == [cards["c2"], cards["c3"], cards["c7"], cards["c1"],
                                                   cards["c6"]]
    first, second, third = deviations[:3]
    assert {k: first[k] for k in ("studySubjectId", "patientKeySource", "shownOn", "arm", "regimen", "cycle",
                                  "cycleDay", "rule", "outcomeAt", "comment", "site", "study")} == {
        "studySubjectId": "DXF-0042", "patientKeySource": "study-subject", "shownOn": "2026-11-03", "arm": "B",
        "regimen": "ICARIA", "cycle": 3, "cycleDay": 1, "rule": "dex-after-cycle-2",
        "outcomeAt": "2026-11-03T11:05+01:00", "comment": "Premedication before isatuximab",
        "site": "site-a", "study": "NCT06561854"}
    assert first["reason"] == {"system": "https://dexfree.example/override", "code": "premedication",
                               "display": "Premedication"}
    assert (second["cycle"], second["cycleDay"], second["reason"]["code"], second["comment"]) == (
        4, 8, "other", RISKY_COMMENT)
    # Shown at 23:00 UTC on the 10th: the 11th in Paris, where the trial team works.
    assert (third["studySubjectId"], third["shownOn"], third["site"], third["reason"]["code"]) == (
        "DXF-0107", "2026-11-11", "site-b", None)


def test_since_keeps_the_cards_shown_from_that_day_on(audited):
    store, cards = audited
    report = report_of(store, since=date(2026, 11, 9))
    assert report["since"] == "2026-11-09"
    assert report["totals"] == {"shown": 4, "accepted": 1, "overridden": 1, "noFeedback": 2}
    assert [d["cardUuid"] for d in report["potentialDeviations"]] == [cards["c7"], cards["c6"]]
    assert [w["week"] for w in report["weeks"]] == ["2026-W46", "2026-W47", "2026-W48"]
    assert report_of(store, since=date(2026, 12, 1))["counts"] == []


def csv_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            tables.append(current)
            current = []
        else:
            current.append(row)
    return [*tables, current]


def test_csv_report_has_the_same_numbers_and_is_safe_in_a_spreadsheet(audited):
    store, _ = audited
    counts, deviations = csv_tables(render(report_of(store), "csv"))
    assert counts[0][:7] == ["rule", "arm", "site", "shown", "accepted", "overridden", "no_feedback"]
    assert [row[:7] for row in counts[1:]] == [
        [c["rule"], c["arm"] or "", c["site"], str(c["shown"]), str(c["accepted"]), str(c["overridden"]),
         str(c["noFeedback"])] for c in EXPECTED_COUNTS]
    assert counts[2][7] == "other (Other): 1; premedication (Premedication): 1"
    assert counts[4][7] == "no reason given: 1"
    header, *rows = deviations
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(d["study_subject_id"], d["shown_on"], d["cycle"], d["reason_code"]) for d in by_column] == [
        ("DXF-0042", "2026-11-03", "3", "premedication"), ("DXF-0042", "2026-11-03", "4", "other"),
        ("DXF-0107", "2026-11-11", "2", ""), ("DXF-0042", "2026-11-03", "3", ""),
        ("DXF-0107", "2026-11-10", "2", "")]
    # A comment that starts like a formula is not run by the spreadsheet.
    assert by_column[1]["comment"] == "'" + RISKY_COMMENT


def test_html_report_is_self_contained_with_a_weekly_chart(audited):
    store, _ = audited
    page = render(report_of(store), "html")
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert external not in page, external
    (svg,) = re.findall(r"<svg.*?</svg>", page, re.S)
    segments = re.findall(r"<title>([^<]+)</title></rect>", svg)
    assert segments == ["2026-W45: 2 accepted", "2026-W45: 2 overridden", "2026-W45: 1 no feedback",
                        "2026-W46: 1 accepted", "2026-W46: 1 overridden", "2026-W46: 1 no feedback",
                        "2026-W48: 1 no feedback"]
    # Bar heights are proportional to the counts: the tallest week has 5 cards, 160 px.
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[:3] == [64.0, 64.0, 32.0]
    assert "W47" in svg  # an empty week keeps its place
    rows = re.findall(r'<tr><td class="rule">[^<]*<br><span class="code">dex-after-cycle-2</span></td>'
                      r"<td>B</td><td>site-a</td>(.*?)</tr>", page)
    assert re.findall(r'class="n">(\d+)<', rows[0]) == ["3", "1", "2", "0"]
    assert "Cards shown: 9" in page and "Feedback for unknown cards: 1" in page
    assert "DXF-0107" in page and "Potential deviations: every arm B warning, by outcome (5)" in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold" not in page


def test_report_command_writes_each_format(audited, monkeypatch, tmp_path, capsys):
    store, _ = audited
    monkeypatch.setenv("CDS_DATABASE_URL", store.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CDS_TIMEZONE", "Europe/Paris")
    assert main(["report", "--format", "json", "--out", str(tmp_path / "out" / "report.json")]) == 0
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    expected = report_of(store)
    assert written["counts"] == EXPECTED_COUNTS
    assert {k: v for k, v in written.items() if k != "generatedAt"} == {
        k: v for k, v in expected.items() if k != "generatedAt"}
    assert main(["report", "--since", "2026-11-20"]) == 0
    counts, deviations = csv_tables(capsys.readouterr().out)
    assert [row[0] for row in counts[1:]] == ["cannot-verify"] and len(deviations) == 1
    assert main(["report", "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_report_command_says_what_is_wrong(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path}/nothing-here.sqlite3")
    assert main(["report"]) == 2
    assert "No audit store at" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here.sqlite3").exists()
    monkeypatch.setenv("CDS_DATABASE_URL", "sqlite:///:memory:")
    assert main(["report"]) == 2
    assert "in-memory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--since", "last week"])
    assert exit_info.value.code == 2
    assert "is not a date" in capsys.readouterr().err


def test_report_of_an_empty_store(open_store):
    store = open_store()
    report = report_of(store)
    assert report["counts"] == [] and report["weeks"] == [] and report["potentialDeviations"] == []
    assert "No cards in this period." in render(report, "html")
    assert csv_tables(render(report, "csv"))[0] == [["rule", "arm", "site", "shown", "accepted", "overridden",
                                                    "no_feedback", "overridden_by_reason", "rule_label"]]
