"""CDS client authentication: the `Authorization: Bearer` JWT of every call, checked as CDS Hooks requires."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)

from cds_service import events
from cds_service.errors import CdsError
from cds_service.logs import log_event
from cds_service.security.caller import Caller
from cds_service.security.issuers import Issuer, load_issuers
from cds_service.security.jwks import ALGORITHMS, JwksError
from cds_service.security.replay import (
    MemoryReplayStore,
    ReplayStore,
    ReplayStoreError,
    SqliteReplayStore,
    redis_store,
    token_key,
)

log = logging.getLogger(__name__)

# CDS clients sign short-lived tokens (the Sandbox: 5 minutes). A token valid for longer than this is
# refused: it would be a long-lived credential, and its id would have to be kept as long.
MAX_LIFETIME_SECONDS = 3600
# A client assertion is about a kilobyte; far larger headers are not worth parsing.
MAX_TOKEN_CHARS = 16 * 1024
MAX_JTI_CHARS = 256
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_.~+/=-]+) *")


class _Refused(Exception):
    """Why a token is not accepted: a short reason code for the log (never for the caller)."""

    def __init__(self, reason: str, issuer: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issuer = issuer


class _Unavailable(Exception):
    """A part needed to judge a token (keys, replay store) did not answer."""


class JwtAuthenticator:
    """Checks the JWT of a call to a URL; says who called (issuer, tenant) or raises a 401 CdsError.

    The order of the checks matters: nothing is fetched before the issuer and `jku` are known to be
    allowed, and a token id is recorded only once its signature is verified (so that nobody can
    burn another client's token ids with unsigned tokens).
    """

    def __init__(self, issuers: Mapping[str, Issuer], replay: ReplayStore, leeway_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuers = dict(issuers)
        self.replay = replay
        self.leeway = leeway_seconds
        self._clock = clock

    def __call__(self, authorization: str | None, url: str) -> Caller:
        try:
            return self._verify(authorization, url)
        except _Refused as refused:
            log_event(log, "authentication refused", logging.WARNING, reason=refused.reason,
                      issuer=refused.issuer)
            events.emit("jwt_refused", reason=refused.reason)
            # The body says only "Unauthorized" (app.py); the reason code goes to the request log.
            raise CdsError(401, "Unauthorized", code=refused.reason,
                           headers={"WWW-Authenticate": "Bearer"}) from None
        except _Unavailable as unavailable:
            log_event(log, "authentication unavailable", logging.ERROR, reason=str(unavailable))
            raise CdsError(503, "Callers cannot be verified right now; try again shortly",
                           code="transient", headers={"Retry-After": "5"}) from None

    def _verify(self, authorization: str | None, url: str) -> Caller:
        token = _bearer_token(authorization)
        header, unverified = _unverified(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise _Refused("disallowed_alg")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise _Refused("wrong_typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Refused("missing_kid")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Refused("unknown_issuer", _printable(iss))
        jku = header.get("jku")
        if jku is not None and (not isinstance(jku, str) or jku not in issuer.allowed_jku):
            raise _Refused("disallowed_jku", issuer.iss)
        try:
            key = issuer.keys_for(jku).key(kid, alg)
        except JwksError as exc:
            raise _Unavailable(f"keys of {issuer.iss}: {exc}") from None
        if key is None:
            raise _Refused("unknown_key", issuer.iss)
        claims = self._decode(token, key, url, issuer.iss)
        return self._accept(claims, issuer)

    def _decode(self, token: str, key: jwt.PyJWK, url: str, iss: str) -> dict[str, Any]:
        try:
            # The key is bound to one algorithm (PyJWK), and the list allows only asymmetric ones:
            # a token naming another algorithm, HMAC included, cannot pass.
            return jwt.decode(token, key, algorithms=list(ALGORITHMS), audience=url, issuer=iss,
                              leeway=self.leeway, options={"require": REQUIRED_CLAIMS})
        except InvalidSignatureError:
            raise _Refused("bad_signature", iss) from None
        except ExpiredSignatureError:
            raise _Refused("expired", iss) from None
        except ImmatureSignatureError:
            raise _Refused("not_yet_valid", iss) from None
        except InvalidAudienceError:
            raise _Refused("wrong_aud", iss) from None
        except MissingRequiredClaimError:
            raise _Refused("missing_claim", iss) from None
        except InvalidAlgorithmError:
            raise _Refused("disallowed_alg", iss) from None
        except (InvalidTokenError, ValueError, TypeError, OverflowError, RecursionError):
            raise _Refused("invalid_claims", iss) from None

    def _accept(self, claims: Mapping[str, Any], issuer: Issuer) -> Caller:
        try:
            # PyJWT checked that int(exp) works; it may still be a string or too big for a float.
            now = int(self._clock())
            exp = int(claims["exp"])
            # PyJWT ≥ 2.10 refuses an iat in the future too; checked here whatever its version.
            future = int(claims["iat"]) > now + self.leeway
        except (TypeError, ValueError, OverflowError):
            raise _Refused("invalid_claims", issuer.iss) from None
        if future:
            raise _Refused("not_yet_valid", issuer.iss)
        if exp - now > MAX_LIFETIME_SECONDS:
            raise _Refused("lifetime_too_long", issuer.iss)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise _Refused("bad_jti", issuer.iss)
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise _Refused("bad_tenant", issuer.iss)
        if issuer.tenants and tenant not in issuer.tenants:
            raise _Refused("tenant_not_allowed", issuer.iss)
        try:
            first = self.replay.first_use(token_key(issuer.iss, jti), exp + self.leeway)
        except ReplayStoreError as exc:
            raise _Unavailable(f"replay store: {exc}") from None
        if not first:
            raise _Refused("replayed", issuer.iss)
        return Caller(issuer=issuer.iss, tenant=tenant, site=issuer.site_of(tenant))

    def describe(self) -> str:
        """For /healthz, which anyone may read: no paths, URLs or issuer names."""
        return f"jwt ({len(self.issuers)} issuer(s); replay store: {self.replay.kind})"


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise _Refused("missing_header")
    if len(authorization) > MAX_TOKEN_CHARS:
        raise _Refused("malformed_header")
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise _Refused("malformed_header")
    return match.group(1)


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to find the issuer and key; trusted for nothing else."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (InvalidTokenError, ValueError, TypeError, RecursionError):
        raise _Refused("malformed_token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _Refused("malformed_token")
    return header, claims


def _printable(value: Any) -> str | None:
    # An unknown issuer is worth logging (a client not yet configured), but it is caller-supplied text.
    return value[:120] if isinstance(value, str) else None


class AuthSettings(Protocol):
    """What authentication reads of the service's settings (`cds_service.config.Config` has all of it;
    the settings module sits above this package, which must not import it)."""

    @property
    def jwt_issuers(self) -> Path | None: ...

    @property
    def jwt_leeway_seconds(self) -> int: ...

    @property
    def redis_url(self) -> str | None: ...

    @property
    def replay_db(self) -> str: ...

    @property
    def workers(self) -> int: ...

    @property
    def base_url(self) -> str | None: ...


def replay_store(config: AuthSettings) -> ReplayStore:
    """Redis when CDS_REDIS_URL is set; else the SQLite file CDS_REPLAY_DB (or memory for `:memory:`)."""
    if config.redis_url:
        return redis_store(config.redis_url)
    if config.replay_db == ":memory:":
        return MemoryReplayStore()
    return SqliteReplayStore(Path(config.replay_db).expanduser())


def check_authentication(config: AuthSettings) -> None:
    """Load the issuers file and open the replay store once, so that `cds-service serve` refuses a
    broken one with its message before gunicorn starts (ConfigError)."""
    if config.jwt_issuers is not None:
        load_issuers(config.jwt_issuers)
        replay_store(config)


def build_authenticator(config: AuthSettings) -> JwtAuthenticator | None:
    """The authenticator of CDS_JWT_ISSUERS, or None (the service is open) when it is unset.

    A broken issuers file, key file or replay store stops the start-up with a ConfigError.
    """
    if config.jwt_issuers is None:
        return None
    issuers = load_issuers(config.jwt_issuers)
    replay = replay_store(config)
    log_event(log, "authentication: jwt", issuers=[i.describe() for i in issuers.values()],
              replayStore=replay.describe(), leewaySeconds=config.jwt_leeway_seconds)
    if not replay.shared and config.workers > 1:
        log_event(log, f"REPLAY STORE PER PROCESS with CDS_WORKERS={config.workers}: a token replayed to "
                  "another worker is accepted. Use CDS_REPLAY_DB (a file) or CDS_REDIS_URL.", logging.WARNING)
    if config.base_url is None:
        log_event(log, "CDS_BASE_URL is unset: the JWT aud is checked against the Host header of each "
                  "request. Set it to the public URL of the service.", logging.WARNING)
    return JwtAuthenticator(issuers, replay, config.jwt_leeway_seconds)

