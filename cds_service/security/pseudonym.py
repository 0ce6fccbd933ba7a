"""Pseudonymous keys: a keyed hash of an identifier, for correlating logs and audit rows without PHI."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import lru_cache

# Used when CDS_PSEUDONYM_SALT is unset and nothing better is wired: drawn once per process (before
# gunicorn forks, so its workers share it); keys then correlate within one run of the service only.
_PROCESS_SALT = secrets.token_hex(32)


# A hook call keys its patient two or three times (request log, audit row, study subject), and a patient's
# calls come in runs: the keys of the last few thousand values are remembered (C's lru_cache, 0.1 µs).
@lru_cache(maxsize=4096)
def pseudonym(value: str, salt: str) -> str:
    """A stable, non-reversible key for `value` under `salt` (HMAC-SHA256, 16 hex characters)."""
    keyed = _keyed(salt).copy()
    keyed.update(value.encode())
    return keyed.hexdigest()[:16]


@lru_cache(maxsize=8)
def _keyed(salt: str) -> hmac.HMAC:
    # The HMAC keyed once per salt and copied for each value (a hook call makes one or two): one-shot
    # `hmac.digest` keys it again every time and lets go of the interpreter lock around its OpenSSL call,
    # so under load the request thread then waits for the lock behind the others (bench/README.md). An
    # update of a few bytes and the digest of a copy keep it. A salt is a setting or the audit store's:
    # a handful per process.
    return hmac.new(salt.encode(), digestmod="sha256")


def pseudonymizer(salt: str | None = None) -> Callable[[str], str]:
    """The patient-key function of the request log: the configured salt, else the per-process one.

    The audit store replaces it with one keyed by its persisted salt (`Runtime.pseudonymize`).
    """
    key = salt or _PROCESS_SALT
    return lambda value: pseudonym(value, key)
