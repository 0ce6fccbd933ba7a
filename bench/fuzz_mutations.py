"""The large mutation-fuzzing run (`make fuzz`): the whole hostile catalogue on every path (not `make test`).

Every path of every golden, Sandbox- and spec-shaped hook call and feedback body gets every mutation of
tests/mutation.py (with complete prefetch and no fhirServer), and every whole-body mutation; then every
path of the FHIR server's answers (mocked) for the golden calls read with no prefetch. `--count` caps
the number of mutated requests per pass, drawn at random with `--seed` (default: all of them, ~35,000).
Prints what failed (a 5xx, a 4xx that is not a clean OperationOutcome, an answer after the deadline
plus a margin) and exits 1 if anything did. Mutations that tests/test_mutation_fuzz.py leaves out as
known defects of another layer are left out here too (`--all` runs them: one of them hangs).
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import responses  # noqa: E402

from cds_service.config import Config  # noqa: E402
from cds_service.fhir.fetch import FhirGateway  # noqa: E402
from tests import mutation  # noqa: E402
from tests.fhir.support import InlineExecutor  # noqa: E402
from tests.test_mutation_fuzz import DEADLINE_MS, LIMIT_SECONDS, app_client, known_elsewhere  # noqa: E402


def _pick(items, count: int | None, rng: random.Random):
    items = list(items)
    return items if count is None or count >= len(items) else rng.sample(items, count)


def _run(client, items, describe, before=lambda item: None) -> tuple[int, list[str]]:
    failed, started = [], time.monotonic()
    for number, (item, mutated) in enumerate(items, start=1):
        before(item)
        status, text, seconds = mutation.post(client, mutated, LIMIT_SECONDS)
        why = mutation.check(mutated, status, text, seconds, LIMIT_SECONDS)
        if why:
            failed.append(f"{describe(item)} → {why}")
            print(f"FAIL {failed[-1]}", flush=True)
        if number % 2000 == 0:
            print(f"  {number} requests, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return len(items), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--count", type=int, help="mutated requests per pass (default: all)")
    parser.add_argument("--all", action="store_true", help="also the known defects of other layers")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    rng = random.Random(args.seed)
    keep = (lambda where, how: True) if args.all else (lambda where, how: not known_elsewhere(where, how))

    requests = [m for m in mutation.every_mutation(mutation.documents(), rng) if keep(m.where, m.how)]
    requests = _pick(requests, args.count, rng)
    count, failed = _run(app_client(), [(m, m) for m in requests], lambda m: m.describe())
    print(f"prefetch pass: {count} mutated requests, {len(failed)} failed")

    cases = [c for c in mutation.server_cases(rng, len(mutation.HOSTILE) + len(mutation.STRUCTURAL))
             if keep(c.where, c.how)]
    cases = _pick(cases, args.count, rng)
    state: dict = {}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as server:
        server.add_callback(responses.GET, re.compile(re.escape(mutation.FHIR_BASE) + "/.*"),
                            callback=lambda request: (*_reply(state, request.url),))
        config = Config(call_deadline_ms=DEADLINE_MS, cache_ttl_seconds=0, fhir_retries=0,
                        allowed_fhir_servers=(mutation.FHIR_BASE,))
        client = app_client(FhirGateway(config, executor=InlineExecutor()))
        items = [(c, _request(c)) for c in cases]
        server_count, server_failed = _run(client, items, lambda c: c.describe(),
                                           before=lambda c: state.__setitem__("answers", c.answers))
    print(f"FHIR server pass: {server_count} calls, {len(server_failed)} failed")
    return 1 if failed or server_failed else 0


def _request(case: mutation.ServerCase) -> mutation.Mutation:
    return mutation.Mutation(case.document, case.where, case.how, case.endpoint,
                             mutation.json.dumps(case.body).encode(), "application/json")


def _reply(state: dict, url: str) -> tuple[int, dict[str, str], str]:
    status, body = mutation.answer(state["answers"], url)
    return status, {"Content-Type": "application/fhir+json"}, body


if __name__ == "__main__":
    sys.exit(main())
