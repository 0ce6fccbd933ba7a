"""The audit interface the service calls: cards shown, feedback received."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from cds_service.hooks.feedback import FeedbackEntry
from cds_service.security.caller import Caller

if TYPE_CHECKING:
    from cds_service.fhir.record import PatientRecord
    from cds_service.hooks.request import HookRequest


class AuditSink(Protocol):
    """Where cards and feedback are recorded. Recording never fails a hook call."""

    def cards_shown(self, service_id: str, request: HookRequest, record: PatientRecord,
                    cards: Sequence[dict[str, Any]], caller: Caller) -> None: ...

    def feedback_received(self, service_id: str, entries: Sequence[FeedbackEntry],
                          caller: Caller) -> dict[str, int]: ...

    def describe(self) -> str | Mapping[str, Any]: ...


class NullAudit:
    """Records nothing: for tests of other parts, and for the time before the audit store exists."""

    def cards_shown(self, service_id: str, request: HookRequest, record: PatientRecord,
                    cards: Sequence[dict[str, Any]], caller: Caller) -> None:
        return None

    def feedback_received(self, service_id: str, entries: Sequence[FeedbackEntry],
                          caller: Caller) -> dict[str, int]:
        return {"received": len(entries)}

    def describe(self) -> str:
        return "none"
