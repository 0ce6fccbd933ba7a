"""Every card the service's own scenario tables produce, through the real hook calls, for the style checks.

The tables are the ones the rule tests run (order shapes, cycle clock end-to-end rows, order hooks, golden
calls), the demo population through the hooks as the preview page calls them, and the eligibility fixtures
(criterion cases and the synthetic population) through patient-view. Each card comes with where it was made,
so a failing check names its scenario.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from cds_service.app import create_app
from cds_service.demo.population import build_population
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.rules.scenario import call, care_plan

Found = tuple[str, dict[str, Any]]  # (scenario name, card)
SERVICES = {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select",
            "patient-view": "dex-free-patient-view"}


def _post(client: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def _named(name: str, cards: list[dict[str, Any]]) -> Iterator[Found]:
    for card in cards:
        yield name, card


def order_tables(client: Any) -> Iterator[Found]:
    """The order shapes, the order hook scenarios, the cycle clock end-to-end rows and the golden calls."""
    from tests.rules import test_cycle_clock, test_order_shapes
    from tests.services import test_golden, test_order_hooks

    for param in test_order_shapes.CASES:
        shape, day, _ = param.values
        yield from _named(f"shape {param.id}", _post(client, test_order_shapes._body(shape, day)))
    for name, kwargs, _ in test_order_hooks.SCENARIOS:
        yield from _named(f"hooks {name}", _post(client, call(**kwargs)))
    for name, kwargs, *_ in test_cycle_clock.E2E:
        yield from _named(f"clock {name}", _post(client, call(**{"plans": (care_plan(),), **kwargs})))
    for name, build in test_golden.CASES.items():
        yield from _named(f"golden {name}", _post(client, build()))
    # Both hooks see the patient: the trial-status card of every order scenario's record.
    for name, kwargs, _ in test_order_hooks.SCENARIOS:
        view = {k: v for k, v in kwargs.items() if k != "orders"}
        yield from _named(f"status {name}", _post(client, call("patient-view", **view)))
    for name, kwargs, *_ in test_cycle_clock.E2E:
        view = {k: v for k, v in {"plans": (care_plan(),), **kwargs}.items() if k != "orders"}
        yield from _named(f"status {name}", _post(client, call("patient-view", **view)))


def demo_population(knowledge: Any, days: tuple[date, ...] = (date(2026, 11, 24), date(2027, 3, 1))
                    ) -> Iterator[Found]:
    """Every demo patient through patient-view and order-sign (40 mg, the regimen's dose, two days)."""
    from tests.demo.support import DemoClient

    for today in days:
        demo = DemoClient(knowledge, today, show_not_eligible=True)
        for patient in build_population(knowledge, today).resources():
            if patient["resourceType"] != "Patient":
                continue
            pid = patient["id"]
            yield from _named(f"demo {today} {pid} view", demo.call("patient-view", pid))
            for dose in (40, 20):
                for doses in (1, 2):
                    order = demo.order(pid, dose, doses=doses)
                    yield from _named(f"demo {today} {pid} {dose} mg x{doses}",
                                      demo.call("order-sign", pid, (order,)))
            later = demo.order(pid, 40, start=today + timedelta(days=1))
            yield from _named(f"demo {today} {pid} tomorrow", demo.call("order-sign", pid, (later,)))


def eligibility_fixtures(config: Any, knowledge: Any) -> Iterator[Found]:
    """The criterion cases and the synthetic population through patient-view, not-eligible cards shown."""
    from tests.cards.test_eligibility_card import call_body
    from tests.fixtures.eligibility.population import SHARED, population
    from tests.rules import test_eligibility_criteria

    runtime = Runtime(config=replace(config, show_not_eligible=True), knowledge=knowledge, clock=lambda: FIXED_NOW)
    client = create_app(runtime=runtime).test_client()

    def view(resources: list[dict[str, Any]], pid: str) -> list[dict[str, Any]]:
        response = client.post("/cds-services/dex-free-patient-view", data=json.dumps(call_body(resources, pid)),
                               content_type="application/json")
        assert response.status_code == 200, response.get_json()
        return response.get_json()["cards"]

    for criterion, name, resources, *_ in test_eligibility_criteria.CASES:
        patient_ids = [r["id"] for r in resources if r["resourceType"] == "Patient"]
        if patient_ids:  # without a Patient the call is refused (OperationOutcome): no card to check
            yield from _named(f"criterion {criterion} {name}", view(resources, patient_ids[0]))
    for synthetic in population(44, size=40, detailed=False):
        yield from _named(f"population {synthetic.archetype.name}",
                          view([*synthetic.resources, *SHARED], synthetic.pid))


def every_card(client: Any, config: Any, knowledge: Any) -> list[Found]:
    return [*order_tables(client), *demo_population(knowledge), *eligibility_fixtures(config, knowledge)]
