"""Pseudonymous keys: a keyed hash of an identifier, for correlating logs and audit rows without PHI."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

# Used when CDS_PSEUDONYM_SALT is unset and nothing better is wired: drawn once per process (before
# gunicorn forks, so its workers share it); keys then correlate within one run of the service only.
_PROCESS_SALT = secrets.token_hex(32)


def pseudonym(value: str, salt: str) -> str:
    """A stable, non-reversible key for `value` under `salt` (HMAC-SHA256, 16 hex characters)."""
    # hmac.digest: the same HMAC in one call into OpenSSL (a hook call makes one or two of these).
    return hmac.digest(salt.encode(), value.encode(), "sha256").hex()[:16]


def pseudonymizer(salt: str | None = None) -> Callable[[str], str]:
    """The patient-key function of the request log: the configured salt, else the per-process one.

    The audit store replaces it with one keyed by its persisted salt (`Runtime.pseudonymize`).
    """
    key = salt or _PROCESS_SALT
    return lambda value: pseudonym(value, key)
