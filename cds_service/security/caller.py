"""Who called: the authenticated CDS client, as the audit and the logs know it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """The CDS client of a call: its JWT issuer and tenant (site), or anonymous when the service is open."""

    issuer: str | None = None
    tenant: str | None = None
    # The site the issuers file maps the tenant to (set by the JWT check); the runtime then records the
    # site it chose for the call, from this, the fhirServer or CDS_DEFAULT_SITE.
    site: str | None = None


ANONYMOUS = Caller()
