"""Golden request/response pairs of full calls: any change to a card's text or shape shows up in review.

Regenerate after an intended change with `UPDATE_GOLDEN=1 make test` and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.rules.scenario import call, care_plan, day_of, dex_order
from tests.spec import check_cds_response

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
SERVICES = {"order-sign": "dex-free-order-sign", "order-select": "dex-free-order-select",
            "patient-view": "dex-free-patient-view"}
CASES = {
    "order-sign-arm-b-cycle-3": lambda: call(orders=(dex_order(day_of(3, 1)),)),
    "order-select-arm-b-runs-into-cycle-3": lambda: call("order-select", (dex_order(day_of(2, 22), days=10,
                                                                                   frequency=(1, 1, "wk")),)),
    "order-sign-ikema-dose-mismatch": lambda: call(orders=(dex_order(day_of(2, 8), dose=40),),
                                                   plans=(care_plan("ikema-arm-b"),)),
    "order-sign-cycle-unknown": lambda: call(orders=(dex_order(),), plans=()),
    "patient-view-arm-b-status": lambda: call("patient-view"),
}


def _stable(body):
    """Card and suggestion uuids are random by design: replace them for comparison."""
    text = json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True)
    for card in body.get("cards", []):
        text = text.replace(card["uuid"], "<card-uuid>")
        for item in card.get("suggestions", []):
            text = text.replace(item["uuid"], "<suggestion-uuid>")
    return text + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(client, name):
    request_path, response_path = GOLDEN / f"{name}.request.json", GOLDEN / f"{name}.response.json"
    if os.environ.get("UPDATE_GOLDEN"):
        request_path.write_text(json.dumps(CASES[name](), indent=2, ensure_ascii=False) + "\n")
    body = json.loads(request_path.read_text())
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200
    check_cds_response(response.get_json())
    actual = _stable(response.get_json())
    if os.environ.get("UPDATE_GOLDEN"):
        response_path.write_text(actual)
    assert actual == response_path.read_text()
