"""JSON Web Key Sets: public signing keys by `kid`, pinned from a file or fetched (and cached) from a URL."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from cds_service.logs import log_event

log = logging.getLogger(__name__)

# The algorithms a CDS client may sign with (CDS Hooks: ES384/RS384 recommended; never none or HMAC),
# and the key each needs: its JWK type and, for EC, its curve.
ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "ES384": ("EC", "P-384"),
    "ES256": ("EC", "P-256"),
    "RS384": ("RSA", None),
    "RS256": ("RSA", None),
}
MIN_RSA_BITS = 2048
# A JWKS is a few kilobytes; a larger answer is not one (and is not read into memory).
MAX_JWKS_BYTES = 256 * 1024
# JWKS fetch time-outs (connect, read), in seconds: a fetch happens inside a client's call.
FETCH_TIMEOUT = (1.0, 2.0)
# An unknown `kid` triggers a refetch (keys rotate), but not more often than this: a stream of
# tokens with made-up kids must not make the service hammer the issuer.
REFRESH_MIN_SECONDS = 30.0
# Keys are re-read this often even when every kid is known, so a key the issuer withdrew stops working.
MAX_AGE_SECONDS = 3600.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class JwksError(Exception):
    """A key set that cannot be used: unreadable, not a JWKS, or without a usable key."""


class KeySet(Protocol):
    """Public keys by kid."""

    def key(self, kid: str, alg: str) -> PyJWK | None:
        """The key `kid` bound to `alg`, or None if there is no such key usable with `alg`."""
        ...

    def describe(self) -> str: ...


def check_key_url(url: str) -> str | None:
    """Why `url` cannot be a JWKS location (https only; http only on loopback), or None if it can."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a URL"
    if not host or parts.scheme not in ("http", "https"):
        return "is not an absolute http(s) URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return "must use https (http only for loopback addresses)"
    return None


def parse_jwks(document: Any) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWKS document by kid; keys that cannot sign for us are left out.

    Raises JwksError if the document is not a JWKS, holds a private key, or has no usable key.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('not a JWKS (a JSON object with a "keys" array)')
    keys: dict[str, dict[str, Any]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        if any(part in jwk for part in ("d", "p", "q", "k")):
            # A private or symmetric key has no business in a published key set: refuse it loudly.
            raise JwksError(f"key {str(jwk.get('kid'))[:80]!r} is a private or symmetric key")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
            continue
        if not any(_fits(jwk, alg) and _bind(jwk, alg) for alg in ALGORITHMS):
            continue
        keys[kid] = jwk
    if not keys:
        raise JwksError("no usable signing key (EC P-256/P-384 or RSA ≥ 2048 bits, with a kid)")
    return keys


def _fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether a key may verify `alg`: its type, curve and own `alg` (if it names one) agree."""
    kty, curve = ALGORITHMS[alg]
    if jwk.get("kty") != kty or jwk.get("alg", alg) != alg:
        return False
    return curve is None or jwk.get("crv") == curve


def _bind(jwk: Mapping[str, Any], alg: str) -> PyJWK | None:
    try:
        bound = PyJWK(dict(jwk), algorithm=alg)
    except (PyJWTError, ValueError, TypeError):
        return None
    if jwk.get("kty") == "RSA" and getattr(bound.key, "key_size", 0) < MIN_RSA_BITS:
        return None
    return bound


class _Keys:
    """Keys by kid, bound to an algorithm on first use (binding parses the key: do it once)."""

    def __init__(self, keys: Mapping[str, dict[str, Any]]) -> None:
        self._keys = dict(keys)
        self._bound: dict[tuple[str, str], PyJWK | None] = {}

    def get(self, kid: str, alg: str) -> PyJWK | None:
        jwk = self._keys.get(kid)
        if jwk is None or alg not in ALGORITHMS:
            return None
        if (kid, alg) not in self._bound:
            self._bound[(kid, alg)] = _bind(jwk, alg) if _fits(jwk, alg) else None
        return self._bound[(kid, alg)]

    def __contains__(self, kid: str) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class PinnedKeys:
    """A key set read once from a local file: for offline sites and tests; never touches the network."""

    def __init__(self, keys: Mapping[str, dict[str, Any]], source: str) -> None:
        self._keys = _Keys(keys)
        self._source = source

    def key(self, kid: str, alg: str) -> PyJWK | None:
        return self._keys.get(kid, alg)

    def describe(self) -> str:
        return f"{len(self._keys)} pinned key(s) from {self._source}"


def load_jwks_file(path: Any) -> PinnedKeys:
    """A pinned key set from a JWKS file; JwksError says what is wrong with it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JwksError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise JwksError(f"{path} is not valid JSON") from None
    return PinnedKeys(parse_jwks(document), str(path))


class RemoteKeys:
    """A key set fetched from a URL: once, then cached; refreshed on an unknown kid (rate-limited)
    and when older than MAX_AGE_SECONDS. A failed refresh keeps the keys already known."""

    def __init__(self, url: str, *, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 refresh_min_seconds: float = REFRESH_MIN_SECONDS,
                 max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.url = url
        self._session = session or requests.Session()
        self._clock = clock
        self._refresh_min = refresh_min_seconds
        self._max_age = max_age_seconds
        self._keys: _Keys | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()

    def key(self, kid: str, alg: str) -> PyJWK | None:
        keys, now = self._keys, self._clock()
        if keys is not None and kid in keys:
            # A known kid never waits for a fetch: if the keys are due for their periodic re-read,
            # one thread does it and the others go on with the keys in hand.
            if self._stale(now) and self._lock.acquire(blocking=False):
                try:
                    if self._stale(now) and self._may_try(now):
                        self._refresh(now)
                finally:
                    self._lock.release()
            return (self._keys or keys).get(kid, alg)
        with self._lock:
            # An unknown kid (or no keys yet): fetch, unless a fetch was tried too recently.
            now = self._clock()
            if (self._keys is None or kid not in self._keys) and self._may_try(now):
                self._refresh(now)
            if self._keys is None:
                raise JwksError(f"the key set at {self.url} could not be fetched")
            return self._keys.get(kid, alg)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._max_age

    def _may_try(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self._refresh_min

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        try:
            keys = parse_jwks(fetch_json(self._session, self.url))
        except JwksError as exc:
            log_event(log, "jwks fetch failed", logging.WARNING, url=self.url, reason=str(exc),
                      keptKeys=len(self._keys) if self._keys else 0)
            return
        self._keys = _Keys(keys)
        self._fetched_at = now
        log_event(log, "jwks fetched", url=self.url, keys=len(keys))

    def describe(self) -> str:
        return f"keys fetched from {self.url}"


def fetch_json(session: requests.Session, url: str) -> Any:
    """GET a JSON document with time-outs, without following redirects, and with a size bound."""
    try:
        response = session.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False, stream=True,
                               headers={"Accept": "application/json, application/jwk-set+json"})
    except requests.RequestException as exc:
        raise JwksError(f"request failed ({type(exc).__name__})") from None
    with response:
        if response.is_redirect or response.is_permanent_redirect:
            # Following it would let whoever controls the answer point us at any host.
            raise JwksError(f"answered a redirect ({response.status_code}), which is not followed")
        if response.status_code != 200:
            raise JwksError(f"answered HTTP {response.status_code}")
        body = b""
        try:
            for chunk in response.iter_content(chunk_size=65536):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError(f"answer larger than {MAX_JWKS_BYTES} bytes")
        except requests.RequestException as exc:
            raise JwksError(f"reading the answer failed ({type(exc).__name__})") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise JwksError("answer is not JSON") from None
