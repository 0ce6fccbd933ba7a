"""The CDS services: a patient record in, rules applied, cards out."""

from __future__ import annotations

from cds_service.hooks.registry import Registry, ServiceDefinition
from cds_service.services.order_hooks import ORDER_SELECT, ORDER_SIGN
from cds_service.services.patient_view import PATIENT_VIEW

SERVICES: tuple[ServiceDefinition, ...] = (ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW)


def default_registry() -> Registry:
    """All services this project offers."""
    return Registry(SERVICES)
