"""The service's parts, wired once per process, and the steps of a call: parse, load, evaluate, answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cds_service import __version__, events
from cds_service.audit.sink import AuditSink, NullAudit
from cds_service.cards.common import served_links
from cds_service.config import Config
from cds_service.errors import CdsError, ConfigError
from cds_service.fhir.assemble import MODEL_TYPES, PartCache, assemble_record, draft_record
from cds_service.fhir.fetch import FhirGateway
from cds_service.fhir.parse import ParseCache, warm_models
from cds_service.hooks.body import SentParts
from cds_service.hooks.feedback import ReasonCatalogue, parse_feedback
from cds_service.hooks.registry import Registry
from cds_service.hooks.request import count_resources, parse_hook_request
from cds_service.hooks.response import cds_response
from cds_service.knowledge.model import Knowledge, shared_knowledge
from cds_service.knowledge.relevance import narrowed, relevance
from cds_service.logs import log_event
from cds_service.rules.memo import ClockMemo
from cds_service.security.caller import ANONYMOUS, Caller
from cds_service.security.pseudonym import pseudonymizer
from cds_service.services import default_registry
from cds_service.services.base import ServiceCall
from cds_service.services.sites import choose_site, named_sites

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Configuration, knowledge, services and stores of one process; tests build one with fakes."""

    config: Config
    registry: Registry = field(default_factory=default_registry)
    knowledge: Knowledge | None = None
    audit: AuditSink = field(default_factory=NullAudit)
    clock: Callable[[], datetime] = _utc_now
    # Checks the Authorization header of a call to a URL and says who called; raises CdsError(401).
    # None: the service is open (every caller is ANONYMOUS).
    authenticator: Callable[[str | None, str], Caller] | None = None
    # Patient id → salted pseudonymous key for the request log (never the id itself).
    pseudonymize: Callable[[str], str] = field(default_factory=pseudonymizer)
    # Reads from the EHRs' FHIR servers: allowlist, cache, pooled client and threads of this process.
    fhir: FhirGateway | None = None

    def __post_init__(self) -> None:
        try:
            self.zone = ZoneInfo(self.config.timezone)
        except (KeyError, ValueError):
            raise ConfigError(f"CDS_TIMEZONE={self.config.timezone!r} is not a known time zone") from None
        if self.knowledge is None:
            self.knowledge = shared_knowledge(self.config.plan_definitions, self.config.local_valuesets,
                                              self.config.site_artifacts, self.config.canonical_base)
        if self.fhir is None:
            self.fhir = FhirGateway(self.config)
        # Searches restricted to what the rules read (discovery shows the same templates).
        self.registry = self.registry.with_prefetch(narrowed(self.knowledge))
        # Per service: the raw resources worth validating; validated content is remembered across calls.
        self.keep = {service.id: relevance(self.knowledge, *([service.drugs] if service.drugs else []))
                     for service in self.registry}
        self.parse_cache = ParseCache(self.config.parse_cache_size)
        # Prefetch values by their text as sent: a history sent again is not decoded again (hooks/body.py).
        self.sent_parts = SentParts()
        # Prefetched parts as selected, by their exact content: a patient's history is selected once.
        self.part_cache = PartCache()
        # Cycle clocks by the identity of the (cached) models they are read from: a patient's calls share one.
        self.clocks = ClockMemo()
        # The override reasons the cards offer: a reason sent back as a bare code is named from it.
        self.reasons = ReasonCatalogue.of(self.knowledge.override_reasons)
        warm_models(MODEL_TYPES)

    def today(self) -> date:
        """Today in the patients' calendar (CDS_TIMEZONE), from the injectable clock."""
        return self.clock().astimezone(self.zone).date()

    def authenticate(self, authorization: str | None, url: str) -> Caller:
        """The caller of a request to `url`, or a 401 CdsError."""
        if self.authenticator is None:
            return ANONYMOUS
        return self.authenticator(authorization, url)

    def discovery(self) -> dict[str, Any]:
        """The discovery document; each service names the published artifacts its rules come from."""
        if self.knowledge is None:
            return self.registry.discovery()
        return self.registry.discovery(extension={"dexfree": {
            "study": self.knowledge.study.canonical,
            "protocol": self.knowledge.study.protocol_url,
            "rule": self.knowledge.rule,
        }})

    def call(self, service_id: str, body: Any, log_fields: dict[str, Any],
             caller: Caller = ANONYMOUS, *,
             base_url: str | Callable[[], str] | None = None,
             texts: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        """Answer one hook call: the CDS response body, or a CdsError.

        `base_url` is the service's public base URL for this call (the routes pass CDS_BASE_URL or the URL
        called, as a function called only when the record is evaluated); the cards' links to published
        artifacts are made to point under it. `texts`: each prefetch value's text as sent, when the body
        was read with `read_hook_body` (the routes do).
        """
        service = self.registry.get(service_id)
        request = parse_hook_request(body, service.hook, service.id, texts)
        log_fields.update(hookInstance=request.hook_instance[:100], hook=request.hook,
                          patientKey=self.pseudonymize(request.patient_id))
        if count_resources(request) > self.config.max_resources:
            raise CdsError(413, f"The request carries more than {self.config.max_resources} FHIR resources",
                           code="too-costly")
        started = time.perf_counter()
        # The site's view of the knowledge (its regimen adaptations); the rules never read the config.
        chosen = choose_site(caller, request.fhir_server, self.config)
        knowledge = self.knowledge.for_site(chosen.site)
        log_fields.update(site=chosen.site, siteFrom=chosen.how)
        self.fhir.check_server(request.fhir_server)
        record = draft_record(request, self.parse_cache.parse)
        why_none = (service.no_card_because(request, record, knowledge, self.parse_cache.parse)
                    if service.no_card_because else None)
        if why_none is not None:
            log_fields["noCardBecause"] = why_none
            response = cds_response([])
        else:
            record = assemble_record(request, service.needs, wants=service.prefetch, fhir=self.fhir,
                                     keep=self.keep.get(service.id), parse=self.parse_cache.parse,
                                     record=record, parts=self.part_cache)
            log_fields["loadMs"] = round((time.perf_counter() - started) * 1000, 1)
            log_fields.update(fhirRequests=record.fhir_requests, fhirCacheHits=record.fhir_cache_hits)
            started = time.perf_counter()
            call = ServiceCall(request=request, record=record, knowledge=knowledge, today=self.today(),
                               config=self.config,
                               base_url=self.public_base(base_url() if callable(base_url) else base_url),
                               clock_of=self.clocks)
            response = cds_response(served_links(service.evaluate(call), knowledge, call.base_url))
        log_fields["evaluateMs"] = round((time.perf_counter() - started) * 1000, 1)
        log_fields["cards"] = len(response["cards"])
        self.audit.cards_shown(service.id, request, record, response["cards"],
                               replace(caller, site=chosen.site))
        events.emit("cards", service=service.id, cards=response["cards"])
        return response

    def public_base(self, base_url: str | None = None) -> str:
        """The base URL links are built on: the one given, else CDS_BASE_URL, else the listening address."""
        return (base_url or self.config.base_url or f"http://{self.config.host}:{self.config.port}").rstrip("/")

    def feedback(self, service_id: str, body: Any, caller: Caller = ANONYMOUS) -> dict[str, Any]:
        """Store the feedback of one POST; answers how many entries were taken."""
        service = self.registry.get(service_id)
        entries = parse_feedback(body, self.reasons)
        result = self.audit.feedback_received(service.id, entries, caller)
        events.emit("feedback", service=service.id, outcomes=[e.outcome for e in entries], result=result)
        return result

    def health(self) -> dict[str, Any]:
        """The body of GET /healthz: liveness, version, and which optional features are configured."""
        open_service = self.authenticator is None
        return {
            "status": "ok",
            "version": __version__,
            "services": [s.id for s in self.registry],
            "features": {
                "authentication": "disabled: any caller is accepted" if open_service
                else getattr(self.authenticator, "describe", lambda: "jwt")(),
                "fhirServersAllowed": list(self.config.allowed_fhir_servers),
                "audit": self.audit.describe(),
                "knowledge": getattr(self.knowledge, "describe", lambda: "not loaded")(),
            },
        }

    def log_start(self) -> None:
        """Say, once, which configuration is in force, and loudly if the service is open."""
        log_event(log, "configuration", **self.config.summary())
        adapted = set(self.knowledge.sites.names()) if self.knowledge else set()
        for site in sorted(named_sites(self.config, self.authenticator) - adapted):
            log_event(log, "site without adaptations: its calls use the published regimens",
                      logging.WARNING, site=site)
        if self.authenticator is None:
            log_event(log, "AUTHENTICATION DISABLED: CDS_JWT_ISSUERS is unset, any caller is accepted. "
                      "Configure it before connecting an EHR.", logging.WARNING)
