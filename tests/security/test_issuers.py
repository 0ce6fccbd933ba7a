"""The CDS_JWT_ISSUERS file: the shipped Sandbox example loads; every mistake stops the start-up, named."""

from __future__ import annotations

import json

import pytest

from cds_service.app import build_runtime
from cds_service.config import Config
from cds_service.errors import ConfigError
from cds_service.security.issuers import load_issuers
from tests.security.tokens import REPO, SANDBOX_ISS, SANDBOX_JKU, SANDBOX_KID, VECTORS, jwks, made_key

SANDBOX_EXAMPLE = REPO / "deploy" / "issuers.sandbox.json"


def test_the_shipped_sandbox_example_loads_and_pins_the_published_jwks():
    issuers = load_issuers(SANDBOX_EXAMPLE)
    assert set(issuers) == {SANDBOX_ISS}
    sandbox = issuers[SANDBOX_ISS]
    assert sandbox.allowed_jku == {SANDBOX_JKU}
    assert sandbox.keys_for(SANDBOX_JKU).key(SANDBOX_KID, "ES384") is not None
    pinned = json.loads((REPO / "deploy" / "cds-hooks-sandbox-jwks.json").read_text())
    assert pinned == json.loads((VECTORS / "cds-hooks-sandbox-jwks.json").read_text())
    assert "test" in json.loads(SANDBOX_EXAMPLE.read_text())["description"].lower()


def write(tmp_path, document, jwks_files=None):
    for name, content in (jwks_files or {}).items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    path = tmp_path / "issuers.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


GOOD_KEYS = {"keys.json": jwks(made_key("ES384", "k"))}


@pytest.mark.parametrize(("document", "files", "message"), [
    ("{not json", {}, "is not valid JSON"),
    ([], {}, 'with an "issuers" array'),
    ({"issuers": {}}, {}, 'with an "issuers" array'),
    ({"issuers": []}, {}, "lists no issuer"),
    ({"issuers": [], "extra": 1}, {}, "unknown field"),
    ({"issuers": ["x"]}, {}, r"issuers\[0\] must be a JSON object"),
    ({"issuers": [{"jwks_file": "keys.json"}]}, GOOD_KEYS, 'needs "iss"'),
    ({"issuers": [{"iss": "a"}]}, {}, 'exactly one of "jwks_url" and "jwks_file"'),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json", "jwks_url": "https://a.example/jwks"}]}, GOOD_KEYS,
     "exactly one of"),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json", "tenant": ["t"]}]}, GOOD_KEYS, "unknown field.*tenant"),
    ({"issuers": [{"iss": "a", "jwks_uri": "https://a.example/jwks"}]}, {}, "unknown field.*jwks_uri"),
    ({"issuers": [{"iss": "a", "jwks_file": "missing.json"}]}, {}, "cannot read"),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json"}]}, {"keys.json": "nope"}, "not valid JSON"),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json"}]}, {"keys.json": {"keys": []}}, "no usable signing key"),
    ({"issuers": [{"iss": "a", "jwks_url": "http://a.example/jwks"}]}, {}, "must use https"),
    ({"issuers": [{"iss": "a", "jwks_url": 42}]}, {}, "is not a URL"),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json", "jku": "https://a.example/jwks"}]}, GOOD_KEYS,
     '"jku" must be an array'),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json", "jku": ["http://a.example/jwks"]}]}, GOOD_KEYS,
     "jku 'http://a.example/jwks' must use https"),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json", "tenants": [""]}]}, GOOD_KEYS, '"tenants" must be'),
    ({"issuers": [{"iss": "a", "jwks_file": "keys.json"}, {"iss": "a", "jwks_file": "keys.json"}]}, GOOD_KEYS,
     "listed twice"),
])
def test_a_bad_issuers_file_is_a_config_error_naming_the_problem(tmp_path, document, files, message):
    path = write(tmp_path, document, files)
    with pytest.raises(ConfigError, match=message) as raised:
        load_issuers(path)
    assert str(path) in str(raised.value)


def test_a_private_key_file_is_refused_at_start(tmp_path):
    from jwt.algorithms import ECAlgorithm

    private = {**json.loads(ECAlgorithm.to_jwk(made_key("ES384", "p").private)), "kid": "p"}
    path = write(tmp_path, {"issuers": [{"iss": "a", "jwks_file": "keys.json"}]}, {"keys.json": {"keys": [private]}})
    with pytest.raises(ConfigError, match="private"):
        load_issuers(path)


def test_a_missing_issuers_file_stops_build_runtime(tmp_path):
    with pytest.raises(ConfigError, match=r"CDS_JWT_ISSUERS file .* cannot be read"):
        build_runtime(Config(jwt_issuers=tmp_path / "absent.json", replay_db=":memory:"))


def test_jwks_url_issuers_are_not_fetched_at_start(tmp_path):
    # A key server that is down must not stop the service: keys are fetched on first use.
    path = write(tmp_path, {"issuers": [{"iss": "a", "jwks_url": "https://unreachable.invalid/jwks"}]})
    issuer = load_issuers(path)["a"]
    assert issuer.allowed_jku == {"https://unreachable.invalid/jwks"}


def test_unset_issuers_leave_the_service_open_and_say_so():
    runtime = build_runtime(Config())
    assert runtime.authenticator is None
    assert runtime.health()["features"]["authentication"].startswith("disabled")


def test_set_issuers_close_the_service(tmp_path):
    runtime = build_runtime(Config(jwt_issuers=SANDBOX_EXAMPLE, replay_db=str(tmp_path / "replay.sqlite3")))
    assert runtime.authenticator is not None
    assert runtime.health()["features"]["authentication"].startswith("jwt")
