"""Hook calls for demo patients the way the preview page makes them: prefetch from the discovery templates,
read from the service's own demo FHIR endpoint, then a real POST to the hook endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.demo.codes import dexamethasone_products, routes
from cds_service.knowledge.model import Knowledge
from cds_service.runtime import Runtime

USER = "Practitioner/dexfree-demo-clinician"


class DemoClient:
    """A Flask test client of the service whose clock says `today` (09:30 UTC), with demo helpers."""

    def __init__(self, knowledge: Knowledge, today: date, **settings: Any) -> None:
        self.knowledge, self.today = knowledge, today
        now = datetime.combine(today, time(9, 30), tzinfo=UTC)
        self.runtime = Runtime(config=Config(**settings), knowledge=knowledge, clock=lambda: now)
        self.client = create_app(runtime=self.runtime).test_client()
        self.services = {s["hook"]: s for s in self.client.get("/cds-services").get_json()["services"]}

    def prefetch(self, hook: str, patient_id: str) -> dict[str, Any]:
        found = {}
        for key, template in self.services[hook]["prefetch"].items():
            answer = self.client.get("/demo/fhir/" + template.replace("{{context.patientId}}", patient_id))
            assert answer.status_code == 200, (template, answer.get_json())
            found[key] = answer.get_json()
        return found

    def call(self, hook: str, patient_id: str, orders: tuple[dict[str, Any], ...] = ()) -> list[dict[str, Any]]:
        context: dict[str, Any] = {"userId": USER, "patientId": patient_id}
        if hook != "patient-view":
            context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": o} for o in orders]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{o['id']}" for o in orders]
        body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context,
                "prefetch": self.prefetch(hook, patient_id)}
        answer = self.client.post(f"/cds-services/{self.services[hook]['id']}", json=body)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["cards"]

    def order(self, patient_id: str, dose: float, *, doses: int = 1, start: date | None = None,
              route: int = 0) -> dict[str, Any]:
        """A draft like the page's: the first product, a coded route, once a day for `doses` days."""
        start = start or self.today
        product = dexamethasone_products(self.knowledge)[0]
        return {
            "resourceType": "MedicationRequest", "id": "preview-order-1", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"}, "authoredOn": self.today.isoformat(),
            "medicationCodeableConcept": {"coding": [product], "text": product["display"]},
            "dosageInstruction": [{
                "route": {"coding": [routes(self.knowledge)[route]]},
                "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "mg", "system": "http://unitsofmeasure.org",
                                                  "code": "mg"}}],
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "boundsPeriod": {
                    "start": start.isoformat(), "end": (start + timedelta(days=doses - 1)).isoformat()}}},
            }],
        }


def rules(cards: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(indicator, rule id) of each card: what the assertions compare, never the sentences."""
    return [(c["indicator"], c.get("extension", {}).get("dexfree", {}).get("rule")) for c in cards]
