"""Audit fixtures: a fresh database on each back end (SQLite file, real PostgreSQL), a test service, requests.

Every PostgreSQL database is named dexfree_test_<run hex>_<n> and dropped after its test, so runs in
parallel never meet. The server is the one tests/services/with_postgres.sh found or started
(CDS_TEST_POSTGRES_URL); without one the PostgreSQL cases fail under CI and skip elsewhere, with the reason
(tests/servers.py `require`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.audit.store import AuditStore
from cds_service.config import Config
from cds_service.hooks.registry import Registry, ServiceDefinition
from cds_service.hooks.response import card
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.servers import PostgresDatabases, postgres_admin

STUDY = "NCT06561854"
SUBJECT_ID = "DXF-0042"
SERVICE_ID = "test-order-sign"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    admin = postgres_admin()  # fails under CI, skips elsewhere, when there is no server
    databases = PostgresDatabases(admin)
    try:
        yield databases
    finally:
        databases.drop_all()
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database on each back end, in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/var/audit.sqlite3"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    name, url = databases.create()
    try:
        yield url
    finally:
        databases.drop(name)


@pytest.fixture
def open_store(database_url) -> Iterator[Callable[..., AuditStore]]:
    """Opens stores on the test database (keywords go to AuditStore) and closes them all at the end."""
    opened: list[AuditStore] = []

    def _open(**kwargs: Any) -> AuditStore:
        kwargs.setdefault("clock", lambda: FIXED_NOW)
        store = AuditStore(database_url, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close(timeout=5)


# --- a service that returns cards carrying the rules' finding -----------------------------------

def finding_card(rule: str | None, *, arm: str | None = "B", cycle: int | None = 3, cycle_day: int = 1,
                 regimen: str | None = "ICARIA", indicator: str = "warning",
                 card_uuid: str | None = None) -> dict[str, Any]:
    """A card as the rules will build it: the finding in extension.dexfree (none when rule is None)."""
    extension = None
    if rule is not None:
        extension = {"dexfree": {"rule": rule, "study": STUDY, "arm": arm, "regimen": regimen,
                                 "cycle": cycle, "cycleDay": cycle_day,
                                 "evidence": ["MedicationRequest/draft-dex-1"]}}
    return card(summary=f"Test card for {rule}", indicator=indicator, source={"label": "Dex-Free CDS"},
                override_reasons=[{"system": "https://dexfree.example/override", "code": "premedication",
                                   "display": "Premedication for isatuximab"}],
                extension=extension, card_uuid=card_uuid)


class CardSource:
    """What the test service answers: set `cards` (a list of finding_card arguments) before a call."""

    def __init__(self) -> None:
        self.cards: list[dict[str, Any]] = [{"rule": "dex-after-cycle-2"}]

    def evaluate(self, call) -> list[dict[str, Any]]:
        return [finding_card(**spec) for spec in self.cards]


@pytest.fixture
def card_source() -> CardSource:
    return CardSource()


def registry_for(source: CardSource) -> Registry:
    return Registry([ServiceDefinition(id=SERVICE_ID, hook="order-sign", title="Test", description="Test",
                                       prefetch={}, evaluate=source.evaluate)])


def hook_request(subject_id: str | None = SUBJECT_ID, study: str = STUDY) -> dict[str, Any]:
    """The spec order-sign call, with the patient enrolled as `subject_id` in `study` (None: not enrolled)."""
    body = load_fixture("requests/spec-order-sign.json")
    if subject_id is not None:
        body["prefetch"]["researchSubjects"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "ResearchSubject", "id": "rs-1", "status": "on-study",
                          "identifier": [{"system": "https://sponsor.example/subjects", "value": subject_id}],
                          "study": {"reference": "ResearchStudy/study-1"},
                          "individual": {"reference": "Patient/pat-1"}, "assignedArm": "B"}},
            {"resource": {"resourceType": "ResearchStudy", "id": "study-1", "status": "active",
                          "identifier": [{"system": "https://clinicaltrials.gov", "value": study}]}},
        ]}
    return body


def runtime_with(store, source: CardSource) -> Runtime:
    return Runtime(config=Config(), registry=registry_for(source), audit=store, clock=lambda: FIXED_NOW)


def feedback_body(card_uuid: str, outcome: str = "overridden", *, at: str = "2026-11-24T10:05:31Z",
                  code: str | None = "premedication", comment: str | None = None,
                  accepted: tuple[str, ...] = ()) -> dict[str, Any]:
    entry: dict[str, Any] = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": at}
    if outcome == "overridden" and code:
        entry["overrideReason"] = {"reason": {"system": "https://dexfree.example/override", "code": code,
                                              "display": code.capitalize()}}
        if comment:
            entry["overrideReason"]["userComment"] = comment
    if accepted:
        entry["acceptedSuggestions"] = [{"id": a} for a in accepted]
    return {"feedback": [entry]}


def at(day: int, hour: int = 9, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)
