"""The trusted CDS clients (CDS_JWT_ISSUERS): each issuer's keys, allowed `jku` values and tenants."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.security.jwks import JwksError, KeySet, RemoteKeys, check_key_url, load_jwks_file

_ISSUER_FIELDS = {"iss", "jwks_url", "jwks_file", "jku", "tenants", "sites", "description"}
_FILE_FIELDS = {"issuers", "description"}


@dataclass(frozen=True)
class Issuer:
    """One trusted CDS client.

    `keys` verifies tokens without a `jku` header, or with a `jku` that names the issuer's own key
    set; `jku_keys` holds a key set per other allowed `jku` URL (fetched only because an operator
    listed it). A pinned issuer (`jwks_file`) never fetches anything: its `jku` values are only
    checked against the allowlist. `tenants` empty: any tenant (or none) is accepted. `sites` maps a
    `tenant` claim to the site whose regimen adaptations the call uses (knowledge/sites.py).
    """

    iss: str
    keys: KeySet
    allowed_jku: frozenset[str]
    jku_keys: Mapping[str, KeySet]
    tenants: frozenset[str]
    sites: Mapping[str, str] = field(default_factory=dict)

    def site_of(self, tenant: str | None) -> str | None:
        """The site a tenant claim is mapped to, or None."""
        return self.sites.get(tenant) if tenant else None

    def keys_for(self, jku: str | None) -> KeySet:
        """The key set that verifies a token with this `jku` header (already checked as allowed)."""
        if jku is None:
            return self.keys
        return self.jku_keys.get(jku, self.keys)

    def describe(self) -> dict[str, Any]:
        return {"iss": self.iss, "keys": self.keys.describe(), "jku": sorted(self.allowed_jku),
                "tenants": sorted(self.tenants) or "any", "sites": dict(sorted(self.sites.items()))}


def load_issuers(path: Path, remote: Callable[[str], KeySet] = RemoteKeys) -> dict[str, Issuer]:
    """The issuers of a CDS_JWT_ISSUERS file by `iss`; a ConfigError names whatever is wrong in it.

    A `jwks_file` is read now (relative to the issuers file): a missing or broken one stops the start.
    A `jwks_url` is fetched on first use, so a key server that is down does not stop the service.
    """
    where = f"CDS_JWT_ISSUERS file {path}"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("issuers"), list):
        raise ConfigError(f'{where} must be a JSON object with an "issuers" array')
    _no_unknown_fields(document, _FILE_FIELDS, where)
    if not document["issuers"]:
        raise ConfigError(f"{where} lists no issuer: no caller could ever be accepted")
    issuers: dict[str, Issuer] = {}
    remotes: dict[str, KeySet] = {}  # one cache per URL, shared by issuers that name the same URL

    def remote_keys(url: str) -> KeySet:
        if url not in remotes:
            remotes[url] = remote(url)
        return remotes[url]

    for index, entry in enumerate(document["issuers"]):
        issuer = _issuer(entry, f"{where}: issuers[{index}]", path.parent, remote_keys)
        if issuer.iss in issuers:
            raise ConfigError(f"{where}: issuer {issuer.iss!r} is listed twice")
        issuers[issuer.iss] = issuer
    return issuers


def _issuer(entry: Any, where: str, base: Path, remote_keys: Callable[[str], KeySet]) -> Issuer:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a JSON object")
    _no_unknown_fields(entry, _ISSUER_FIELDS, where)
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise ConfigError(f'{where} needs "iss", the issuer as it appears in the tokens')
    where = f"{where} ({iss})"
    has_url, has_file = "jwks_url" in entry, "jwks_file" in entry
    if has_url == has_file:
        raise ConfigError(f'{where} needs exactly one of "jwks_url" and "jwks_file"')
    jku = _strings(entry, "jku", where)
    for url in jku:
        problem = check_key_url(url)
        if problem:
            raise ConfigError(f"{where}: jku {url!r} {problem}")
    if has_file:
        name = entry["jwks_file"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f'{where}: "jwks_file" must be a file name')
        try:
            keys = load_jwks_file((base / name).expanduser())
        except JwksError as exc:
            raise ConfigError(f"{where}: jwks_file {exc}") from None
        jku_keys: dict[str, KeySet] = {}
    else:
        url = entry["jwks_url"]
        problem = check_key_url(url) if isinstance(url, str) else "is not a URL"
        if problem:
            raise ConfigError(f"{where}: jwks_url {url!r} {problem}")
        keys = remote_keys(url)
        # The issuer's own key set URL is an allowed jku by nature.
        jku = (*jku, url)
        jku_keys = {u: remote_keys(u) for u in jku}
    tenants = frozenset(_strings(entry, "tenants", where))
    return Issuer(iss=iss, keys=keys, allowed_jku=frozenset(jku), jku_keys=jku_keys, tenants=tenants,
                  sites=_sites(entry, tenants, where))


def _sites(entry: Mapping[str, Any], tenants: frozenset[str], where: str) -> dict[str, str]:
    """`"sites": {"tenant": "site-id"}`; a tenant the issuer never accepts is a mistake, refused."""
    value = entry.get("sites", {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) and v.strip()
                                              for k, v in value.items()):
        raise ConfigError(f'{where}: "sites" must be an object mapping tenant claims to site ids (strings)')
    unreachable = sorted(set(value) - tenants) if tenants else []
    if unreachable:
        raise ConfigError(f'{where}: "sites" names tenant(s) {", ".join(unreachable)} not in "tenants"')
    return {tenant: site.strip() for tenant, site in value.items()}


def _strings(entry: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where}: "{name}" must be an array of non-empty strings')
    return tuple(value)


def _no_unknown_fields(entry: Mapping[str, Any], known: set[str], where: str) -> None:
    # A misspelt field ("tenant", "jwks_uri") would silently drop a restriction: refuse it.
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
