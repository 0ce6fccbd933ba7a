"""/livez, /readyz and /metrics on the app: no token needed, readiness names the failing part, labels closed."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service import events
from cds_service.app import create_app
from cds_service.config import Config
from cds_service.ops import health, metrics
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.security.planted import SECRETS, planted_request
from tests.servers import free_port

GOLDEN = "golden/order-sign-arm-b-cycle-3.request.json"
ORDER_SIGN = "/cds-services/dex-free-order-sign"


def samples(client, remote: str = "127.0.0.1") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The /metrics samples of this process by (name, labels)."""
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


class _Unreachable:
    """An audit store whose database does not answer."""

    class engine:  # stands for AuditStore.engine
        @staticmethod
        def connect():
            raise ConnectionRefusedError("no database at db.internal:5432 (password=hunter2)")

    def describe(self):
        return "unreachable"


def test_livez_and_readyz_need_no_token_even_when_calls_do(knowledge, tmp_path):
    from tests.security.tokens import REPO

    config = Config(jwt_issuers=REPO / "deploy" / "issuers.sandbox.json", replay_db=":memory:")
    from cds_service.security.jwt_auth import build_authenticator
    runtime = Runtime(config=config, knowledge=knowledge, authenticator=build_authenticator(config),
                      clock=lambda: FIXED_NOW)
    client = create_app(runtime=runtime).test_client()
    assert client.get("/cds-services").status_code == 401
    assert client.get("/livez").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"knowledge": "ok", "audit": "ok"}}
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_readyz_names_the_unreachable_audit_store_without_its_address(knowledge):
    runtime = Runtime(config=Config(), knowledge=knowledge, audit=_Unreachable(), clock=lambda: FIXED_NOW)
    response = create_app(runtime=runtime).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["audit"] and body["checks"]["knowledge"] == "ok"
    assert body["checks"]["audit"] == "unreachable (ConnectionRefusedError)"
    assert "db.internal" not in response.get_data(as_text=True) and "hunter2" not in response.get_data(as_text=True)


def test_readyz_checks_redis_only_when_configured(knowledge):
    # A port nobody listens on: the ping is refused at once.
    dead = Config(redis_url=f"redis://:s3cret@127.0.0.1:{free_port()}/15")
    runtime = Runtime(config=dead, knowledge=knowledge, clock=lambda: FIXED_NOW)
    response = create_app(runtime=runtime).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["redis"]
    assert "s3cret" not in response.get_data(as_text=True)
    assert "redis" not in health.readiness(SimpleNamespace(config=Config(), knowledge=runtime.knowledge,
                                                           audit=None))[1]["checks"]


@pytest.mark.integration
def test_readyz_with_the_machines_redis():
    try:
        health._redis_client("redis://127.0.0.1:6379/15").ping()
    except Exception as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({type(exc).__name__})")
    runtime = SimpleNamespace(config=Config(redis_url="redis://127.0.0.1:6379/15"),
                              knowledge=SimpleNamespace(regimens=(1,)), audit=None)
    assert health.readiness(runtime) == (200, {"status": "ready", "checks": {
        "knowledge": "ok", "audit": "ok", "redis": "ok"}})


def test_readyz_without_knowledge_is_not_ready():
    runtime = SimpleNamespace(config=Config(), knowledge=None, audit=None)
    status, body = health.readiness(runtime)
    assert status == 503 and body["failing"] == ["knowledge"] and body["checks"]["knowledge"] == "not loaded"


@pytest.mark.parametrize(("allow", "remote", "served"), [
    (("127.0.0.1/32", "::1/128"), "127.0.0.1", True),
    (("127.0.0.1/32", "::1/128"), "::1", True),
    (("127.0.0.1/32", "::1/128"), "10.1.2.3", False),
    (("10.0.0.0/8",), "10.1.2.3", True),
    (("10.0.0.0/8",), "192.168.1.9", False),
    (("*",), "203.0.113.7", True),
])
def test_metrics_are_served_only_to_the_allowed_networks(knowledge, allow, remote, served):
    runtime = Runtime(config=Config(metrics_allow=allow), knowledge=knowledge, clock=lambda: FIXED_NOW)
    response = create_app(runtime=runtime).test_client().get("/metrics", environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == (200 if served else 403)
    if not served:
        assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("raw", ["10.0.0.0/33", "cluster", "10.0.0.0/8,nope"])
def test_a_bad_metrics_network_stops_the_start(raw):
    from cds_service.errors import ConfigError
    with pytest.raises(ConfigError, match="CDS_METRICS_ALLOW"):
        Config.from_env({"CDS_METRICS_ALLOW": raw})


def test_hook_calls_cards_and_statuses_are_counted(client):
    before = samples(client)
    body = load_fixture(GOLDEN)
    assert client.post(ORDER_SIGN, data=json.dumps(body), content_type="application/json").status_code == 200
    assert client.post(ORDER_SIGN, data="{", content_type="application/json").status_code == 400
    assert client.post("/cds-services/no-such-service", data=json.dumps(body),
                       content_type="application/json").status_code == 404
    after = samples(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("cds_hook_calls_total", service="dex-free-order-sign", status="200") == 1
    assert grew("cds_hook_calls_total", service="dex-free-order-sign", status="400") == 1
    assert grew("cds_hook_calls_total", service="other", status="404") == 1
    assert grew("cds_hook_call_seconds_count", service="dex-free-order-sign") == 2
    assert grew("cds_cards_total", service="dex-free-order-sign", rule="dex-after-cycle-2", indicator="warning") == 1


def test_feedback_is_counted_by_outcome_and_store_result(client):
    before = samples(client)
    entry = {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"}
    body = {"feedback": [entry, {**entry, "card": "c-2", "outcome": "accepted"}]}
    response = client.post(ORDER_SIGN + "/feedback", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    after = samples(client)
    assert value(after, "cds_feedback_entries_total", outcome="overridden") - \
        value(before, "cds_feedback_entries_total", outcome="overridden") == 1
    assert value(after, "cds_feedback_entries_total", outcome="accepted") - \
        value(before, "cds_feedback_entries_total", outcome="accepted") == 1
    assert value(after, "cds_feedback_requests_total", service="dex-free-order-sign", status="200") - \
        value(before, "cds_feedback_requests_total", service="dex-free-order-sign", status="200") == 1


def test_no_label_carries_request_data(client):
    """Planted patient data, identifiers and tokens, sent in every field a label could come from."""
    before = samples(client)
    for hook, service in (("order-sign", "dex-free-order-sign"), ("patient-view", "dex-free-patient-view")):
        body = planted_request(hook)
        client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json",
                    headers={"Authorization": f"Bearer {SECRETS[0]}"})
        client.post(f"/cds-services/{SECRETS[1]}", data=json.dumps(body), content_type="application/json")
    client.post(f"/cds-services/{SECRETS[2]}/feedback", data="{}", content_type="application/json")
    text = client.get("/metrics").get_data(as_text=True)
    for secret in SECRETS:
        assert secret not in text
    # The series these calls moved (other tests of the run count into the same process-wide metrics).
    after = samples(client)
    moved = [labels for (name, labels), count in after.items()
             if name.startswith("cds_") and count != before.get((name, labels))]
    assert moved
    label_values = {v for labels in moved for _, v in labels}
    assert label_values <= ({"other", "none"} | metrics.INDICATORS | metrics.STATUSES | metrics.FHIR_OUTCOMES
                            | metrics.FEEDBACK_OUTCOMES | set(metrics.STORE_RESULTS)
                            | {"dex-free-order-sign", "dex-free-order-select", "dex-free-patient-view"}
                            | set(metrics._closed.rules) | _bucket_bounds(text) | _refusal_codes(text))


def _bucket_bounds(text: str) -> set[str]:
    return set(re.findall(r'le="([^"]*)"', text))


def _refusal_codes(text: str) -> set[str]:
    codes = set(re.findall(r'cds_jwt_refusals_total\{reason="([^"]*)"\}', text))
    assert all(re.fullmatch(r"[a-z_]{1,40}", code) for code in codes)
    return codes


@pytest.mark.parametrize(("event", "fields", "name", "labels"), [
    ("jwt_refused", {"reason": "Bearer eyJhbGciOi.x.y"}, "cds_jwt_refusals_total", {"reason": "other"}),
    ("jwt_refused", {"reason": "replayed"}, "cds_jwt_refusals_total", {"reason": "replayed"}),
    ("fhir_read", {"outcome": "http://fhir.example/Patient/123"}, "cds_fhir_reads_total", {"outcome": "other"}),
    ("fhir_read", {"outcome": "deadline"}, "cds_fhir_reads_total", {"outcome": "deadline"}),
    ("feedback", {"outcomes": ["maybe; DROP TABLE"], "result": {}}, "cds_feedback_entries_total",
     {"outcome": "other"}),
    ("cards", {"service": "dex-free-order-sign", "cards": [{"indicator": "hint", "extension": {
        "dexfree": {"rule": "Patient John Doe"}}}]}, "cds_cards_total",
     {"service": "dex-free-order-sign", "rule": "other", "indicator": "other"}),
])
def test_event_labels_outside_their_closed_set_become_other(client, event, fields, name, labels):
    before = value(samples(client), name, **labels)
    events.emit(event, **fields)
    assert value(samples(client), name, **labels) - before == 1


def test_fhir_reads_audit_queue_and_losses_are_counted(client):
    before = samples(client)
    events.emit("fhir_read", outcome="ok", cached=True)
    events.emit("fhir_read", outcome="unreachable", cached=False)
    events.emit("audit_queue", depth=7)
    events.emit("audit_lost", count=3)
    after = samples(client)
    assert value(after, "cds_fhir_reads_total", outcome="ok") - value(before, "cds_fhir_reads_total", outcome="ok") == 1
    assert value(after, "cds_fhir_cache_hits_total") - value(before, "cds_fhir_cache_hits_total") == 1
    assert value(after, "cds_audit_queue_depth") == 7
    assert value(after, "cds_audit_rows_lost_total") - value(before, "cds_audit_rows_lost_total") == 3


def test_a_failing_listener_never_fails_the_emitter():
    def broken(name, fields):
        raise RuntimeError("metrics are down")

    events.subscribe(broken)
    try:
        events.emit("cards", service="x", cards=[])
    finally:
        events.unsubscribe(broken)


def test_the_real_audit_writer_reports_queue_and_losses(knowledge):
    from cds_service.audit.writer import BatchWriter

    seen: list[tuple[str, dict]] = []
    listener = lambda name, fields: seen.append((name, fields))  # noqa: E731
    events.subscribe(listener)
    try:
        writer = BatchWriter(lambda batch: None, capacity=2)
        writer.submit([{"a": 1}, {"a": 2}, {"a": 3}])
        assert writer.flush(5)
        writer.close(5)
    finally:
        events.unsubscribe(listener)
    assert ("audit_lost", {"count": 1}) in seen
    depths = [fields["depth"] for name, fields in seen if name == "audit_queue"]
    assert depths and depths[-1] == 0


def test_the_runtime_config_default_allows_loopback_only():
    assert replace(Config()).metrics_allow == ("127.0.0.1/32", "::1/128")
    assert Config.from_env({}).metrics_allow == ("127.0.0.1/32", "::1/128")
