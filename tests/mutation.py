"""The mutation fuzzer's engine (issue 13): real hook calls, mutated one path at a time, and the checks.

Shared by tests/test_mutation_fuzz.py (seeded, bounded, in `make test`) and bench/fuzz_mutations.py (the
larger run of `make fuzz`). A mutation is one of: a hostile value put at one path of a document, that
path dropped, a list item duplicated; or a whole-body change (bytes that are not UTF-8, JSON cut short,
another content type). Every path of every document is a candidate; which (path, mutation) pairs run is
drawn from a `random.Random(seed)`, so a run is the same on every machine.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.fhir.prefetch import TEMPLATES
from cds_service.hooks.request import MAX_JSON_DEPTH

FIXTURES = Path(__file__).parent / "fixtures"
SERVICES = {"order-select": "dex-free-order-select", "order-sign": "dex-free-order-sign",
            "patient-view": "dex-free-patient-view"}
Path_ = tuple[Any, ...]

FEEDBACK_BODIES = {
    "feedback-accepted": {"feedback": [{
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "accepted",
        "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
        "outcomeTimestamp": "2026-11-24T09:31:00Z"}]},
    "feedback-overridden": {"feedback": [{
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
        "overrideReason": {"reason": {"code": "patient-understands-risk",
                                      "system": "https://dexfree.example.org/CodeSystem/override-reasons",
                                      "display": "Patient understands the risk"},
                           "userComment": "discussed at the tumour board"},
        "outcomeTimestamp": "2026-11-24T09:32:00+01:00"}]},
}


@dataclass(frozen=True)
class Document:
    """A real request body and where it is posted."""

    name: str
    endpoint: str
    body: dict[str, Any]


def documents(with_fhir_server: bool = False) -> list[Document]:
    """Every hook's golden calls and the Sandbox/spec-shaped calls, and feedback bodies.

    Without `with_fhir_server` the calls carry their complete prefetch and no fhirServer (nothing is
    read from a server: the prefetch path alone is fuzzed).
    """
    found = []
    files = sorted((FIXTURES / "golden").glob("*.request.json")) + sorted((FIXTURES / "requests").glob("*.json"))
    for file in files:
        body = json.loads(file.read_text())
        if not with_fhir_server:
            body.pop("fhirServer", None)
            body.pop("fhirAuthorization", None)
        found.append(Document(file.name, f"/cds-services/{SERVICES[body['hook']]}", body))
    for name, body in FEEDBACK_BODIES.items():
        for service in SERVICES.values():
            found.append(Document(f"{name}@{service}", f"/cds-services/{service}/feedback", body))
    return found


def paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path (keys and indexes) into a JSON document, the root excluded."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += paths(value, (*prefix, index))
    return found


def nested(depth: int) -> Any:
    """An array nested `depth` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# name → the value put at a path (a function of the path's depth, for the nesting just under the limit).
HOSTILE: dict[str, Callable[[int], Any]] = {
    "null": lambda d: None,
    "empty string": lambda d: "",
    "empty array": lambda d: [],
    "empty object": lambda d: {},
    "zero": lambda d: 0,
    "minus one": lambda d: -1,
    "1e308": lambda d: 1e308,
    "true": lambda d: True,
    "huge string": lambda d: "x" * 100_000,
    "nested past the limit": lambda d: nested(MAX_JSON_DEPTH + 20),
    "nested just under the limit": lambda d: nested(max(1, MAX_JSON_DEPTH - d - 1)),
    "an Observation": lambda d: {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    "unknown resource type": lambda d: {"resourceType": "NotAType", "id": "x"},
    "resourceType array": lambda d: {"resourceType": ["ResearchSubject"], "id": "x"},
    "resourceType object": lambda d: {"resourceType": {"name": "CarePlan"}, "id": "x"},
    "resourceType number": lambda d: {"resourceType": 42, "id": "x"},
    "invalid date": lambda d: "2026-13-45",
    "date in words": lambda d: "yesterday",
    "path-traversal reference": lambda d: "Patient/../../x",
    "metadata-service URL": lambda d: "http://169.254.169.254/x",
    "traversal Reference": lambda d: {"reference": "Medication/../../x"},
    "metadata-service Reference": lambda d: {"reference": "http://169.254.169.254/latest/meta-data"},
    "link object": lambda d: {"relation": "next", "url": "http://169.254.169.254/x"},
    "bad IPv6 URL": lambda d: "http://[::1/x",
}
STRUCTURAL = ("drop", "duplicate")
WHOLE_BODY = ("not UTF-8", "truncated", "text/plain", "application/xml", "no content type",
              "form-encoded", "UTF-16", "BOM")


@dataclass(frozen=True)
class Mutation:
    """One mutated request: what was changed (for the failure message) and what is sent."""

    document: str
    where: str
    how: str
    endpoint: str
    data: bytes
    content_type: str | None

    def describe(self) -> str:
        return f"{self.document} {self.where}: {self.how}"


def _set(doc: Any, path: Path_, how: str) -> Any:
    """A copy of `doc` with one mutation at `path`."""
    out = copy.deepcopy(doc)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "drop":
        del parent[last]
    elif how == "duplicate":
        if isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        else:
            parent[last] = [parent[last], copy.deepcopy(parent[last])]
    else:
        parent[last] = HOSTILE[how](len(path))
    return out


def at_path(document: Document, path: Path_, how: str) -> Mutation:
    body = _set(document.body, path, how)
    data = json.dumps(body).encode()
    return Mutation(document.name, _where(path), how, document.endpoint, data, "application/json")


def whole_body(document: Document, how: str, rng: random.Random) -> Mutation:
    data = json.dumps(document.body).encode()
    content_type: str | None = "application/json"
    if how == "not UTF-8":
        at = rng.randrange(len(data))
        data = data[:at] + b"\xff\xfe\xc3" + data[at:]
    elif how == "truncated":
        data = data[:rng.randrange(1, len(data))]
    elif how == "UTF-16":
        data = json.dumps(document.body).encode("utf-16")
    elif how == "BOM":
        data = b"\xef\xbb\xbf" + data
    elif how == "no content type":
        content_type = None
    elif how == "form-encoded":
        content_type = "application/x-www-form-urlencoded"
    else:
        content_type = how
    return Mutation(document.name, "(whole body)", how, document.endpoint, data, content_type)


def _where(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def every_mutation(docs: list[Document], rng: random.Random) -> Iterator[Mutation]:
    """Every (path, mutation) of every document, then every whole-body mutation (a full run)."""
    for document in docs:
        for path in paths(document.body):
            for how in (*HOSTILE, *STRUCTURAL):
                yield at_path(document, path, how)
        for how in WHOLE_BODY:
            yield whole_body(document, how, rng)


def sampled(docs: list[Document], rng: random.Random, per_path: int = 1,
            focus: Callable[[Path_], bool] = lambda p: False, focus_per_path: int = 0) -> Iterator[Mutation]:
    """Every path of every document with `per_path` mutations drawn at random (more on `focus` paths),
    and every whole-body mutation of every document."""
    catalogue = (*HOSTILE, *STRUCTURAL)
    for document in docs:
        for path in paths(document.body):
            count = focus_per_path if focus(path) else per_path
            for how in rng.sample(catalogue, min(count, len(catalogue))):
                yield at_path(document, path, how)
        for how in WHOLE_BODY:
            yield whole_body(document, how, rng)


TRACE_MARKS = ("Traceback", 'File "', '.py"')


def check(mutation: Mutation, status: int, text: str, seconds: float, limit: float) -> str | None:
    """Why an answer breaks the rules (a 5xx, a 4xx that is not a clean OperationOutcome, too slow)."""
    if status == HUNG:
        return f"no answer within {limit:.0f} s (a hang)"
    if status >= 500:
        return f"HTTP {status}"
    if seconds > limit:
        return f"answered after {seconds:.1f} s (limit {limit:.1f} s)"
    try:
        body = json.loads(text)
    except ValueError:
        return f"HTTP {status} with a body that is not JSON"
    if status >= 400:
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome" \
                or not isinstance(body.get("issue"), list) or not body["issue"]:
            return f"HTTP {status} without an OperationOutcome"
        if any(mark in value for value in _strings(body) for mark in TRACE_MARKS):
            return f"HTTP {status} with a stack trace in its body"
    elif not isinstance(body, dict):
        return f"HTTP {status} with a body that is not a JSON object"
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document (keys too), as the caller would read it (unescaped)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


HUNG = -1  # the status `post` gives a request that got no answer within its limit


def post(client: Any, mutation: Mutation, limit: float = 30.0) -> tuple[int, str, float]:
    """Send one mutated request with a Flask test client: status, body text, seconds taken.

    The request runs on a thread joined with a timeout, so a hang is a failure (status HUNG) rather than
    a suite that never ends; that thread is a daemon and is left to the end of the process.
    """
    result: list[tuple[int, str]] = []
    headers = {"Content-Type": mutation.content_type} if mutation.content_type else {}

    def send() -> None:
        response = client.post(mutation.endpoint, data=mutation.data, headers=headers)
        result.append((response.status_code, response.get_data(as_text=True)))

    started = time.monotonic()
    worker = threading.Thread(target=send, name="fuzz-request", daemon=True)
    worker.start()
    worker.join(timeout=limit)
    seconds = time.monotonic() - started
    if not result:
        return HUNG, "", seconds
    return result[0][0], result[0][1], seconds


# --- the fetch path: a FHIR server answering mutated Bundles ------------------------------------------

FHIR_BASE = "http://127.0.0.1:8123/fhir"
FHIR_TOKEN = "fuzz-access-token"


@dataclass(frozen=True)
class ServerCase:
    """A hook call with no prefetch, and what the FHIR server answers to its reads (one answer mutated)."""

    document: str
    where: str
    how: str
    endpoint: str
    body: dict[str, Any]
    answers: dict[str, Any]  # "Patient" (the read) or a search's resource type → the JSON answered

    def describe(self) -> str:
        return f"{self.document} (FHIR server answer) {self.where}: {self.how}"


def server_documents() -> list[tuple[Document, dict[str, Any]]]:
    """Each golden call without its prefetch, and its prefetch as the server's answers by record part
    (Bundles with a self link, so links are mutated too)."""
    found = []
    for file in sorted((FIXTURES / "golden").glob("*.request.json")):
        body = json.loads(file.read_text())
        answers = {}
        for part, value in body.pop("prefetch").items():
            linked = isinstance(value, dict) and value.get("resourceType") == "Bundle"
            answers[part] = dict(value, link=[{"relation": "self", "url": f"{FHIR_BASE}/{part}"}]) \
                if linked else value
        body["fhirServer"] = FHIR_BASE
        body["fhirAuthorization"] = {"access_token": FHIR_TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "cds"}
        found.append((Document(file.name, f"/cds-services/{SERVICES[body['hook']]}", body), answers))
    return found


def answer(answers: dict[str, Any], url: str) -> tuple[int, str]:
    """What the fake FHIR server answers to a GET of `url`: a part's (mutated) answer, else a 404."""
    relative = url.removeprefix(FHIR_BASE + "/")
    kind = relative.split("?", 1)[0].split("/", 1)[0]
    for part, (part_kind, _) in TEMPLATES.items():
        if part_kind == kind and part in answers and ("?" in relative) == (part != "patient"):
            return 200, json.dumps(answers[part])
    return 404, json.dumps({"resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "not-found"}]})


def server_cases(rng: random.Random, per_path: int) -> Iterator[ServerCase]:
    """Every path of every server answer with `per_path` mutations drawn at random."""
    catalogue = (*HOSTILE, *STRUCTURAL)
    for document, answers in server_documents():
        for path in paths(answers):
            if len(path) < 2:
                continue  # the answers' own keys are not part of what the server sends
            for how in rng.sample(catalogue, min(per_path, len(catalogue))):
                yield ServerCase(document.name, _where(path), how, document.endpoint, document.body,
                                 _set(answers, path, how))
