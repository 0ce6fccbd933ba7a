"""Loaded at start-up by the Python of the end-to-end test's server (its PYTHONPATH names this folder).

No service of the project emits cards yet, so the server's services are swapped for one that answers
every order-sign call with two cards carrying the rules' finding, as the rules will build them. The rest
of the server is the real one: `cds-service serve`, gunicorn, build_runtime and its audit store.
"""

from cds_service import services
from cds_service.hooks.registry import Registry, ServiceDefinition
from cds_service.hooks.response import card

E2E_SERVICE_ID = "dex-free-order-sign"


def _evaluate(call):
    finding = {"study": "NCT06561854", "arm": "B", "regimen": "ICARIA", "cycle": 3, "cycleDay": 1,
               "evidence": ["MedicationRequest/draft-dex-1"]}
    reasons = [{"system": "https://dexfree.example/override", "code": "premedication",
                "display": "Premedication for isatuximab"}]
    return [
        card(summary="Arm B: no dexamethasone from cycle 3", indicator="warning",
             source={"label": "Dex-Free CDS"}, override_reasons=reasons,
             extension={"dexfree": {**finding, "rule": "dex-after-cycle-2"}}),
        card(summary="Check this patient's trial status", indicator="info", source={"label": "Dex-Free CDS"},
             extension={"dexfree": {**finding, "rule": "trial-status"}}),
    ]


_SERVICE = ServiceDefinition(id=E2E_SERVICE_ID, hook="order-sign", title="End-to-end test service",
                             description="Returns two cards carrying the rules' finding.", prefetch={},
                             evaluate=_evaluate)
services.default_registry = lambda: Registry([_SERVICE])
