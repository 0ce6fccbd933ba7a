"""The service's one error type, and how it becomes a FHIR OperationOutcome."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class CdsError(Exception):
    """A failure the caller should hear about, with the HTTP status and FHIR issue code to send.

    `message` goes into the response body, so it never carries patient data, tokens or internals;
    `expression` names the request field at fault (e.g. ``context.patientId``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "invalid",
        expression: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.expression = tuple(expression)
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        """This error as an OperationOutcome resource."""
        return operation_outcome(self.message, code=self.code, expression=self.expression)


class ConfigError(Exception):
    """A setting or a knowledge artifact that stops the service from starting; the message says which."""


def bad_request(message: str, field: str | None = None) -> CdsError:
    """400 for a request that breaks the CDS Hooks specification."""
    return CdsError(400, message, code="required" if "missing" in message else "invalid",
                    expression=(field,) if field else ())


def operation_outcome(
    message: str,
    *,
    code: str = "invalid",
    severity: str = "error",
    expression: Sequence[str] = (),
    extra_issues: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A minimal, valid R4 OperationOutcome with one issue (plus any extra issues given)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = list(expression)
    return {"resourceType": "OperationOutcome", "issue": [issue, *extra_issues]}
