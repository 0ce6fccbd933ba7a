"""Fixtures of the published endpoints: the app with authentication on, and the public base URL."""

from __future__ import annotations

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.errors import CdsError
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW

PUBLIC_BASE = "https://cds.example.org/dexfree"


def refuse_everyone(authorization, url):
    """An authenticator no caller passes: what is still answered is answered without authentication."""
    raise CdsError(401, "no token", code="login")


@pytest.fixture
def locked_client(knowledge):
    """A service whose JWT authentication refuses every call."""
    runtime = Runtime(config=Config(), knowledge=knowledge, clock=lambda: FIXED_NOW,
                      authenticator=refuse_everyone)
    return create_app(runtime=runtime).test_client()


@pytest.fixture
def proxied_client(knowledge):
    """A service behind a proxy: CDS_BASE_URL names its public address."""
    runtime = Runtime(config=Config(base_url=PUBLIC_BASE + "/"), knowledge=knowledge, clock=lambda: FIXED_NOW)
    return create_app(runtime=runtime).test_client()
