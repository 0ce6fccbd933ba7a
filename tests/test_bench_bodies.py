"""The latency benchmark's calls (bench/bench_hooks.py) are what they claim: their size, and their cards."""

from __future__ import annotations

import json

import pytest

from bench.bench_hooks import EXPECTED, KINDS, PLACEHOLDER, body, count
from tests.conftest import FIXED_NOW


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [10, 100, 2000])
def test_each_benchmark_call_has_its_size_and_its_cards(client, kind, size):
    request = body(kind, size, FIXED_NOW.date())
    assert abs(count(request) - size) <= 1
    assert json.dumps(request).count(PLACEHOLDER) == 1  # where wrk puts a fresh hookInstance
    response = client.post("/cds-services/dex-free-order-sign", data=json.dumps(request),
                           content_type="application/json")
    assert response.status_code == 200
    assert [c["extension"]["dexfree"]["rule"] for c in response.get_json()["cards"]] == EXPECTED[kind]
