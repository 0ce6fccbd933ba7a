"""The authenticator's own decisions at their edges: the replay store down, the iat boundary, what it logs.

Each test here kills mutants of cds_service/security/jwt_auth.py that `make mutation` found alive.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from cds_service import events
from cds_service.config import Config
from cds_service.errors import CdsError, ConfigError
from cds_service.security.issuers import Issuer, load_issuers
from cds_service.security.jwks import JwksError
from cds_service.security.jwt_auth import (
    JwtAuthenticator,
    _Refused,
    build_authenticator,
    check_authentication,
    replay_store,
)
from cds_service.security.replay import MemoryReplayStore, ReplayStoreError
from tests.security.conftest import jwt_app
from tests.security.test_replay import PingingRedis
from tests.security.tokens import SANDBOX_ISS, claims, raw_token, sandbox_key, sandbox_token, sign
from tests.spec import check_operation_outcome

BASE = "http://localhost"
DISCOVERY = "/cds-services"
LEEWAY = 30


class DownStore:
    """A replay store that cannot answer (Redis down, SQLite file locked): neither accept nor refuse."""

    kind = "redis"
    shared = True

    def __init__(self):
        self.asked = 0

    def first_use(self, token_id, expires_at):
        self.asked += 1
        raise ReplayStoreError("redis: ConnectionError")

    def describe(self):
        return "down"


def authenticator(issuers_file, replay=None, clock=time.time):
    return JwtAuthenticator(load_issuers(issuers_file), replay or MemoryReplayStore(), LEEWAY, clock=clock)


def test_a_valid_token_is_a_503_when_the_replay_store_is_down(issuers_file, caplog):
    # Accepting would let a captured token be replayed at will; refusing would lock out every EHR.
    store = DownStore()
    authenticate = authenticator(issuers_file, store)
    with caplog.at_level(logging.INFO), pytest.raises(CdsError) as raised:
        authenticate(f"Bearer {sandbox_token(BASE + DISCOVERY)}", BASE + DISCOVERY)
    assert (raised.value.status, raised.value.code, raised.value.headers) == (503, "transient", {"Retry-After": "5"})
    assert store.asked == 1
    [logged] = [r for r in caplog.records if r.getMessage() == "authentication unavailable"]
    assert logged.levelno == logging.ERROR and logged.fields == {"reason": "replay store: redis: ConnectionError"}


def test_through_the_app_the_replay_store_down_is_a_503_operation_outcome(issuers_file, monkeypatch):
    client = jwt_app(issuers_file).test_client()
    runtime = client.application.extensions["cds_runtime"]
    monkeypatch.setattr(runtime.authenticator, "replay", DownStore())
    response = client.get(DISCOVERY, headers={"Authorization": f"Bearer {sandbox_token(BASE + DISCOVERY)}"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    issue = check_operation_outcome(response.get_json())
    assert issue["diagnostics"] == "Callers cannot be verified right now; try again shortly"
    assert "redis" not in response.get_data(as_text=True)  # the cause is for the log, not the caller


def test_an_iat_exactly_at_the_leeway_edge_passes_and_a_second_later_does_not(issuers_file):
    # PyJWT (on the real clock) accepts an iat 10 s in the past; our check runs on the injected clock.
    issued = int(time.time()) - 10
    token = f"Bearer {sign(sandbox_key(), claims(BASE + DISCOVERY, iat=issued))}"
    at_edge = authenticator(issuers_file, clock=lambda: issued - LEEWAY)
    assert at_edge(token, BASE + DISCOVERY).issuer == SANDBOX_ISS
    beyond = authenticator(issuers_file, clock=lambda: issued - LEEWAY - 1)
    with pytest.raises(CdsError) as raised:
        beyond(token, BASE + DISCOVERY)
    assert (raised.value.status, raised.value.code) == (401, "not_yet_valid")


@pytest.mark.parametrize("bad", [{"iat": "soon"}, {"exp": [1]}, {"iat": float("inf")}])
def test_claims_that_are_not_numbers_are_refused_whatever_the_pyjwt_version(issuers_file, bad):
    # Today's PyJWT refuses them first; the authenticator does not rely on it.
    authenticate = authenticator(issuers_file)
    issuer = authenticate.issuers[SANDBOX_ISS]
    with pytest.raises(_Refused) as raised:
        authenticate._accept(claims(BASE + DISCOVERY) | bad, issuer)
    assert (raised.value.reason, raised.value.issuer) == ("invalid_claims", SANDBOX_ISS)


@pytest.mark.parametrize(("iss", "logged"), [
    ("https://" + "x" * 300, "https://" + "x" * 112),  # caller-supplied text: the first 120 characters
    (12345, None),  # not a string: not logged at all
])
def test_an_unknown_issuer_is_logged_cut_short(issuers_file, caplog, iss, logged):
    # Assembled by hand (PyJWT will not sign a number as iss); the issuer is looked up before any signature.
    token = raw_token({"alg": "ES384", "typ": "JWT", "kid": sandbox_key().kid}, claims(BASE + DISCOVERY, iss=iss),
                      b"not-a-signature")
    with caplog.at_level(logging.INFO), pytest.raises(CdsError):
        authenticator(issuers_file)(f"Bearer {token}", BASE + DISCOVERY)
    [record] = [r for r in caplog.records if r.getMessage() == "authentication refused"]
    assert record.fields == {"reason": "unknown_issuer", "issuer": logged}


def test_check_authentication_opens_nothing_when_authentication_is_off(tmp_path):
    # No issuers file: not even the replay store is opened (its path may be anything).
    check_authentication(Config(jwt_issuers=None, replay_db=str(tmp_path / "file" / "sub" / "x")))


def test_check_authentication_refuses_a_broken_issuers_file_by_name(tmp_path):
    broken = tmp_path / "issuers.json"
    broken.write_text(json.dumps({"issuers": "not a list"}))
    with pytest.raises(ConfigError, match=r"issuers\.json"):
        check_authentication(Config(jwt_issuers=broken, replay_db=":memory:"))


def test_check_authentication_refuses_a_replay_store_it_cannot_create(issuers_file, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="CDS_REPLAY_DB"):
        check_authentication(Config(jwt_issuers=issuers_file, replay_db=str(tmp_path / "file" / "sub" / "x")))


class RecordingStore(MemoryReplayStore):
    """The memory store, remembering until when it was asked to keep each id."""

    def __init__(self):
        super().__init__()
        self.kept_until: list[float] = []

    def first_use(self, token_id, expires_at):
        self.kept_until.append(expires_at)
        return super().first_use(token_id, expires_at)


def test_a_token_id_is_kept_until_the_token_expires_with_the_leeway(issuers_file):
    # PyJWT accepts the token up to exp + leeway: its id must be remembered that long, not less.
    store = RecordingStore()
    body = claims(BASE + DISCOVERY)
    authenticator(issuers_file, store)(f"Bearer {sign(sandbox_key(), body)}", BASE + DISCOVERY)
    assert store.kept_until == [body["exp"] + LEEWAY]


@pytest.mark.parametrize(("lifetime", "passes"), [(3600, True), (3601, False)])
def test_a_lifetime_of_an_hour_is_the_longest_accepted(issuers_file, lifetime, passes):
    issued = int(time.time()) - 5
    token = f"Bearer {sign(sandbox_key(), claims(BASE + DISCOVERY, iat=issued, lifetime=lifetime))}"
    authenticate = authenticator(issuers_file, clock=lambda: issued)  # exp - now is exactly the lifetime
    if passes:
        assert authenticate(token, BASE + DISCOVERY).issuer == SANDBOX_ISS
    else:
        with pytest.raises(CdsError) as raised:
            authenticate(token, BASE + DISCOVERY)
        assert raised.value.code == "lifetime_too_long"


@pytest.mark.parametrize(("jti", "passes"), [("j", True), ("j" * 256, True), ("j" * 257, False), ("", False)])
def test_a_jti_has_1_to_256_characters(issuers_file, jti, passes):
    token = f"Bearer {sign(sandbox_key(), claims(BASE + DISCOVERY, jti=jti))}"
    if passes:
        assert authenticator(issuers_file)(token, BASE + DISCOVERY).issuer == SANDBOX_ISS
    else:
        with pytest.raises(CdsError) as raised:
            authenticator(issuers_file)(token, BASE + DISCOVERY)
        assert raised.value.code == "bad_jti"


def refusal(issuers_file, caplog, authorization, **kwargs):
    """The CdsError of a refused call and the one "authentication refused" log record."""
    with caplog.at_level(logging.INFO), pytest.raises(CdsError) as raised:
        authenticator(issuers_file, **kwargs)(authorization, BASE + DISCOVERY)
    [record] = [r for r in caplog.records if r.getMessage() == "authentication refused"]
    return raised.value, record


def test_a_refusal_is_a_bare_401_asking_for_a_bearer_token_and_a_warning_in_the_log(issuers_file, caplog):
    error, record = refusal(issuers_file, caplog, "Bearer not-a-jwt")
    assert (error.status, error.message, error.code, error.headers) == (
        401, "Unauthorized", "malformed_token", {"WWW-Authenticate": "Bearer"})
    assert record.levelno == logging.WARNING and record.fields == {"reason": "malformed_token", "issuer": None}


def test_a_refusal_is_announced_with_its_reason_for_the_refusals_metric(issuers_file, caplog):
    heard: list[tuple[str, dict]] = []
    listener = lambda name, fields: heard.append((name, fields))  # noqa: E731
    events.subscribe(listener)
    try:
        refusal(issuers_file, caplog, "Bearer not-a-jwt")
    finally:
        events.unsubscribe(listener)
    assert heard == [("jwt_refused", {"reason": "malformed_token"})]


def test_a_replayed_token_names_its_issuer_in_the_log(issuers_file, caplog):
    store = MemoryReplayStore()
    token = f"Bearer {sandbox_token(BASE + DISCOVERY)}"
    authenticator(issuers_file, store)(token, BASE + DISCOVERY)
    _, record = refusal(issuers_file, caplog, token, replay=store)
    assert record.fields == {"reason": "replayed", "issuer": SANDBOX_ISS}


def test_an_iat_in_the_future_names_its_issuer_in_the_log(issuers_file, caplog):
    issued = int(time.time()) - 10
    token = f"Bearer {sign(sandbox_key(), claims(BASE + DISCOVERY, iat=issued))}"
    _, record = refusal(issuers_file, caplog, token, clock=lambda: issued - LEEWAY - 1)
    assert record.fields == {"reason": "not_yet_valid", "issuer": SANDBOX_ISS}


def test_an_empty_kid_is_missing(issuers_file, caplog):
    # (A kid that is not a string PyJWT refuses to read: malformed_token.)
    token = raw_token({"alg": "ES384", "typ": "JWT", "kid": ""}, claims(BASE + DISCOVERY), b"x")
    error, _ = refusal(issuers_file, caplog, f"Bearer {token}")
    assert error.code == "missing_kid"


def test_an_issuer_that_is_a_list_is_unknown_not_a_crash(issuers_file, caplog):
    token = raw_token({"alg": "ES384", "typ": "JWT", "kid": "k"}, claims(BASE + DISCOVERY, iss=["a"]), b"x")
    error, record = refusal(issuers_file, caplog, f"Bearer {token}")
    assert (error.code, record.fields["issuer"]) == ("unknown_issuer", None)


@pytest.mark.parametrize(("length", "reason"), [(16 * 1024, "malformed_token"), (16 * 1024 + 1, "malformed_header")])
def test_an_authorization_header_of_16_kib_is_read_and_a_longer_one_is_not(issuers_file, caplog, length, reason):
    error, _ = refusal(issuers_file, caplog, "Bearer " + "a" * (length - len("Bearer ")))
    assert error.code == reason


class UnreachableKeys:
    def key(self, kid, alg):
        raise JwksError("https://ehr.example.org/jwks: HTTP 503")


def test_keys_that_cannot_be_fetched_are_a_503_naming_the_issuer_in_the_log(caplog):
    issuer = Issuer(iss="https://ehr.example.org", keys=UnreachableKeys(), allowed_jku=frozenset(), jku_keys={},
                    tenants=frozenset())
    authenticate = JwtAuthenticator({issuer.iss: issuer}, MemoryReplayStore(), LEEWAY)
    token = sign(sandbox_key(), claims(BASE + DISCOVERY, iss=issuer.iss))
    with caplog.at_level(logging.INFO), pytest.raises(CdsError) as raised:
        authenticate(f"Bearer {token}", BASE + DISCOVERY)
    assert raised.value.status == 503
    [record] = [r for r in caplog.records if r.getMessage() == "authentication unavailable"]
    assert record.fields == {"reason": "keys of https://ehr.example.org: https://ehr.example.org/jwks: HTTP 503"}


def test_the_replay_store_is_redis_when_cds_redis_url_is_set(monkeypatch):
    monkeypatch.setattr("cds_service.security.replay.redis_client", lambda url: PingingRedis())
    store = replay_store(Config(redis_url="redis://:secret@cache.internal:6380/1", replay_db=":memory:"))
    assert store.describe() == "redis redis://:***@cache.internal:6380/1 (shared by every worker and replica)"


def test_the_start_log_says_how_callers_are_checked(issuers_file, caplog):
    config = Config(jwt_issuers=issuers_file, replay_db=":memory:", workers=1, jwt_leeway_seconds=45)
    with caplog.at_level(logging.INFO):
        build_authenticator(config)
    [record] = [r for r in caplog.records if r.getMessage() == "authentication: jwt"]
    assert record.fields == {"issuers": [i.describe() for i in load_issuers(issuers_file).values()],
                             "replayStore": "memory (this process only)", "leewaySeconds": 45}
    assert [i["iss"] for i in record.fields["issuers"]] == [SANDBOX_ISS, "https://ehr.example.org/cds-client"]


PER_PROCESS = ("REPLAY STORE PER PROCESS with CDS_WORKERS=2: a token replayed to another worker is accepted. "
               "Use CDS_REPLAY_DB (a file) or CDS_REDIS_URL.")
NO_BASE_URL = ("CDS_BASE_URL is unset: the JWT aud is checked against the Host header of each request. "
               "Set it to the public URL of the service.")


@pytest.mark.parametrize("case", [
    (":memory:", 2, "https://cds.example.org", [PER_PROCESS]),  # ids per process, two processes: replays pass
    (":memory:", 1, "https://cds.example.org", []),
    ("file", 2, "https://cds.example.org", []),  # SQLite: shared by the workers
    ("file", 3, None, [NO_BASE_URL]),
])
def test_the_start_warns_of_a_replay_store_per_process_and_of_no_base_url(issuers_file, tmp_path, caplog, case):
    replay_db, workers, base_url, warnings = case
    db = str(tmp_path / "replay.sqlite3") if replay_db == "file" else replay_db
    config = Config(jwt_issuers=issuers_file, replay_db=db, workers=workers, base_url=base_url)
    with caplog.at_level(logging.INFO):
        build_authenticator(config)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        (logging.WARNING, w) for w in warnings]
