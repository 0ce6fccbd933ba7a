"""What a CDS service is given for one call: the request, the patient's record, the trial knowledge, today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cds_service.config import Config
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.request import HookRequest
from cds_service.rules.cycles import cycle_clock
from cds_service.rules.dexamethasone import ClockOf

if TYPE_CHECKING:
    from cds_service.knowledge.model import Knowledge


@dataclass(frozen=True)
class ServiceCall:
    """Everything a service's `evaluate` may use; it does no I/O of its own."""

    request: HookRequest
    record: PatientRecord
    knowledge: Knowledge
    today: date
    config: Config
    # The service's public base URL for this call (CDS_BASE_URL, else the URL called), without a trailing
    # slash: where its published artifacts and regimen pages are served (cds_service/published/).
    base_url: str = ""
    # How the rules get a cycle clock: the runtime passes its memo (rules/memo.py), shared by the calls.
    clock_of: ClockOf = cycle_clock

    @property
    def zone(self) -> ZoneInfo:
        """The patients' calendar (CDS_TIMEZONE), in which cycle days are counted."""
        return ZoneInfo(self.config.timezone)
