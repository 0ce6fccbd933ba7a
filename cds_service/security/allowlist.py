"""Which FHIR servers the service may call: exact scheme, host and port, then a prefix of whole path segments.

An allowlist entry is a base URL; its port is the scheme's default unless written, and `:*` allows any
port (the embedded default, `http://127.0.0.1:*` and the other loopback names, allows loopback only,
on any port: EHR sandboxes and test servers run on arbitrary ports).

A `fhirServer` is an address the service would call with a bearer token, so it is an SSRF vector: a
request naming any other server is refused (403) before a connection is made. The check runs on every
call that carries `fhirServer`, even when the prefetch is complete and nothing would be read: a client
that names a server the operator did not allow is misconfigured or hostile, and hearing so at once is
better than failing only on the day a prefetch key is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from cds_service.errors import CdsError
from cds_service.logs import log_event

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """A URL reduced to what the allowlist compares: scheme, host, port and decoded path segments."""

    scheme: str
    host: str
    port: int | None  # None: any port (an allowlist entry written with `:*`)
    path: tuple[str, ...]

    def contains(self, other: Origin) -> bool:
        """Whether `other` is this base or below it (whole path segments, not string prefixes)."""
        return ((self.scheme, self.host) == (other.scheme, other.host)
                and self.port in (None, other.port)
                and other.path[: len(self.path)] == self.path)


def parse_entry(base: str) -> Origin | None:
    """An allowlist entry: a base URL as `parse_origin`, where the port may be `*`."""
    head, sep, rest = base.strip().partition("://")
    authority, slash, path = rest.partition("/")
    if sep and authority.endswith(":*"):
        origin = parse_origin(f"{head}://{authority[:-2]}{slash}{path}")
        return Origin(origin.scheme, origin.host, None, origin.path) if origin else None
    return parse_origin(base)


def parse_origin(url: str) -> Origin | None:
    """The comparable form of an http(s) URL, or None for anything that cannot be trusted to mean one place.

    Refused: other schemes, user information (`http://127.0.0.1@evil.example` is evil.example), a port
    that does not parse, and dot or encoded-slash path segments (`/fhir/../admin`) that a server could
    resolve outside the allowed prefix.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    segments = tuple(unquote(s) for s in parts.path.split("/") if s)
    if any(s in (".", "..") or "/" in s or "\\" in s for s in segments):
        return None
    return Origin(scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], segments)


def is_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether `url` lies under one of the allowed base URLs."""
    target = parse_origin(url)
    if target is None:
        return False
    for base in allowed:
        origin = parse_entry(base)
        if origin is not None and origin.contains(target):
            return True
    return False


def is_within(url: str, base: str) -> bool:
    """Whether `url` lies under `base` (for next-page links and redirects: they must stay on the server)."""
    target, origin = parse_origin(url), parse_origin(base)
    return target is not None and origin is not None and origin.contains(target)


def relative_to(url: str, base: str) -> str | None:
    """The part of `url` below `base` (`Observation?page=2`), or None if `url` is not under `base`.

    Compares as `is_within` does, so `https://ehr:443/fhir/x` is `x` under `https://ehr/fhir`.
    """
    target, origin = parse_origin(url), parse_origin(base)
    if target is None or origin is None or not origin.contains(target):
        return None
    query = urlsplit(url.strip()).query
    rest = "/".join(quote(segment, safe="") for segment in target.path[len(origin.path):])
    return rest + (f"?{query}" if query else "")


def check_fhir_server(url: str | None, allowed: Iterable[str]) -> None:
    """403 for a `fhirServer` outside CDS_ALLOWED_FHIR_SERVERS; nothing for an allowed one or none."""
    if url is None or is_allowed(url, allowed):
        return
    origin = parse_origin(url)
    # The host is the operator's clue (which entry to add); it is not patient data.
    log_event(log, "fhirServer refused", logging.WARNING, host=origin.host if origin else "unparseable")
    raise CdsError(403, "The fhirServer of this request is not one this service may call "
                   "(CDS_ALLOWED_FHIR_SERVERS); no request was made to it",
                   code="forbidden", expression=("fhirServer",))
