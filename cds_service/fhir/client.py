"""HTTP reads from an EHR's FHIR server: bearer token, timeouts, bounded retries, paging, a call deadline.

Retries are a small loop here rather than urllib3's `Retry` on the adapter: `Retry` sleeps inside
urllib3 for as long as a `Retry-After` header asks and backs off without knowing the call's deadline,
so one busy server could hold a hook call far past CDS_CALL_DEADLINE_MS. The loop below waits only
when the wait fits in what is left of the deadline, and gives up at once otherwise.

Redirects are never followed automatically: a redirect is followed by hand, with the token, only when
its target is still under the request's `fhirServer` (so under an allowed base). Next-page links obey
the same rule. Requests go straight to the session's pooled adapter: no cookies are kept or sent and
the environment's proxies and .netrc are not consulted, so where a request goes, and with which
credentials, is decided by the allowlist and the request's token only.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from cds_service.fhir import raw as safe
from cds_service.hooks.request import MAX_JSON_DEPTH, json_depth
from cds_service.security.allowlist import is_within

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 3
# Backoff before retry n (0-based) when the server gives no Retry-After: 0.1 s, 0.2 s, 0.4 s … ≤ 2 s.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0
# One answer (one page of a search) larger than this is refused rather than held in memory.
_MAX_ANSWER_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class FhirReadError(Exception):
    """A read that could not be done. `reason` is shown to the caller: no URL, token or patient data.

    `kind` sorts the failures: unreachable, refused (401/403), not-found, busy, deadline, redirect,
    invalid (not FHIR JSON), incomplete (paging cap), server (another HTTP status).
    """

    def __init__(self, reason: str, kind: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status


@dataclass
class Deadline:
    """The time left to one hook call for all its FHIR reads; clock and sleep are injectable for tests."""

    expires_at: float
    clock: Callable[[], float] = time.monotonic
    sleeper: Callable[[float], None] = time.sleep

    @classmethod
    def after(cls, milliseconds: int, clock: Callable[[], float] = time.monotonic,
              sleeper: Callable[[float], None] = time.sleep) -> Deadline:
        return cls(clock() + milliseconds / 1000, clock, sleeper)

    def remaining(self) -> float:
        return self.expires_at - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` if that leaves time before the deadline; False (and no sleep) otherwise."""
        if seconds >= self.remaining():
            return False
        if seconds > 0:
            self.sleeper(seconds)
        return True


@dataclass(frozen=True)
class Target:
    """Where and as whom one call reads: the fhirServer base and the bearer token (never shown)."""

    base: str
    access_token: str | None = field(default=None, repr=False)


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


def new_session(pool_size: int) -> requests.Session:
    """One pooled session per process (connections and TLS sessions are reused across calls).

    The client sends through its adapter; the settings below keep the Session itself as safe should
    anything use it directly.
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class FhirClient:
    """GETs of FHIR JSON with the call's token and deadline; thread-safe (no per-call state)."""

    def __init__(self, session: requests.Session, *, connect_timeout: float, read_timeout: float,
                 retries: int, max_pages: int) -> None:
        self.session = session
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.max_pages = max_pages

    def read(self, target: Target, relative: str, deadline: Deadline,
             counter: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """One resource (`Patient/123`): the parsed JSON, or FhirReadError."""
        return self.get_json(target, _join(target.base, relative), deadline, counter)

    def search(self, target: Target, relative: str, deadline: Deadline,
               counter: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
        """Every resource of a search, all pages (Bundle.link `next`, at most CDS_FHIR_MAX_PAGES)."""
        first = self.get_json(target, _join(target.base, relative), deadline, counter)
        return self.follow_pages(target, first, deadline, counter)

    def follow_pages(self, target: Target, first: dict[str, Any], deadline: Deadline,
                     counter: Callable[[], None] = lambda: None, followed: int = 0) -> list[dict[str, Any]]:
        """The resources of a searchset Bundle and of the pages its `next` links lead to.

        `followed`: next links already followed to get `first` (1 when it is a prefetch's page 2).
        """
        bundle, resources = first, []
        while True:
            if bundle.get("resourceType") != "Bundle":
                raise FhirReadError("the FHIR server answered a search with something other than a Bundle",
                                    "invalid")
            resources.extend(_entries(bundle, followed))
            problem = safe.link_problem(bundle)
            if problem is not None:
                raise FhirReadError(f"the FHIR server's search answer is unreadable (page {followed + 1}: "
                                    f"{problem}); whether it has more pages cannot be told", "invalid")
            link = safe.next_link(bundle)
            if link is None:
                return resources
            if followed >= self.max_pages:
                raise FhirReadError(f"the search has more than {self.max_pages} further pages "
                                    "(CDS_FHIR_MAX_PAGES); a decision is not taken on part of the data",
                                    "incomplete")
            url = urljoin(target.base + "/", link)
            if not is_within(url, target.base):
                raise FhirReadError("a next-page link points outside fhirServer; it was not followed",
                                    "redirect")
            followed += 1
            bundle = self.get_json(target, url, deadline, counter)

    def get_json(self, target: Target, url: str, deadline: Deadline,
                 counter: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """GET `url` (under target.base) with retries and manual redirects; the JSON object it answers."""
        attempt = redirects = 0
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise spent()
            timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
            counter()
            try:
                # Straight to the pooled adapter: exactly this request, with nothing a Session would
                # add (cookies, environment proxies or .netrc credentials, automatic redirects), and
                # half the CPU per request, which matters as a call's reads share one interpreter.
                prepared = requests.Request("GET", url, headers=_headers(target)).prepare()
                response = self.session.get_adapter(url).send(prepared, stream=True, timeout=timeout,
                                                              verify=True)
            except requests.ReadTimeout:
                raise _timeout(deadline, self.read_timeout) from None
            except requests.ConnectionError:
                # Refused, reset or dropped, or no connection within the connect timeout.
                if attempt < self.retries and deadline.wait(_backoff(attempt)):
                    attempt += 1
                    continue
                if deadline.expired():
                    raise spent() from None
                raise FhirReadError("the FHIR server could not be reached", "unreachable") from None
            except requests.exceptions.InvalidHeader:
                raise FhirReadError("the access token cannot be sent in an HTTP header", "refused") from None
            except requests.RequestException:
                raise FhirReadError("the FHIR server could not be read", "unreachable") from None
            with response:
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    url = self._redirect(target, url, response, redirects)
                    redirects += 1
                    continue
                if status in RETRY_STATUSES:
                    wait = retry_after(response.headers.get("Retry-After"))
                    if attempt < self.retries:
                        if deadline.wait(_backoff(attempt) if wait is None else wait):
                            attempt += 1
                            continue
                        raise FhirReadError(f"the FHIR server was busy ({status}) and the wait it needs does "
                                            "not fit in the call's time budget", "deadline", status)
                    raise FhirReadError(f"the FHIR server answered {status} after {attempt + 1} tries",
                                        "busy", status)
                if status in (401, 403):
                    raise FhirReadError(f"the FHIR server refused the access token ({status})", "refused",
                                        status)
                if status in (404, 410):
                    raise FhirReadError(f"not found on the FHIR server ({status})", "not-found", status)
                if not 200 <= status < 300:
                    raise FhirReadError(f"the FHIR server answered {status}", "server", status)
                return _json_body(response, deadline, self.read_timeout)

    def _redirect(self, target: Target, url: str, response: requests.Response, redirects: int) -> str:
        location = response.headers.get("Location")
        if not location:
            raise FhirReadError("the FHIR server redirected without a Location", "redirect",
                                response.status_code)
        if redirects >= _MAX_REDIRECTS:
            raise FhirReadError("the FHIR server redirected too many times", "redirect",
                                response.status_code)
        new_url = urljoin(url, location)
        if not is_within(new_url, target.base):
            raise FhirReadError("the FHIR server redirected outside fhirServer; it was not followed",
                                "redirect", response.status_code)
        return new_url


def next_link(bundle: dict[str, Any]) -> str | None:
    """The `next` link of a Bundle, if any (None too when its `link` is unreadable: see raw.link_problem)."""
    return safe.next_link(bundle)


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def spent() -> FhirReadError:
    """The error of a read that ran out of the call's time budget."""
    return FhirReadError("the call's time budget (CDS_CALL_DEADLINE_MS) was spent", "deadline")


def _backoff(attempt: int) -> float:
    return min(_BACKOFF_MAX, _BACKOFF_FIRST * math.pow(2, attempt))


def _timeout(deadline: Deadline, read_timeout: float) -> FhirReadError:
    if deadline.expired():
        return spent()
    return FhirReadError(f"the FHIR server did not answer within {read_timeout:g} s (CDS_FHIR_READ_TIMEOUT)",
                         "unreachable")


def _headers(target: Target) -> dict[str, str]:
    headers = {"Accept": "application/fhir+json, application/json;q=0.9"}
    if target.access_token:
        headers["Authorization"] = f"Bearer {target.access_token}"
    return headers


def _join(base: str, relative: str) -> str:
    return base.rstrip("/") + "/" + relative.lstrip("/")


def _json_body(response: requests.Response, deadline: Deadline, read_timeout: float) -> dict[str, Any]:
    chunks, size = [], 0
    try:
        # The read timeout bounds each wait for bytes, not the whole body: a server that trickles
        # bytes forever is cut off by the call's deadline, checked between chunks.
        for chunk in response.iter_content(_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_ANSWER_BYTES:
                raise FhirReadError("the FHIR server's answer is too large", "invalid", response.status_code)
            if deadline.expired():
                raise spent()
    except requests.RequestException:
        if deadline.expired():
            raise spent() from None
        raise FhirReadError(f"the FHIR server's answer was cut off or stalled (CDS_FHIR_READ_TIMEOUT "
                            f"{read_timeout:g} s)", "invalid", response.status_code) from None
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        kind = "HTML" if "html" in content_type else "not valid JSON (truncated or malformed)"
        raise FhirReadError(f"the FHIR server's answer is {kind}, not FHIR JSON", "invalid",
                            response.status_code) from None
    if json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        # Validating it would exhaust the stack of the read's thread, as a request body would.
        raise FhirReadError(f"the FHIR server's answer is nested deeper than {MAX_JSON_DEPTH} levels",
                            "invalid", response.status_code)
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirReadError("the FHIR server's answer is not a FHIR resource", "invalid",
                            response.status_code)
    if body["resourceType"] == "OperationOutcome":
        raise FhirReadError("the FHIR server answered with an OperationOutcome instead of data", "server",
                            response.status_code)
    return body


def _entries(bundle: dict[str, Any], page: int = 0) -> list[dict[str, Any]]:
    """The resources of one Bundle page; OperationOutcome entries (search warnings) are left out.

    An entry that is not a resource makes the whole search unreadable, as in a prefetch
    (assemble.prefetch_gap): it may be the one that decides.
    """
    found = safe.bundle_entries(bundle)
    if found.unreadable:
        raise FhirReadError(f"the FHIR server's search answer is unreadable (page {page + 1}: "
                            f"{found.unreadable[0]})", "invalid")
    entries = [e for e in safe.items(bundle, "entry")]
    kept = []
    for entry, resource in zip(entries, found.resources, strict=True):
        mode = safe.text(safe.obj(entry, "search"), "mode")
        if mode == "outcome" or safe.resource_type(resource) == "OperationOutcome":
            continue
        kept.append(resource)
    return kept
