"""Shared fixtures: a configured app with a fixed clock, and the request fixtures."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.knowledge.model import Knowledge, load_knowledge
from cds_service.runtime import Runtime

FIXTURES = Path(__file__).parent / "fixtures"
# The workplace's shared/ lies beside the repository (CI: beside its clone); mutmut runs the tests from a
# copy one level deeper (mutants/), so the nearest ancestor that has it is taken.
_HERE = Path(__file__).resolve()
SHARED = next((p / "shared" for p in _HERE.parents if (p / "shared" / "fhir-examples").is_dir()),
              _HERE.parent.parent.parent / "shared")
FIXED_NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def load_fixture(relative: str) -> Any:
    """A JSON fixture under tests/fixtures, as a fresh copy the test may change."""
    return copy.deepcopy(json.loads((FIXTURES / relative).read_text()))


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    """The shipped plan_definitions/, loaded once for the whole run (tests never change it in place)."""
    return load_knowledge(Config().plan_definitions)


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
def runtime(config: Config, knowledge: Knowledge) -> Runtime:
    return Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW)


@pytest.fixture
def app(runtime: Runtime):
    return create_app(runtime=runtime)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def request_fixture():
    return load_fixture
