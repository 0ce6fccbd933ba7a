"""Service descriptions (hook, id, prefetch) declared once, and the discovery document built from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cds_service.errors import CdsError
from cds_service.hooks.response import prune


@dataclass(frozen=True)
class ServiceDefinition:
    """One CDS service: what discovery says of it, and the function that turns a call into cards."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]
    # Called with the services layer's ServiceCall; typed loosely so that this layer does not import it.
    evaluate: Callable[[Any], list[dict[str, Any]]] = field(repr=False)
    usage_requirements: str | None = None
    # Record parts that must be available for an answer; without them the call is answered 412.
    needs: tuple[str, ...] = ()
    # The drugs (ValueSet ids) whose orders and administrations the service's rules read: history of
    # other drugs is not validated (see knowledge/relevance.py).
    # None: every anti-myeloma drug (knowledge/reads.py MEDICATION_SET).
    drugs: tuple[str, ...] | None = None
    # Asked before the record is assembled, with the call's HookRequest, the record of its draft orders
    # (fhir/assemble.draft_record), the knowledge and the runtime's parse function (to read a small part
    # of the prefetch into that record): why no card can come whatever the rest of the record holds, or
    # None. A reason makes the call answer no card at once, without reading, validating or
    # evaluating the history: most calls an EHR sends are for patients outside the trial.
    no_card_because: Callable[[Any, Any, Any, Any], str | None] | None = field(default=None, repr=False)

    def discovery_entry(self, extension: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return prune({
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
            "usageRequirements": self.usage_requirements,
            "extension": dict(extension) if extension else None,
        })


class Registry:
    """The services this deployment offers, by id."""

    def __init__(self, services: Iterable[ServiceDefinition]) -> None:
        self._services: dict[str, ServiceDefinition] = {}
        for service in services:
            if service.id in self._services:
                raise ValueError(f"two services share the id {service.id}")
            self._services[service.id] = service

    def get(self, service_id: str) -> ServiceDefinition:
        """The service with this id, or a 404 CdsError."""
        try:
            return self._services[service_id]
        except KeyError:
            raise CdsError(404, f"No CDS service with id {service_id!r}; see GET /cds-services",
                           code="not-found") from None

    def __iter__(self):
        return iter(self._services.values())

    def with_prefetch(self, rewrite: Callable[[str, str], str]) -> Registry:
        """The same services with each prefetch template passed through `rewrite(part, template)`."""
        return Registry(replace(s, prefetch={part: rewrite(part, t) for part, t in s.prefetch.items()})
                        for s in self._services.values())

    def discovery(self, extension: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The body of GET /cds-services; `extension` is added to every service entry."""
        return {"services": [s.discovery_entry(extension) for s in self._services.values()]}
