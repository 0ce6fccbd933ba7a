"""CDS Hooks 2.0.1 feedback parsing: what the clinician did with a card."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cds_service.errors import bad_request

OUTCOMES = ("accepted", "overridden")


class ReasonCoding(Protocol):
    """An override reason the service's cards offer (knowledge.model.Coding)."""

    system: str
    code: str
    display: str


@dataclass(frozen=True)
class ReasonCatalogue:
    """The override reasons the service's cards offer, to name a reason a client sent as a bare code.

    The CDS Hooks Sandbox, for one, sends back `{system, code}` without the display.
    """

    displays: Mapping[tuple[str, str], str]

    @classmethod
    def of(cls, reasons: Iterable[ReasonCoding]) -> ReasonCatalogue:
        return cls({(r.system, r.code): r.display for r in reasons})

    def find(self, system: str | None, code: str | None) -> tuple[str, str] | None:
        """(system, display) of a reason: by system and code, or by a code alone when only one has it."""
        if not code:
            return None
        if system:
            display = self.displays.get((system, code))
            return (system, display) if display else None
        found = [(s, d) for (s, c), d in self.displays.items() if c == code]
        return found[0] if len(found) == 1 else None


NO_REASONS = ReasonCatalogue({})


@dataclass(frozen=True)
class FeedbackEntry:
    """One feedback item: the card's uuid, the outcome, and what came with it."""

    card: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    user_comment: str | None = None


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 instant; a trailing Z and missing seconds' fraction are accepted."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


def parse_feedback(body: Any, reasons: ReasonCatalogue = NO_REASONS) -> list[FeedbackEntry]:
    """Check a feedback body: `{"feedback": [...]}`, each with card, outcome and outcomeTimestamp.

    An override reason the client sent without its display (or without its system) is completed from
    `reasons`, the service's own list; a display the client sent is kept, it is what the clinician saw.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    items = body.get("feedback")
    if items is None:
        raise bad_request("Required field feedback is missing", "feedback")
    if not isinstance(items, list):
        raise bad_request("Field feedback must be a JSON array", "feedback")
    return [_entry(item, f"feedback[{i}]", reasons) for i, item in enumerate(items)]


def _entry(item: Any, where: str, reasons: ReasonCatalogue) -> FeedbackEntry:
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be a JSON object", where)
    card = item.get("card")
    if not isinstance(card, str) or not card.strip():
        raise bad_request(f"Required field {where}.card is missing", f"{where}.card")
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        raise bad_request(f"{where}.outcome must be accepted or overridden", f"{where}.outcome")
    stamp = item.get("outcomeTimestamp")
    if not isinstance(stamp, str):
        raise bad_request(f"Required field {where}.outcomeTimestamp is missing", f"{where}.outcomeTimestamp")
    try:
        timestamp = parse_timestamp(stamp)
    except ValueError:
        raise bad_request(f"{where}.outcomeTimestamp is not an RFC 3339 date-time with a zone",
                          f"{where}.outcomeTimestamp") from None
    accepted = item.get("acceptedSuggestions") or []
    if not isinstance(accepted, list) or not all(isinstance(a, dict) and isinstance(a.get("id"), str)
                                                 for a in accepted):
        raise bad_request(f"{where}.acceptedSuggestions must be an array of {{id}}",
                          f"{where}.acceptedSuggestions")
    override = item.get("overrideReason") or {}
    if not isinstance(override, dict):
        raise bad_request(f"{where}.overrideReason must be a JSON object", f"{where}.overrideReason")
    reason = override.get("reason") or {}
    if not isinstance(reason, dict):
        raise bad_request(f"{where}.overrideReason.reason must be a Coding", f"{where}.overrideReason.reason")
    comment = override.get("userComment")
    system, code, display = _str(reason.get("system")), _str(reason.get("code")), _str(reason.get("display"))
    known = reasons.find(system, code)
    if known is not None:
        system, display = known[0], display or known[1]
    return FeedbackEntry(
        card=card.strip(),
        outcome=outcome,
        outcome_timestamp=timestamp,
        accepted_suggestions=tuple(a["id"] for a in accepted),
        override_system=system,
        override_code=code,
        override_display=display,
        user_comment=_str(comment),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
