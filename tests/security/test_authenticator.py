"""The authenticator's own decisions at their edges: the replay store down, the iat boundary, what it logs.

Each test here kills mutants of cds_service/security/jwt_auth.py that `make mutation` found alive.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from cds_service.config import Config
from cds_service.errors import CdsError, ConfigError
from cds_service.security.issuers import load_issuers
from cds_service.security.jwt_auth import JwtAuthenticator, _Refused, check_authentication
from cds_service.security.replay import MemoryReplayStore, ReplayStoreError
from tests.security.conftest import jwt_app
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
