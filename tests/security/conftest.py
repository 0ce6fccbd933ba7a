"""Fixtures for the security tests: an issuers file with the Sandbox and an EHR, and an app that needs JWTs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.runtime import Runtime
from cds_service.security.jwt_auth import build_authenticator
from tests.conftest import FIXED_NOW
from tests.security.tokens import (
    EHR_ISS,
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_JWKS,
    jwks,
    made_key,
    write_issuers,
)

TENANTS = ["site-a", "site-b"]


def ehr_keys():
    return made_key("RS384", "rsa-1"), made_key("ES256", "ec-1")


@pytest.fixture
def issuers_file(tmp_path):
    shutil.copy(SANDBOX_JWKS, tmp_path / "sandbox-jwks.json")
    return write_issuers(tmp_path, [
        {"iss": SANDBOX_ISS, "jwks_file": "sandbox-jwks.json", "jku": [SANDBOX_JKU]},
        {"iss": EHR_ISS, "jwks_file": "ehr-jwks.json", "tenants": TENANTS},
    ], {"ehr-jwks.json": jwks(*ehr_keys())})


@dataclass
class SpyAudit:
    """Records who each call and feedback came from."""

    callers: list[Any] = field(default_factory=list)

    def cards_shown(self, service_id, request, record, cards, caller):
        self.callers.append(caller)

    def feedback_received(self, service_id, entries, caller):
        self.callers.append(caller)
        return {"received": len(entries)}

    def describe(self):
        return "spy"


@pytest.fixture
def audit():
    return SpyAudit()


def jwt_app(issuers_file, audit=None, **settings):
    config = Config(jwt_issuers=issuers_file, replay_db=":memory:", workers=1, **settings)
    runtime = Runtime(config=config, authenticator=build_authenticator(config), audit=audit or SpyAudit(),
                      clock=lambda: FIXED_NOW)
    return create_app(runtime=runtime)


@pytest.fixture
def client(issuers_file, audit):
    return jwt_app(issuers_file, audit).test_client()
