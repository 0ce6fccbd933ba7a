"""Test keys and tokens: the CDS Hooks Sandbox's published key, keys made per run, and a signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import SHARED

VECTORS = SHARED / "test-vectors"
REPO = Path(__file__).resolve().parents[2]
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_JWKS = REPO / "deploy" / "cds-hooks-sandbox-jwks.json"
EHR_ISS = "https://ehr.example.org/cds-client"


@dataclass(frozen=True)
class Key:
    """A private key with its kid and algorithm; `jwk` is the public half as a JWK."""

    private: Any
    kid: str
    alg: str

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        maker = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        return {**maker.to_jwk(public, as_dict=True), "kid": self.kid, "use": "sig", "alg": self.alg}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


@cache
def sandbox_key() -> Key:
    pem = (VECTORS / "cds-hooks-sandbox-ecprivkey.pem").read_bytes()
    return Key(serialization.load_pem_private_key(pem, password=None), SANDBOX_KID, "ES384")


@cache
def made_key(alg: str, kid: str, bits: int = 2048) -> Key:
    """A key generated for this test run (cached per run: RSA generation takes a moment)."""
    if alg.startswith("RS"):
        return Key(rsa.generate_private_key(public_exponent=65537, key_size=bits), kid, alg)
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
    return Key(ec.generate_private_key(curve), kid, alg)


def jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.jwk for k in keys]}


def claims(aud: str, *, iss: str = SANDBOX_ISS, lifetime: int = 300, iat: int | None = None,
           **extra: Any) -> dict[str, Any]:
    """What the Sandbox puts in a token: iss, aud, exp = iat + 300, iat, jti (plus `extra`)."""
    issued = int(time.time()) if iat is None else iat
    body = {"iss": iss, "aud": aud, "exp": issued + lifetime, "iat": issued, "jti": str(uuid.uuid4())}
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def sign(key: Key, payload: dict[str, Any], *, alg: str | None = None, **header: Any) -> str:
    """A compact JWS over `payload` with the key; header typ JWT and kid unless overridden."""
    headers = {"typ": "JWT", "kid": key.kid, **header}
    headers = {k: v for k, v in headers.items() if v is not None}
    return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=headers)


def sandbox_token(aud: str, **extra: Any) -> str:
    """Exactly what the CDS Hooks Sandbox sends for a call to `aud`."""
    return sign(sandbox_key(), claims(aud, **extra), jku=SANDBOX_JKU)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand (for algorithms PyJWT rightly refuses to produce)."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def hmac_token(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """An HS256 token keyed with `secret` (the algorithm-confusion attack uses the public key)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def write_issuers(folder: Path, issuers: list[dict[str, Any]], key_sets: dict[str, dict[str, Any]]) -> Path:
    """An issuers file and its JWKS files in `folder`; returns the issuers file."""
    for name, document in key_sets.items():
        (folder / name).write_text(json.dumps(document))
    path = folder / "issuers.json"
    path.write_text(json.dumps({"issuers": issuers}))
    return path
