"""Which site a call belongs to, and so whose regimen adaptations its rules use (knowledge/sites.py).

In order: the caller's JWT `tenant` claim when the issuers file maps it to a site (`Caller.site`); else
the call's `fhirServer` under a base of CDS_SITE_FHIR_SERVERS (the longest base wins, compared as the
allowlist compares: scheme, host, port, then whole path segments); else CDS_DEFAULT_SITE; else none (the
published regimens). A tenant is the authenticated word of the caller and wins over a `fhirServer`,
which any caller can write. A site named here with no adaptation uses the published regimens.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.config import Config
from cds_service.security.allowlist import parse_entry, parse_origin
from cds_service.security.caller import Caller


@dataclass(frozen=True)
class SiteChoice:
    """The site of a call (None: the published regimens) and what chose it."""

    site: str | None
    how: str  # "tenant", "fhirServer", "default" or "none"


def site_of_server(fhir_server: str | None, config: Config) -> str | None:
    """The site whose configured FHIR base the `fhirServer` lies under (the most specific), or None."""
    target = parse_origin(fhir_server) if fhir_server else None
    if target is None:
        return None
    found = [(len(base.path), site) for site, url in config.site_fhir_servers
             if (base := parse_entry(url)) is not None and base.contains(target)]
    return max(found)[1] if found else None


def choose_site(caller: Caller, fhir_server: str | None, config: Config) -> SiteChoice:
    """The site of one call, in the order of the module docstring."""
    if caller.site:
        return SiteChoice(caller.site, "tenant")
    by_server = site_of_server(fhir_server, config)
    if by_server:
        return SiteChoice(by_server, "fhirServer")
    if config.default_site:
        return SiteChoice(config.default_site, "default")
    return SiteChoice(None, "none")


def named_sites(config: Config, issuers: object = None) -> set[str]:
    """Every site the configuration can choose (to warn at start about those without an adaptation)."""
    names = {site for site, _ in config.site_fhir_servers}
    if config.default_site:
        names.add(config.default_site)
    for issuer in (getattr(issuers, "issuers", None) or {}).values():
        names |= set(getattr(issuer, "sites", {}).values())
    return names
