"""`cds-service report --monitor`: each deviation found in the record beside how the cards saw it."""

from __future__ import annotations

import csv
import io
import json
from zoneinfo import ZoneInfo

import pytest

from cds_service.audit.report import SEEN_WORDS, join_monitor, render_joined
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from cds_service.config import Config
from cds_service.monitor.run import run_monitor
from cds_service.runtime import Runtime
from cds_service.security.caller import Caller
from tests.conftest import FIXED_NOW
from tests.fixtures.eligibility.builders import TODAY
from tests.rules.scenario import (
    bundle,
    call,
    care_plan,
    day_of,
    dex_order,
    patient,
    research_study,
    research_subject,
)
from tests.rules.test_exposure import given

PARIS = ZoneInfo("Europe/Paris")
SIGN = "dex-free-order-sign"
SITE = Caller(issuer="https://ehr.site-a.example", tenant="site-a")


def card(outcome: str, *, subject="DXF-1", cycle=3, order_date="2026-10-31", rule="dex-after-cycle-2",
         uuid="c1") -> dict:
    return {"outcome": outcome, "studySubjectId": subject, "cycle": cycle, "cycleDay": 5, "orderDate": order_date,
            "shownOn": order_date, "arm": "B", "regimen": "ICARIA", "rule": rule, "cardUuid": uuid, "site": "site-a",
            "reason": {"system": None, "code": "approved-deviation", "display": "Approved deviation"}
            if outcome == "overridden" else {"system": None, "code": None, "display": None},
            "comment": "PI agreed" if outcome == "overridden" else None}


def monitored(*findings, subject="DXF-1") -> dict:
    return {"study": "NCT06561854", "today": "2026-11-24",
            "patients": [{"studySubjectId": subject, "arm": "B", "regimen": "ICARIA", "site": "Necker",
                          "findings": list(findings)}]}


def finding(code="arm-b-dex-after-cycle-2", cycle=3, day="2026-10-31", starts=("2026-10-31",)) -> dict:
    return {"code": code, "cycle": cycle, "cycleDay": 5, "day": day, "kinds": ["given"],
            "eventStarts": list(starts), "text": f"dexamethasone given {day}, cycle {cycle} day 5"}


def joined(cards, monitor):
    return join_monitor({"potentialDeviations": cards}, monitor)["deviationSources"]


@pytest.mark.parametrize("outcome", ["overridden", "noFeedback", "accepted"])
def test_a_deviation_the_cards_warned_on_is_seen_by_its_outcome(outcome):
    [row] = joined([card(outcome)], monitored(finding()))
    assert (row["seen"], row["cardUuid"], row["studySubjectId"], row["cycle"]) == (outcome, "c1", "DXF-1", 3)


def test_the_strongest_outcome_wins_and_every_card_of_it_is_used():
    rows = joined([card("accepted", uuid="a"), card("overridden", uuid="o", order_date="2026-11-02")],
                  monitored(finding()))
    assert [(r["seen"], r["cardUuid"]) for r in rows] == [("overridden", "o")]


@pytest.mark.parametrize(("other", "why"), [({"subject": "DXF-2"}, "another subject"),
                                            ({"cycle": 4, "order_date": "2026-11-24"}, "another cycle")])
def test_found_only_in_the_record(other, why):
    rows = joined([card("noFeedback", **other)], monitored(finding()))
    assert [r["seen"] for r in rows] == ["recordOnly", "cardOnly"], why


def test_an_order_running_into_cycle_3_matches_its_cycle_2_warning():
    extends = card("noFeedback", cycle=2, order_date="2026-10-10", rule="dex-extends-past-cycle-2")
    [row] = joined([extends], monitored(finding(day="2026-10-27", starts=("2026-10-01",))))
    assert row["seen"] == "noFeedback"


def test_arm_a_cycles_without_dexamethasone_are_found_only_in_the_record():
    [row] = joined([], monitored(finding("arm-a-cycle-without-dex", cycle=2)))
    assert (row["seen"], row["seenLabel"]) == ("recordOnly", "found only in the record")


def test_dose_and_cannot_verify_are_not_deviations_and_accepted_unmatched_cards_are_resolved():
    assert joined([card("accepted")], monitored(finding("dose-differs"), finding("cannot-verify"))) == []


@pytest.fixture
def store(tmp_path):
    opened = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3", clock=lambda: FIXED_NOW)
    yield opened
    opened.close(timeout=5)


def test_report_shows_both_sources_side_by_side(store, knowledge, tmp_path, monkeypatch, capsys):
    """Through the real service and monitor: a warning overridden, one unanswered, one only in the record."""
    runtime = Runtime(config=Config(), knowledge=knowledge, audit=store, clock=lambda: FIXED_NOW)
    for order_id, day in (("over", day_of(3, 5)), ("silent", day_of(4, 2))):
        (warning,) = runtime.call(SIGN, call(orders=(dex_order(day, order_id=order_id),)), {}, SITE)["cards"]
        if order_id == "over":
            runtime.feedback(SIGN, {"feedback": [{"card": warning["uuid"], "outcome": "overridden",
                                                  "outcomeTimestamp": "2026-11-24T10:05:00Z",
                                                  "overrideReason": {"userComment": "PI agreed"}}]}, SITE)
    assert store.flush(10)
    # The record: the overridden order was given (cycle 3 day 5); another subject got dexamethasone unseen.
    other = research_subject(subject_id="subj-2", identifier=[{"system": "urn:aphp:dexfree:subject",
                                                               "value": "DXF-0099"}])
    other["individual"] = {"reference": "Patient/pat-99"}
    plan = {**care_plan(plan_id="cp-2"), "subject": {"reference": "Patient/pat-99"}}
    unseen = {**given(day_of(3, 2), "g-99"), "subject": {"reference": "Patient/pat-99"}}
    export = bundle(patient(), research_study(), research_subject(), care_plan(), given(day_of(3, 5), "g-42"),
                    {**patient(), "id": "pat-99"}, other, plan, unseen)
    (tmp_path / "export.json").write_text(json.dumps(export))
    monitor_out = tmp_path / "monitor.json"
    with monitor_out.open("w") as out:
        run_monitor(tmp_path / "export.json", knowledge, TODAY, PARIS, out=out, fmt="json")
    monkeypatch.setenv("CDS_DATABASE_URL", str(store.url.render_as_string(hide_password=False)))
    assert main(["report", "--format", "json", "--monitor", str(monitor_out)]) == 0
    report = json.loads(capsys.readouterr().out)
    seen = sorted((r["seen"], r["studySubjectId"], r["cycle"]) for r in report["deviationSources"])
    assert seen == [("cardOnly", "DXF-0042", 4), ("overridden", "DXF-0042", 3), ("recordOnly", "DXF-0099", 3)]
    assert report["potentialDeviations"] and report["deviationSourcesBySeen"]["overridden"] == 1
    for fmt in ("csv", "html"):
        text = render_joined(report, fmt)
        assert SEEN_WORDS["recordOnly"] in text.lower() and "DXF-0099" in text
    table = render_joined(report, "csv").split("\n\n")[-1]
    assert [r["seen"] for r in csv.DictReader(io.StringIO(table))] == [
        "warning overridden", "found only in the record", "warning only: not found in the record"]


def test_a_file_that_is_not_a_monitoring_output_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle"}')
    assert main(["report", "--monitor", str(bad)]) == 2
    assert "not a monitoring output" in capsys.readouterr().err
    assert main(["report", "--monitor", str(tmp_path / "none.json")]) == 2
