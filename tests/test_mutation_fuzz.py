"""Mutation fuzzing of real hook calls (issue 13): never a 5xx, a 4xx is a clean OperationOutcome, no hang.

The real service app (complete prefetch, no fhirServer) gets every path of every golden call, Sandbox-
and spec-shaped call and feedback body mutated with hostile values drawn from the catalogue of
tests/mutation.py (seeded: the same requests on every run), plus whole-body mutations. A second pass
reads everything from a FHIR server (mocked with `responses`) whose answers are mutated the same way,
so the fetch path is fuzzed too. `make fuzz` runs the whole catalogue on every path (bench/).
"""

from __future__ import annotations

import logging
import random
import re
import threading

import pytest
import responses

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fhir.fetch import FhirGateway
from cds_service.runtime import Runtime
from tests import mutation
from tests.conftest import FIXED_NOW
from tests.fhir.support import InlineExecutor

SEED = 13
# Mutations per path in `make test` (of the ~26 in the catalogue); paths that the reported 500s came
# from (resourceType, link, entry, references) get more.
PER_PATH = 2
FOCUS_PER_PATH = 8
DEADLINE_MS = 1000
# Generous: the bound only tells a hang from an answer (the machine may be loaded: a call answering in
# 60 ms took 11 s once under a load of 10 on 2 cores), it measures nothing.
LIMIT_SECONDS = DEADLINE_MS / 1000 + 30
_FOCUS = {"resourceType", "link", "entry", "reference", "fullUrl", "contained", "medicationCodeableConcept",
          "id", "study", "subject", "individual", "coding"}


def focus(path: mutation.Path_) -> bool:
    """A path to one of the elements read raw before validation (or an item of one)."""
    named = [part for part in path[-2:] if isinstance(part, str)]
    return bool(named) and named[-1] in _FOCUS


# Found by this fuzzer (issue 13) and fixed in rules/orders.py: a dosage timing whose `period` was 0 (or
# tiny) made `_expand` loop forever, and 1e308 overflowed there. Nothing is excluded any more; the set
# stays as the place to name a defect found here until it is fixed.
KNOWN_ELSEWHERE: set[tuple[tuple[str, ...], str]] = set()


def known_elsewhere(where: str, how: str) -> bool:
    return any(where.endswith(".".join(tail)) and how == value for tail, value in KNOWN_ELSEWHERE)


def app_client(fhir: FhirGateway | None = None, **settings):
    config = Config(call_deadline_ms=DEADLINE_MS, cache_ttl_seconds=0,
                    allowed_fhir_servers=(mutation.FHIR_BASE,), **settings)
    return create_app(runtime=Runtime(config=config, clock=lambda: FIXED_NOW, fhir=fhir)).test_client()


@pytest.fixture
def quiet():
    # Thousands of calls: their request and warning log lines are not what is tested here.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _failures(client, mutations) -> tuple[int, list[str]]:
    count, failed = 0, []
    for item in mutations:
        if known_elsewhere(item.where, item.how):
            continue
        count += 1
        status, text, seconds = mutation.post(client, item, LIMIT_SECONDS)
        why = mutation.check(item, status, text, seconds, LIMIT_SECONDS)
        if why:
            failed.append(f"{item.describe()} → {why}")
        if status == mutation.HUNG:
            break  # its thread still runs: the rest would only be slowed down by it
    return count, failed


@pytest.mark.usefixtures("quiet")
def test_mutated_prefetch_calls_and_feedback_are_always_answered():
    count, failed = _failures(app_client(), mutation.sampled(
        mutation.documents(), random.Random(SEED), PER_PATH, focus, FOCUS_PER_PATH))
    assert count > 2000  # every path of every document, not a handful
    assert not failed, f"{len(failed)} of {count} mutated requests:\n" + "\n".join(failed[:30])


@pytest.mark.usefixtures("quiet")
@responses.activate
def test_mutated_fhir_server_answers_are_always_answered():
    state: dict[str, dict] = {}

    def reply(request):
        status, body = mutation.answer(state["answers"], request.url)
        return status, {"Content-Type": "application/fhir+json"}, body

    responses.add_callback(responses.GET, re.compile(re.escape(mutation.FHIR_BASE) + "/.*"), callback=reply)
    config = Config(call_deadline_ms=DEADLINE_MS, cache_ttl_seconds=0, fhir_retries=0,
                    allowed_fhir_servers=(mutation.FHIR_BASE,))
    client = app_client(FhirGateway(config, executor=InlineExecutor()))
    count, failed = 0, []
    for case in mutation.server_cases(random.Random(SEED), PER_PATH):
        if known_elsewhere(case.where, case.how):
            continue
        state["answers"] = case.answers
        count += 1
        item = mutation.Mutation(case.document, case.where, case.how, case.endpoint,
                                 mutation.json.dumps(case.body).encode(), "application/json")
        status, text, seconds = mutation.post(client, item, LIMIT_SECONDS)
        why = mutation.check(item, status, text, seconds, LIMIT_SECONDS)
        if why:
            failed.append(f"{case.describe()} → {why}")
        if status == mutation.HUNG:
            break
    assert count > 500
    assert not failed, f"{len(failed)} of {count} calls with a mutated server:\n" + "\n".join(failed[:30])


def test_the_checks_catch_what_they_are_for():
    """The assertions above can fail: a 500, a traceback in a 4xx, a non-OperationOutcome 4xx, a hang."""
    item = mutation.Mutation("d", "x", "null", "/", b"{}", "application/json")
    outcome = '{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}'
    assert mutation.check(item, 500, outcome, 0.1, 5) == "HTTP 500"
    assert "stack trace" in mutation.check(item, 400, outcome.replace("invalid", 'File \\"x.py\\"'), 0.1, 5)
    assert "OperationOutcome" in mutation.check(item, 400, '{"error": "x"}', 0.1, 5)
    assert "answered after" in mutation.check(item, 200, '{"cards": []}', 6, 5)
    assert "a hang" in mutation.check(item, mutation.HUNG, "", 5, 5)
    assert mutation.check(item, 400, outcome, 0.1, 5) is None
    assert mutation.check(item, 200, '{"cards": []}', 0.1, 5) is None


@pytest.mark.parametrize("how", ["zero", "1e308", "minus one"])
@pytest.mark.usefixtures("quiet")
def test_a_dosage_period_of_zero_or_out_of_range_answers_promptly(how):
    document = next(d for d in mutation.documents() if d.name == "order-sign-arm-b-cycle-3.request.json")
    path = ("context", "draftOrders", "entry", 0, "resource", "dosageInstruction", 0, "timing", "repeat",
            "period")
    item = mutation.at_path(document, path, how)
    status, text, seconds = mutation.post(app_client(), item, LIMIT_SECONDS)
    assert mutation.check(item, status, text, seconds, LIMIT_SECONDS) is None


def test_a_request_that_never_answers_is_reported_as_a_hang():
    release = threading.Event()

    class Answer:
        status_code = 200

        def get_data(self, as_text=False):
            return '{"cards": []}'

    class Stuck:
        def post(self, *args, **kwargs):
            release.wait()  # until the test lets it go: no answer within the limit
            return Answer()

    item = mutation.Mutation("d", "x", "null", "/", b"{}", "application/json")
    try:
        status, _, _ = mutation.post(Stuck(), item, limit=0.05)
    finally:
        release.set()
    assert status == mutation.HUNG
