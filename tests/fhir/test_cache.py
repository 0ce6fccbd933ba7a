"""The read cache: TTL, size, per-token keys, no cached errors, coalesced concurrent reads, thread safety."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cds_service.fhir.cache import ReadCache, cache_key, normalize_query, token_key
from tests.fhir.support import BASE, FakeClock


def test_a_value_is_reused_within_the_ttl_and_read_again_after():
    clock = FakeClock()
    cache = ReadCache(size=10, ttl_seconds=120, timer=clock)
    loads = []
    key = cache_key(BASE, "Patient/1", "t")
    assert cache.get_or_load(key, lambda: loads.append(1) or "v1", 1) == ("v1", False)
    assert cache.get_or_load(key, lambda: loads.append(1) or "v2", 1) == ("v1", True)
    clock.advance(121)
    assert cache.get_or_load(key, lambda: loads.append(1) or "v3", 1) == ("v3", False)
    assert len(loads) == 2


def test_the_size_is_bounded():
    cache = ReadCache(size=2, ttl_seconds=120, timer=FakeClock())
    for i in range(5):
        cache.get_or_load(cache_key(BASE, f"Patient/{i}", "t"), lambda i=i: i, 1)
    assert len(cache) == 2


def test_ttl_zero_disables_caching():
    cache = ReadCache(size=2, ttl_seconds=0)
    key = cache_key(BASE, "Patient/1", "t")
    cache.get_or_load(key, lambda: 1, 1)
    assert cache.get_or_load(key, lambda: 2, 1) == (2, False)


def test_errors_are_not_cached():
    cache = ReadCache(size=10, ttl_seconds=120, timer=FakeClock())
    key = cache_key(BASE, "Patient/1", "t")

    def fail():
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        cache.get_or_load(key, fail, 1)
    assert cache.get_or_load(key, lambda: "ok", 1) == ("ok", False)


def test_keys_separate_servers_and_tokens_and_hold_no_token():
    key = cache_key(BASE, "Patient/1", "secret-token")
    assert key != cache_key(BASE, "Patient/1", "other-token")
    assert key != cache_key(BASE, "Patient/1", None)
    assert key != cache_key("http://127.0.0.1:8124/fhir", "Patient/1", "secret-token")
    assert "secret-token" not in repr(key)
    assert token_key(None) == token_key("") == "anonymous"
    assert len(token_key("secret-token")) == 64


def test_queries_are_normalized():
    assert normalize_query("/Observation?patient=1&_count=5") == normalize_query("Observation?_count=5&patient=1")
    assert normalize_query("Observation?code=a&code=b") != normalize_query("Observation?code=b&code=a")
    assert cache_key(BASE + "/", "Patient/1", None) == cache_key(BASE, "Patient/1", None)


def test_concurrent_identical_reads_are_coalesced():
    waiting = threading.Event()
    release = threading.Event()

    class SeenFuture(Future):
        def result(self, timeout=None):
            waiting.set()  # a second reader has arrived and waits for the first one's read
            return super().result(timeout)

    cache = ReadCache(size=10, ttl_seconds=0)  # no caching: only coalescing can spare the second read
    cache.future_type = SeenFuture
    loads = []

    def slow_load():
        loads.append(1)
        assert release.wait(10)
        return "value"

    key = cache_key(BASE, "Patient/1", "t")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_load, key, slow_load, 10)
        second = pool.submit(cache.get_or_load, key, slow_load, 10)
        assert waiting.wait(10)
        release.set()
        # Either thread may be the one that loads; the other waits for it.
        assert sorted([first.result(10), second.result(10)]) == [("value", False), ("value", True)]
    assert len(loads) == 1


def test_a_waiter_gets_the_loaders_error():
    waiting = threading.Event()
    release = threading.Event()

    class SeenFuture(Future):
        def result(self, timeout=None):
            waiting.set()
            return super().result(timeout)

    cache = ReadCache(size=10, ttl_seconds=120)
    cache.future_type = SeenFuture

    def failing_load():
        assert release.wait(10)
        raise LookupError("server down")

    key = cache_key(BASE, "Patient/1", "t")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_load, key, failing_load, 10)
        second = pool.submit(cache.get_or_load, key, failing_load, 10)
        assert waiting.wait(10)
        release.set()
        for future in (first, second):
            with pytest.raises(LookupError):
                future.result(10)


def test_many_threads_many_keys():
    cache = ReadCache(size=50, ttl_seconds=120)
    keys = [cache_key(BASE, f"Patient/{i % 80}", f"t{i % 3}") for i in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: cache.get_or_load(k, lambda: k[1], 5)[0], keys))
    assert results == [k[1] for k in keys]
    assert len(cache) <= 50
