"""Planted secrets: distinctive patient data and tokens put into requests, then looked for in every log line."""

from __future__ import annotations

import json
import logging
from typing import Any

from cds_service.logs import JsonFormatter
from tests.conftest import load_fixture

ACCESS_TOKEN = "planted-fhir-access-token-5c1e9b7d"
PATIENT_ID = "pat-planted-90210x"
FAMILY = "Quasimodoplanted"
GIVEN = "Zebediahplanted"
BIRTH_DATE = "1937-04-19"
IDENTIFIER = "MRN-PLANTED-558214"
SECRETS = (ACCESS_TOKEN, PATIENT_ID, FAMILY, GIVEN, BIRTH_DATE, IDENTIFIER)

FIXTURES = {"order-select": "requests/sandbox-order-select.json", "order-sign": "requests/spec-order-sign.json",
            "patient-view": "requests/spec-patient-view.json"}


def planted_request(hook: str) -> dict[str, Any]:
    """A hook call of the fixtures carrying the planted patient, identifier and access token, plus
    resources that do not validate (so the 'skipped' and 'unreadable' log paths run too)."""
    body = json.loads(json.dumps(load_fixture(FIXTURES[hook])).replace("pat-1", PATIENT_ID))
    body["prefetch"]["patient"].update(
        name=[{"family": FAMILY, "given": [GIVEN], "text": f"{GIVEN} {FAMILY}"}], birthDate=BIRTH_DATE,
        identifier=[{"system": "urn:oid:1.2.250.1.71.4.2.7", "value": IDENTIFIER}])
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    body["fhirAuthorization"] = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service", "patient": PATIENT_ID}
    broken_condition = {"resourceType": "Condition", "id": IDENTIFIER, "subject": {"reference": f"Patient/{PATIENT_ID}"},
                        "code": {"text": f"{FAMILY} {BIRTH_DATE}"}, "onsetDateTime": {"not": IDENTIFIER}}
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                                      "entry": [{"resource": broken_condition}]}
    if "draftOrders" in body["context"]:
        body["context"]["draftOrders"]["entry"].append(
            {"resource": {"resourceType": "MedicationRequest", "id": IDENTIFIER, "status": BIRTH_DATE,
                          "intent": {"x": FAMILY}, "subject": {"reference": f"Patient/{PATIENT_ID}"}}})
    return body


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record could write, before and after the formatter's scrubbing."""
    formatter = JsonFormatter()
    raw = record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str, ensure_ascii=False)
    if record.exc_info:
        raw += formatter.formatException(record.exc_info)
    return raw + "\n" + formatter.format(record)


def leaks(text: str, tokens: list[str]) -> list[str]:
    """The planted values (and token parts) found in `text`."""
    found = [s for s in SECRETS if s.lower() in text.lower()]
    for token in tokens:
        parts = [token, *(p for p in token.split(".") if len(p) > 16)]
        found += [f"token part {p[:12]}…" for p in parts if p in text]
    return found
