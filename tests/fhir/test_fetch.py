"""The gateway: reads really run side by side on one pool per process; the runtime warms the models."""

from __future__ import annotations

import threading

import pytest
import responses

from cds_service.config import Config
from cds_service.fhir import fetch as fetch_module
from cds_service.fhir.assemble import MODEL_TYPES
from cds_service.fhir.client import Deadline, Target
from cds_service.fhir.fetch import FhirGateway, Read
from cds_service.runtime import Runtime
from tests.fhir.support import BASE, TOKEN, bundle, jbody

PARTS = ("Condition", "Observation", "Procedure", "CarePlan")


@responses.activate
def test_independent_reads_run_concurrently():
    # Each answer waits until all four reads are in flight: a serial fetch could never pass.
    barrier = threading.Barrier(len(PARTS), timeout=10)

    def answer(request):
        barrier.wait()
        return 200, {}, jbody(bundle())

    for kind in PARTS:
        responses.add_callback(responses.GET, f"{BASE}/{kind}", callback=answer)
    gateway = FhirGateway(Config())
    reads = [Read(kind, (f"{kind}?patient=p1",)) for kind in PARTS]
    outcomes = gateway.fetch(Target(BASE, TOKEN), reads, gateway.deadline())
    assert {name: o.error for name, o in outcomes.items()} == dict.fromkeys(PARTS)
    assert not barrier.broken


def test_one_pool_per_process_made_on_first_use(monkeypatch):
    gateway = FhirGateway(Config())
    assert gateway._owned_executor is None  # nothing started before gunicorn forks its workers
    pool = gateway._pool()
    assert gateway._pool() is pool
    assert pool._max_workers == gateway.pool_size
    monkeypatch.setattr(fetch_module.os, "getpid", lambda: -1)  # as in a forked worker
    assert gateway._pool() is not pool
    pool.shutdown()


@responses.activate
def test_a_read_not_done_by_the_deadline_is_reported_as_such():
    release = threading.Event()

    def stuck(request):
        release.wait(10)
        return 200, {}, jbody(bundle())

    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=stuck)
    gateway = FhirGateway(Config())
    try:
        spent = Deadline.after(50)  # the read starts, then hangs past it
        outcomes = gateway.fetch(Target(BASE, TOKEN), [Read("Observation", ("Observation?patient=p1",))], spent)
        assert outcomes["Observation"].error.kind == "deadline"
    finally:
        release.set()


def test_the_runtime_warms_the_models_it_will_parse(monkeypatch):
    warmed = []
    monkeypatch.setattr("cds_service.runtime.warm_models", warmed.append)
    runtime = Runtime(config=Config())
    assert warmed == [MODEL_TYPES]
    assert isinstance(runtime.fhir, FhirGateway)
    assert {"Patient", "MedicationRequest", "ResearchSubject", "Medication", "ResearchStudy"} <= set(MODEL_TYPES)


@pytest.mark.parametrize("threads", [1, 4, 16])
def test_the_pool_lets_every_concurrent_call_have_all_its_parts_in_flight(threads):
    gateway = FhirGateway(Config(threads=threads))
    assert gateway.pool_size >= min(64, threads * 9)
