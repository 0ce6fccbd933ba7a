"""Pseudonymous keys: a keyed hash of an identifier, for correlating logs and audit rows without PHI."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(value: str, salt: str) -> str:
    """A stable, non-reversible key for `value` under `salt` (HMAC-SHA256, 16 hex characters)."""
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]
