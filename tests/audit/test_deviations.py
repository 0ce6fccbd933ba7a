"""The deviation report misses nothing: every arm B warning by outcome, dated by its order, reasons named.

Through the real services and knowledge (the cards the rules make), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from cds_service.audit import schema
from cds_service.audit.engine import make_engine, parse_database_url
from cds_service.audit.migrate import alembic_config, head_revision, upgrade
from cds_service.audit.report import Vocabulary, build_report, open_for_report, render
from cds_service.audit.rows import card_rows
from cds_service.config import Config
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.request import parse_hook_request
from cds_service.runtime import Runtime
from cds_service.security.caller import ANONYMOUS, Caller
from tests.audit.conftest import at, finding_card
from tests.conftest import FIXED_NOW
from tests.rules.scenario import call, day_of, dex_order

PARIS = ZoneInfo("Europe/Paris")
SITE = Caller(issuer="https://ehr.site-a.example", tenant="site-a")
SIGN = "dex-free-order-sign"
# The suite's standard arm B ICARIA patient: cycle 3 day 1 is 2026-10-27, today 2026-11-24 (cycle 4 day 1).
CYCLE_3_DAY_5 = day_of(3, 5)
CYCLE_4_DAY_2 = day_of(4, 2)


@pytest.fixture
def service(open_store, knowledge):
    """The real service on a fresh audit store; answers (runtime, store)."""
    store = open_store()
    return Runtime(config=Config(), knowledge=knowledge, audit=store, clock=lambda: FIXED_NOW), store


def warn(runtime, store, start: date, order_id: str) -> dict:
    """An arm B order from `start` on, signed: the one arm B warning it gets."""
    body = call(orders=(dex_order(start, order_id=order_id),))
    (card,) = runtime.call(SIGN, body, {}, SITE)["cards"]
    assert card["extension"]["dexfree"]["rule"] == "dex-after-cycle-2"
    assert store.flush(10)
    return card


def reason_sent(knowledge, code: str, *, system: bool = True, display: str | None = None) -> dict:
    (known,) = [r for r in knowledge.override_reasons if r.code == code]
    reason = {"code": code}
    if system:
        reason["system"] = known.system
    if display:
        reason["display"] = display
    return reason


def override(runtime, card, reason: dict, comment: str | None = None, at: str = "2026-11-24T10:05:00Z"):
    entry = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": at,
             "overrideReason": {"reason": reason, **({"userComment": comment} if comment else {})}}
    return runtime.feedback(SIGN, {"feedback": [entry]}, SITE)


def stored_feedback(store) -> list[dict]:
    with store.transaction() as connection:
        return [dict(r._mapping) for r in connection.execute(select(schema.feedback).order_by(schema.feedback.c.id))]


def report(store, knowledge) -> dict:
    engine = open_for_report(store.url.render_as_string(hide_password=False))
    try:
        return build_report(engine, zone=PARIS, words=Vocabulary.of(knowledge))
    finally:
        engine.dispose()


def test_a_code_only_override_is_stored_and_reported_with_the_services_display(service, knowledge):
    runtime, store = service
    card = warn(runtime, store, CYCLE_3_DAY_5, "dex-a")
    # What the CDS Hooks Sandbox sends back: the coding without its display.
    assert override(runtime, card, reason_sent(knowledge, "premedication-isatuximab"))["stored"] == 1
    (row,) = stored_feedback(store)
    assert (row["override_code"], row["override_display"]) == (
        "premedication-isatuximab", "Premedication for an isatuximab infusion")
    found = report(store, knowledge)
    (deviation,) = found["potentialDeviations"]
    assert deviation["reason"]["display"] == "Premedication for an isatuximab infusion"
    by_reason = next(c for c in found["counts"] if c["rule"] == "dex-after-cycle-2")["overriddenByReason"]
    assert [r["display"] for r in by_reason] == ["Premedication for an isatuximab infusion"]
    assert "Premedication for an isatuximab infusion" in render(found, "html")
    assert "Premedication for an isatuximab infusion" in render(found, "csv")


@pytest.mark.parametrize(("sent", "display", "system_stored"), [
    ({"system": True}, "Indication other than myeloma", True),  # system and code: display filled
    ({"system": False}, "Indication other than myeloma", True),  # code alone, ours only: system too
    ({"system": True, "display": "Autre indication (site)"}, "Autre indication (site)", True),  # kept
])
def test_an_override_reason_is_completed_from_the_catalogue_only_where_it_is_missing(
        service, knowledge, sent, display, system_stored):
    runtime, store = service
    card = warn(runtime, store, CYCLE_3_DAY_5, "dex-b")
    override(runtime, card, reason_sent(knowledge, "non-myeloma-indication", **sent))
    (row,) = stored_feedback(store)
    assert row["override_display"] == display
    assert (row["override_system"] is not None) is system_stored


def test_a_reason_not_in_the_catalogue_is_stored_as_sent(service, knowledge):
    runtime, store = service
    card = warn(runtime, store, CYCLE_3_DAY_5, "dex-c")
    override(runtime, card, {"system": "https://ehr.example/reasons", "code": "premedication-isatuximab"})
    override(runtime, card, {"code": "local-42"}, at="2026-11-24T10:06:00Z")
    first, second = stored_feedback(store)
    # The same code under another system is not ours: no display is made up for it.
    assert (first["override_system"], first["override_display"]) == ("https://ehr.example/reasons", None)
    assert (second["override_system"], second["override_code"], second["override_display"]) == (
        None, "local-42", None)
    (deviation,) = report(store, knowledge)["potentialDeviations"]
    assert deviation["reason"] == {"system": None, "code": "local-42", "display": None}


def test_an_arm_b_warning_without_feedback_is_listed_with_its_orders_day_and_cycle(service, knowledge):
    runtime, store = service
    silent = warn(runtime, store, CYCLE_4_DAY_2, "dex-silent")
    overridden = warn(runtime, store, CYCLE_3_DAY_5, "dex-overridden")
    accepted = warn(runtime, store, CYCLE_3_DAY_5, "dex-accepted")
    override(runtime, overridden, reason_sent(knowledge, "approved-deviation"), comment="Approved by the PI")
    runtime.feedback(SIGN, {"feedback": [{"card": accepted["uuid"], "outcome": "accepted",
                                          "outcomeTimestamp": "2026-11-24T10:07:00Z",
                                          "acceptedSuggestions": [{"id": accepted["suggestions"][0]["uuid"]}]}]},
                     SITE)
    found = report(store, knowledge)
    deviations = found["potentialDeviations"]
    assert [(d["cardUuid"], d["outcome"]) for d in deviations] == [
        (overridden["uuid"], "overridden"), (silent["uuid"], "noFeedback"), (accepted["uuid"], "accepted")]
    assert found["deviationsByOutcome"] == {"overridden": 1, "noFeedback": 1, "accepted": 1}
    no_feedback = deviations[1]
    # The order's own first day and cycle, not the day the card was shown (2026-11-24).
    assert (no_feedback["orderDate"], no_feedback["cycle"], no_feedback["cycleDay"]) == ("2026-11-25", 4, 2)
    assert (no_feedback["shownOn"], no_feedback["outcomeLabel"]) == ("2026-11-24", "no feedback — outcome unknown")
    assert (no_feedback["studySubjectId"], no_feedback["ruleLabel"]) == (
        "DXF-0042", "Dexamethasone ordered in arm B from cycle 3")
    assert (no_feedback["outcomeAt"], no_feedback["reason"]["code"], no_feedback["comment"]) == (None, None, None)
    assert (deviations[0]["orderDate"], deviations[0]["cycle"], deviations[0]["cycleDay"]) == ("2026-10-31", 3, 5)
    assert deviations[0]["comment"] == "Approved by the PI"

    page = render(found, "html")
    section = re.search(r"<h3>No feedback — outcome unknown \(1\)</h3>(.*?)</table>", page, re.S).group(1)
    assert "<td class=\"day\">2026-11-25</td>" in section and "DXF-0042" in section
    assert "Dexamethasone ordered in arm B from cycle 3" in section
    assert "<h3>Overridden (1)</h3>" in page and "<h3>Accepted (1)</h3>" in page

    lines = render(found, "csv").split("\n\n")[1].splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert [(r["outcome"], r["order_date"], r["cycle"], r["cycle_day"]) for r in rows] == [
        ("overridden", "2026-10-31", "3", "5"), ("no feedback — outcome unknown", "2026-11-25", "4", "2"),
        ("accepted", "2026-10-31", "3", "5")]
    assert {r["rule_label"] for r in rows} == {"Dexamethasone ordered in arm B from cycle 3"}
    assert json.loads(render(found, "json"))["potentialDeviations"] == deviations


def test_an_order_running_into_cycle_3_is_listed_by_its_first_day_too(service, knowledge):
    runtime, store = service
    body = call("order-select", (dex_order(day_of(2, 22), days=10, frequency=(1, 1, "wk")),))
    assert len(runtime.call("dex-free-order-select", body, {}, SITE)["cards"]) == 1
    assert store.flush(10)
    (deviation,) = report(store, knowledge)["potentialDeviations"]
    assert (deviation["rule"], deviation["outcome"], deviation["orderDate"], deviation["cycle"]) == (
        "dex-extends-past-cycle-2", "noFeedback", day_of(2, 22).isoformat(), 2)
    assert deviation["ruleLabel"] == "Dexamethasone order runs into cycle 3 in arm B"


def test_the_reason_and_the_comment_are_never_cut_and_wrap_on_the_page(service, knowledge):
    runtime, store = service
    card = warn(runtime, store, CYCLE_3_DAY_5, "dex-long")
    comment = "Premedication decided with the investigator; " * 12 + "end."
    override(runtime, card, reason_sent(knowledge, "approved-deviation"), comment=comment)
    page = render(report(store, knowledge), "html")
    assert f'<td class="text">{comment}</td>' in page
    assert '<td class="text">Investigator decision / approved deviation</td>' in page
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert "white-space:nowrap" not in style.replace(".dev td.day,.dev td.n{white-space:nowrap}", "")
    assert "table{border-collapse:collapse;margin:1em 0;width:100%}" in style and "overflow-wrap:break-word" in style


@pytest.mark.parametrize(("sent", "stored"), [
    ("2026-10-31", date(2026, 10, 31)), ("2026-10-31T23:30:00+01:00", date(2026, 10, 31)),
    ("31/10/2026", None), (20261031, None), (None, None),
])
def test_the_order_date_of_a_card_is_recorded_when_it_is_a_day(sent, stored):
    card = finding_card("dex-after-cycle-2")
    if sent is not None:
        card["extension"]["dexfree"]["orderDate"] = sent
    request = parse_hook_request(call(), "order-sign", SIGN)
    (row,) = card_rows(SIGN, request, PatientRecord(patient_id="pat-42"), [card], caller=ANONYMOUS,
                       salt="s", now=FIXED_NOW)
    assert row["order_date"] == stored


def test_migration_0002_adds_the_order_date_and_keeps_earlier_cards(database_url, knowledge):
    """A store made by the previous release: its cards stay, undated, and the report says so."""
    engine = make_engine(parse_database_url(database_url))
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(text(
                "INSERT INTO audit_card (card_uuid, service_id, hook, hook_instance, rule, indicator, study, arm, "
                "cycle, cycle_day, shown_at, patient_key, patient_key_source, study_subject_id) VALUES ('old-1', "
                ":service, 'order-sign', 'h', 'dex-after-cycle-2', 'warning', 'NCT06561854', 'B', 3, 4, "
                ":shown, 'k', 'study-subject', 'DXF-0001')"), {"service": SIGN, "shown": at(2)})
        assert "order_date" not in {c["name"] for c in inspect(engine).get_columns("audit_card")}
        assert upgrade(engine) == head_revision()
        assert "order_date" in {c["name"] for c in inspect(engine).get_columns("audit_card")}
        with engine.begin() as connection:
            assert connection.execute(text("SELECT order_date FROM audit_card")).scalar_one() is None
        found = build_report(engine, zone=PARIS, words=Vocabulary.of(knowledge))
        (deviation,) = found["potentialDeviations"]
        assert (deviation["orderDate"], deviation["shownOn"], deviation["outcome"]) == (None, "2026-11-02",
                                                                                          "noFeedback")
        assert "not recorded (card shown 2026-11-02)" in render(found, "html")
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        assert "order_date" not in {c["name"] for c in inspect(engine).get_columns("audit_card")}
    finally:
        engine.dispose()
