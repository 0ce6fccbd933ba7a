"""A TTL cache of FHIR reads per (server, query, access token), shared by the threads of a process."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from cachetools import TTLCache

T = TypeVar("T")
CacheKey = tuple[str, str, str]


def token_key(access_token: str | None) -> str:
    """What the cache keeps of a token: its SHA-256, so one token's reads are never served to another."""
    if not access_token:
        return "anonymous"
    return hashlib.sha256(access_token.encode()).hexdigest()


def normalize_query(relative: str) -> str:
    """A relative FHIR request with its parameters in a stable order (`b=2&a=1` and `a=1&b=2` are one read).

    The sort is stable, so repeated parameters keep their order among themselves.
    """
    try:
        parts = urlsplit(relative)
    except ValueError:  # from a link of the server's answer ("//[x"): kept as is, still one key per text
        return relative
    params = sorted(parse_qsl(parts.query, keep_blank_values=True), key=lambda kv: kv[0])
    return parts.path.strip("/") + (f"?{urlencode(params)}" if params else "")


def cache_key(base: str, relative: str, access_token: str | None) -> CacheKey:
    return (base.rstrip("/").lower(), normalize_query(relative), token_key(access_token))


class ReadCache:
    """Successful reads kept for CDS_CACHE_TTL_SECONDS, at most CDS_CACHE_SIZE of them.

    Errors are never cached. Concurrent identical reads are coalesced: the first caller loads, the
    others wait for its result (or its error) instead of asking the server again. Values are shared
    between threads and must be treated as read-only.
    """

    # The waiting point of coalesced reads (a test substitutes a subclass to see waiters arrive).
    future_type: type[Future] = Future

    def __init__(self, size: int, ttl_seconds: float, timer: Callable[[], float] = time.monotonic) -> None:
        self._cache: TTLCache | None = TTLCache(maxsize=size, ttl=ttl_seconds, timer=timer) \
            if ttl_seconds > 0 else None
        self._lock = threading.Lock()
        self._loading: dict[CacheKey, Future] = {}

    def get_or_load(self, key: CacheKey, load: Callable[[], T], wait_seconds: float) -> tuple[T, bool]:
        """The value for `key` and whether it came from the cache (or another thread's identical read).

        A waiter gives up after `wait_seconds` with TimeoutError; the loader's own exceptions propagate.
        """
        with self._lock:
            if self._cache is not None and key in self._cache:
                return self._cache[key], True
            pending = self._loading.get(key)
            if pending is None:
                pending = self.future_type()
                self._loading[key] = pending
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result(timeout=max(wait_seconds, 0.0)), True
        try:
            value = load()
        except BaseException as exc:
            with self._lock:
                self._loading.pop(key, None)
            pending.set_exception(exc)
            raise
        with self._lock:
            if self._cache is not None:
                self._cache[key] = value
            self._loading.pop(key, None)
        pending.set_result(value)
        return value, False

    def clear(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache) if self._cache is not None else 0
