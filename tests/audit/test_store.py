"""The audit store, the same tests on SQLite and on a real PostgreSQL: recording, feedback, restarts,
outages, migrations and concurrent start-up."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest
from sqlalchemy import column, create_engine, func, select, table

from cds_service.app import create_app
from cds_service.audit import schema
from cds_service.audit.migrate import VERSION_TABLE, head_revision, upgrade
from cds_service.audit.store import AuditStore
from cds_service.hooks.feedback import parse_feedback
from cds_service.security.caller import Caller
from cds_service.security.pseudonym import pseudonym
from tests.audit.conftest import (
    SERVICE_ID,
    STUDY,
    SUBJECT_ID,
    feedback_body,
    hook_request,
    runtime_with,
)
from tests.spec import check_cds_response, check_operation_outcome

VERSIONS = table(VERSION_TABLE, column("version_num"))
SITE = Caller(issuer="https://ehr.site-a.example", tenant="site-a")


def rows(store: AuditStore, table) -> list[dict]:
    with store.transaction() as connection:
        return [dict(r._mapping) for r in connection.execute(select(table).order_by(table.c.id))]


def call(store, source, body=None, caller=SITE) -> dict:
    """One hook call through the runtime (as the HTTP route makes it); the cards are then written."""
    response = runtime_with(store, source).call(SERVICE_ID, body or hook_request(), {}, caller)
    assert store.flush(10)
    return response


def send_feedback(store, body, caller=SITE) -> dict:
    return store.feedback_received(SERVICE_ID, parse_feedback(body), caller)


def break_store(store: AuditStore, tmp_path):
    """A real outage: the store's engine now points at a database that cannot be reached.

    Returns the working engine, to put back when the outage is over.
    """
    working = store.engine
    working.dispose()
    if store.engine.dialect.name == "postgresql":
        from tests.servers import free_port

        dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    else:
        dead = f"sqlite:///{tmp_path}/no/such/dir/audit.sqlite3"
    store.engine = create_engine(dead, connect_args={"connect_timeout": 1} if "postgresql" in dead else {})
    return working


def utc(value):
    """A stored instant as naive UTC (SQLite gives it back naive, PostgreSQL in the session's zone)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# --- recording ------------------------------------------------------------------------------------

def test_every_card_returned_is_recorded_with_its_finding_and_caller(open_store, card_source):
    store = open_store()
    card_source.cards = [{"rule": "dex-after-cycle-2", "arm": "B", "cycle": 3, "cycle_day": 8},
                         {"rule": "dex-dose-mismatch", "arm": "A", "cycle": 5, "regimen": "IKEMA",
                          "indicator": "info"}]
    response = call(store, card_source)
    check_cds_response(response)
    recorded = rows(store, schema.card)
    assert [r["card_uuid"] for r in recorded] == [c["uuid"] for c in response["cards"]]
    first, second = recorded
    assert {k: first[k] for k in ("service_id", "hook", "hook_instance", "rule", "indicator", "study", "arm",
                                  "regimen", "cycle", "cycle_day", "issuer", "tenant")} == {
        "service_id": SERVICE_ID, "hook": "order-sign", "hook_instance": "8e1d4b2a-3f6c-4f0e-9d7a-2b1c0e9f8a71",
        "rule": "dex-after-cycle-2", "indicator": "warning", "study": STUDY, "arm": "B", "regimen": "ICARIA",
        "cycle": 3, "cycle_day": 8, "issuer": "https://ehr.site-a.example", "tenant": "site-a"}
    assert (second["rule"], second["arm"], second["regimen"], second["cycle"], second["indicator"]) == (
        "dex-dose-mismatch", "A", "IKEMA", 5, "info")
    assert utc(first["shown_at"]) == utc(second["shown_at"])
    assert utc(first["shown_at"]).strftime("%Y-%m-%d %H:%M") == "2026-11-24 09:30"


def test_patient_key_is_a_keyed_hash_of_the_study_subject_identifier(open_store, card_source):
    store = open_store(salt="test-salt")
    card_source.cards = [{"rule": "dex-after-cycle-2"}, {"rule": "trial-status", "indicator": "info"}]
    call(store, card_source)
    deviation_rule, other = rows(store, schema.card)
    for row in (deviation_rule, other):
        assert row["patient_key"] == pseudonym(SUBJECT_ID, "test-salt")
        assert row["patient_key_source"] == "study-subject"
    # The identifier itself only where the deviation report needs it.
    assert deviation_rule["study_subject_id"] == SUBJECT_ID
    assert other["study_subject_id"] is None


def test_without_a_research_subject_for_the_study_the_key_comes_from_the_ehr_id(open_store, card_source):
    store = open_store(salt="test-salt")
    call(store, card_source, hook_request(subject_id="OTHER-7", study="NCT00000001"))
    call(store, card_source, hook_request(subject_id=None))
    for row in rows(store, schema.card):
        assert row["patient_key"] == pseudonym("pat-1", "test-salt")
        assert row["patient_key_source"] == "ehr-patient"
        assert row["study_subject_id"] is None


def test_no_name_or_ehr_identifier_is_ever_stored(open_store, card_source):
    store = open_store()
    call(store, card_source, hook_request(subject_id=None))
    call(store, card_source)
    send_feedback(store, feedback_body(rows(store, schema.card)[0]["card_uuid"]))
    stored = json.dumps([rows(store, t) for t in (schema.card, schema.feedback)], default=str)
    for identifying in ("pat-1", "Testpatient", "Alice", "1956-03-02", "PractitionerRole/A2340113", "enc-1",
                        "draft-dex-1", "OTHER-7"):
        assert identifying not in stored


def test_card_without_a_finding_is_recorded_as_unknown(open_store, card_source):
    store = open_store()
    card_source.cards = [{"rule": None}]
    call(store, card_source)
    (row,) = rows(store, schema.card)
    assert (row["rule"], row["study"], row["arm"], row["cycle"]) == ("unknown", None, None, None)
    # A card that names no study is keyed by the EHR patient id (every card of the services names it).
    assert row["patient_key_source"] == "ehr-patient"
    assert row["study_subject_id"] is None


def test_a_card_whose_uuid_cannot_be_indexed_is_counted_lost_not_its_batch(open_store, card_source):
    store = open_store()
    card_source.cards = [{"rule": "dex-after-cycle-2", "card_uuid": "u" * 201}, {"rule": "trial-status"}]
    call(store, card_source)
    assert [r["rule"] for r in rows(store, schema.card)] == ["trial-status"]
    assert (store.writer.lost, store.writer.written) == (1, 1)


def test_a_call_without_cards_records_nothing(open_store, card_source):
    store = open_store()
    card_source.cards = []
    assert call(store, card_source) == {"cards": []}
    assert rows(store, schema.card) == []


# --- feedback -------------------------------------------------------------------------------------

def test_feedback_is_stored_against_its_card(open_store, card_source):
    store = open_store()
    card_uuid = call(store, card_source)["cards"][0]["uuid"]
    result = send_feedback(store, feedback_body(card_uuid, comment="Premedication before isatuximab"))
    assert result == {"received": 1, "stored": 1, "duplicates": 0, "unknownCards": 0}
    send_feedback(store, feedback_body(card_uuid, "accepted", at="2026-11-24T10:06:00+01:00",
                                       accepted=("s-1", "s-2")))
    overridden, accepted = rows(store, schema.feedback)
    assert overridden["card_uuid"] == card_uuid and overridden["card_known"] is True
    assert (overridden["outcome"], overridden["override_system"], overridden["override_code"],
            overridden["override_display"], overridden["user_comment"]) == (
        "overridden", "https://dexfree.example/override", "premedication", "Premedication",
        "Premedication before isatuximab")
    assert utc(overridden["outcome_at"]).strftime("%Y-%m-%dT%H:%M:%S") == "2026-11-24T10:05:31"
    assert (overridden["issuer"], overridden["tenant"], overridden["service_id"]) == (
        SITE.issuer, SITE.tenant, SERVICE_ID)
    assert accepted["outcome"] == "accepted"
    assert json.loads(accepted["accepted_suggestions"]) == ["s-1", "s-2"]
    assert utc(accepted["outcome_at"]).strftime("%H:%M") == "09:06"  # the instant, in UTC


def test_the_same_feedback_sent_twice_is_stored_once(open_store, card_source):
    store = open_store()
    card_uuid = call(store, card_source)["cards"][0]["uuid"]
    body = feedback_body(card_uuid, comment="first")
    assert send_feedback(store, body)["stored"] == 1
    # The EHR retries; a reworded comment on the same decision is the same decision.
    body["feedback"][0]["overrideReason"]["userComment"] = "first, resent"
    assert send_feedback(store, body) == {"received": 1, "stored": 0, "duplicates": 1, "unknownCards": 0}
    doubled = {"feedback": feedback_body(card_uuid, at="2026-11-25T08:00:00Z")["feedback"] * 2}
    assert send_feedback(store, doubled)["stored"] == 1
    assert len(rows(store, schema.feedback)) == 2


def test_feedback_for_an_unknown_card_is_stored_and_flagged(open_store):
    store = open_store()
    assert send_feedback(store, feedback_body("no-such-card"))["unknownCards"] == 1
    (row,) = rows(store, schema.feedback)
    assert row["card_uuid"] == "no-such-card" and row["card_known"] is False


def test_feedback_that_overtook_its_card_is_no_longer_flagged_once_the_card_arrives(open_store, card_source):
    store = open_store()
    card_uuid = "5b0f3a56-0c2b-4a47-9d1e-5f3f2e0d7a11"
    assert send_feedback(store, feedback_body(card_uuid))["unknownCards"] == 1
    card_source.cards = [{"rule": "dex-after-cycle-2", "card_uuid": card_uuid}]
    call(store, card_source)
    (row,) = rows(store, schema.feedback)
    assert row["card_known"] is True


def test_feedback_finds_a_card_still_in_the_queue(open_store, card_source):
    store = open_store()
    runtime = runtime_with(store, card_source)
    card_uuid = runtime.call(SERVICE_ID, hook_request(), {}, SITE)["cards"][0]["uuid"]
    # No flush here: the feedback itself waits for this process's queued cards.
    assert send_feedback(store, feedback_body(card_uuid))["unknownCards"] == 0


def test_concurrent_feedback_from_many_threads_loses_nothing(open_store, card_source):
    store = open_store()
    card_source.cards = [{"rule": "dex-after-cycle-2"}] * 5
    cards = [c["uuid"] for c in call(store, card_source)["cards"]]
    threads, per_thread = 12, 20
    barrier = threading.Barrier(threads)

    def client(n: int) -> int:
        barrier.wait()
        stored = 0
        for i in range(per_thread):
            body = feedback_body(cards[i % len(cards)], at=f"2026-11-24T10:{n:02d}:{i:02d}Z")
            stored += send_feedback(store, body)["stored"]
            # Every thread also resends one entry another thread sends: stored once in all.
            stored += send_feedback(store, feedback_body(cards[0], at="2026-11-24T11:00:00Z"))["stored"]
        return stored

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(client, range(threads)))
    assert total == threads * per_thread + 1
    assert len(rows(store, schema.feedback)) == threads * per_thread + 1


def test_feedback_through_http_answers_counts(open_store, card_source):
    store = open_store()
    client = create_app(runtime=runtime_with(store, card_source)).test_client()
    card_uuid = client.post(f"/cds-services/{SERVICE_ID}", json=hook_request()).get_json()["cards"][0]["uuid"]
    response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback_body(card_uuid))
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "stored": 1, "duplicates": 0, "unknownCards": 0}


def test_a_card_id_too_long_to_index_is_a_400(open_store, card_source):
    store = open_store()
    client = create_app(runtime=runtime_with(store, card_source)).test_client()
    response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback_body("x" * 201))
    assert response.status_code == 400
    assert check_operation_outcome(response.get_json())["expression"] == ["feedback[0].card"]


# --- restart, salt --------------------------------------------------------------------------------

def test_a_restart_keeps_everything(open_store, card_source):
    first = open_store()
    cards = call(first, card_source)["cards"]
    send_feedback(first, feedback_body(cards[0]["uuid"]))
    before = (rows(first, schema.card), rows(first, schema.feedback), first.salt)
    first.close()

    second = open_store()
    assert (rows(second, schema.card), rows(second, schema.feedback), second.salt) == before
    # The same patient gets the same key after the restart, and old cards still take feedback.
    call(second, card_source)
    keys = {r["patient_key"] for r in rows(second, schema.card)}
    assert len(keys) == 1
    assert send_feedback(second, feedback_body(cards[0]["uuid"], "accepted"))["unknownCards"] == 0


def test_the_random_salt_is_made_once_and_shared(open_store):
    stores = [open_store(), open_store(), open_store()]
    assert len({s.salt for s in stores}) == 1 and len(stores[0].salt) == 64


def test_a_configured_salt_wins(open_store):
    open_store()
    assert open_store(salt="from-CDS_PSEUDONYM_SALT").salt == "from-CDS_PSEUDONYM_SALT"


# --- outage ---------------------------------------------------------------------------------------

def test_store_outage_does_not_fail_the_hook_call_and_the_loss_is_counted(open_store, card_source, tmp_path,
                                                                          caplog):
    store = open_store(retry_delays=(0, 0))
    client = create_app(runtime=runtime_with(store, card_source)).test_client()
    break_store(store, tmp_path)
    card_source.cards = [{"rule": "dex-after-cycle-2"}, {"rule": "eligibility", "indicator": "info"}]
    response = client.post(f"/cds-services/{SERVICE_ID}", json=hook_request())
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 2
    assert store.flush(30)
    audit = client.get("/healthz").get_json()["features"]["audit"]
    assert audit["cardsLost"] == 2 and audit["cardsWritten"] == 0
    assert audit["lastError"] == "OperationalError"
    lost = [r for r in caplog.records if r.getMessage() == "audit cards lost"]
    assert lost and lost[-1].fields["count"] == 2
    assert SUBJECT_ID not in caplog.text and "pat-1" not in caplog.text


def test_feedback_while_the_store_is_down_is_a_503_to_retry(open_store, card_source, tmp_path, caplog):
    store = open_store()
    client = create_app(runtime=runtime_with(store, card_source)).test_client()
    card_uuid = client.post(f"/cds-services/{SERVICE_ID}", json=hook_request()).get_json()["cards"][0]["uuid"]
    store.flush(10)
    working = break_store(store, tmp_path)
    body = feedback_body(card_uuid, comment="Patient Alice asked for it")
    response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert check_operation_outcome(response.get_json())["code"] == "transient"
    assert "Alice" not in caplog.text and "Alice" not in response.get_data(as_text=True)
    assert client.get("/healthz").get_json()["features"]["audit"]["feedbackFailures"] == 1
    # The store is back: the retried feedback is stored.
    store.engine = working
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=body).get_json()["stored"] == 1


def test_opening_an_unreachable_store_stops_the_start_naming_the_variable(tmp_path):
    from cds_service.errors import ConfigError
    from tests.servers import free_port

    with pytest.raises(ConfigError, match="CDS_DATABASE_URL"):
        AuditStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(ConfigError, match="not supported"):
        AuditStore("mysql://root@127.0.0.1/x")


# --- migrations and start-up ----------------------------------------------------------------------

def test_migrations_run_twice_are_a_no_op(open_store, card_source):
    store = open_store()
    call(store, card_source)
    with store.transaction() as connection:
        tables_before = _tables(connection)
    assert upgrade(store.engine) == head_revision()
    assert upgrade(store.engine) == head_revision()
    with store.transaction() as connection:
        assert _tables(connection) == tables_before
        assert connection.execute(select(VERSIONS.c.version_num)).scalars().all() == [head_revision()]
    assert len(rows(store, schema.card)) == 1


def _tables(connection) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(connection).get_table_names())


def test_concurrent_first_start_is_safe(database_url):
    starters = 6
    barrier = threading.Barrier(starters)

    def start(_):
        barrier.wait()
        store = AuditStore(database_url)
        try:
            return store.revision, store.salt
        finally:
            store.close()

    with ThreadPoolExecutor(starters) as pool:
        results = list(pool.map(start, range(starters)))
    assert {revision for revision, _ in results} == {head_revision()}
    assert len({salt for _, salt in results}) == 1
    store = AuditStore(database_url)
    try:
        with store.transaction() as connection:
            assert connection.execute(select(func.count()).select_from(schema.setting)).scalar_one() == 1
            assert connection.execute(select(func.count()).select_from(VERSIONS)).scalar_one() == 1
    finally:
        store.close()


def test_a_store_opened_before_fork_works_in_the_child_and_the_parent(open_store, card_source):
    """gunicorn preload: the master opens the store, forked workers record through their own connections."""
    store = open_store()
    call(store, card_source)
    pid = os.fork()
    if pid == 0:  # the child: record one card, exit with whether it was written
        code = 1
        try:
            call(store, card_source)
            code = 0 if store.writer.written == 1 and store.writer.lost == 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    call(store, card_source)
    assert len(rows(store, schema.card)) == 3
