"""Readiness: can this process answer hook calls now? Knowledge loaded, audit store and Redis reachable.

Liveness (/livez) is only "the process answers"; it checks nothing else, so that an unreachable database
takes a replica out of the load balancer (/readyz) instead of having it restarted in a loop.
Each part is checked at every call with a short time-out; the answer names the parts and, for one that
fails, the error's class only (no URL, host or message that could carry a credential).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import text

from cds_service.security.replay import redis_client

OK = "ok"

_clients: dict[tuple[int, str], redis.Redis] = {}
_clients_lock = threading.Lock()


def _knowledge(runtime: Any) -> str:
    knowledge = runtime.knowledge
    if knowledge is None or not getattr(knowledge, "regimens", None):
        return "not loaded"
    return OK


def _audit(runtime: Any) -> str:
    engine = getattr(runtime.audit, "engine", None)
    if engine is None:
        return OK  # no audit store configured (tests): nothing to reach
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return OK


def _redis_client(url: str) -> redis.Redis:
    # One client per process and URL: connections must not cross gunicorn's fork.
    key = (os.getpid(), url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis_client(url)
        return client


def _redis(runtime: Any) -> str | None:
    url = runtime.config.redis_url
    if not url:
        return None
    try:
        _redis_client(url).ping()
    except (redis.RedisError, OSError) as exc:
        return f"unreachable ({type(exc).__name__})"
    return OK


CHECKS: dict[str, Callable[[Any], str | None]] = {"knowledge": _knowledge, "audit": _audit, "redis": _redis}


def readiness(runtime: Any) -> tuple[int, dict[str, Any]]:
    """The status (200 or 503) and body of GET /readyz; a check that answers None does not apply here."""
    checks = {}
    for name, check in CHECKS.items():
        result = check(runtime)
        if result is not None:
            checks[name] = result
    failing = [name for name, result in checks.items() if result != OK]
    if failing:
        return 503, {"status": "unavailable", "failing": failing, "checks": checks}
    return 200, {"status": "ready", "checks": checks}
