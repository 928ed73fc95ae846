"""Verification of the DPoP proofs (RFC 9449) that Mercari's search API demands.

A proof is a JWT the client signs ES256 with a P-256 key of its own, carrying the public key in
its header; it binds one request (method and URL) at one moment, and its ``jti`` may be used
once. Pure apart from the replay memory, which the caller owns; the time is passed in.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from collections import OrderedDict
from collections.abc import Collection
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

DEFAULT_MAX_AGE_SECONDS = 120
_P256_COORDINATE_BYTES = 32


class DpopError(ValueError):
    """The proof is missing, malformed, badly signed, stale, replayed or for another request."""


@dataclasses.dataclass(frozen=True)
class DpopProof:
    jti: str
    iat: int
    htu: str
    htm: str
    client_uuid: str


def normalize_htu(url: str) -> str:
    """The form ``htu`` is compared in: scheme and host lower-cased, default port dropped, no
    query or fragment (RFC 9449 §4.3)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}{port}{parts.path or '/'}"


def _b64url_decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise DpopError("a JWT part is not base64url") from None


def _json_part(part: str, name: str) -> dict:
    try:
        value = json.loads(_b64url_decode(part))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DpopError(f"the JWT {name} is not JSON") from None
    if not isinstance(value, dict):
        raise DpopError(f"the JWT {name} is not a JSON object")
    return value


def _public_key(jwk: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(jwk, dict):
        raise DpopError("the header has no jwk")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise DpopError("the jwk must be an EC P-256 key")
    if "d" in jwk:
        raise DpopError("the jwk must not carry a private key")
    coordinates = []
    for name in ("x", "y"):
        value = jwk.get(name)
        raw = _b64url_decode(value) if isinstance(value, str) else b""
        if len(raw) != _P256_COORDINATE_BYTES:
            raise DpopError(f"the jwk's {name} is not a P-256 coordinate")
        coordinates.append(int.from_bytes(raw, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(*coordinates, ec.SECP256R1()).public_key()
    except ValueError:
        raise DpopError("the jwk's point is not on P-256") from None


def verify_dpop_proof(
    token: str | None,
    *,
    method: str,
    accepted_urls: Collection[str],
    now: float,
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
) -> DpopProof:
    """Check a proof's form, signature, method, URL (any of ``accepted_urls``) and freshness.
    Replay is the caller's check (:class:`JtiMemory`), made after this one so that forged
    proofs cannot fill the memory."""
    if not token:
        raise DpopError("missing DPoP header")
    parts = token.split(".")
    if len(parts) != 3:
        raise DpopError("the DPoP header is not a compact JWT")
    header, payload = _json_part(parts[0], "header"), _json_part(parts[1], "payload")
    if header.get("typ") != "dpop+jwt":
        raise DpopError("typ must be dpop+jwt")
    if header.get("alg") != "ES256":
        raise DpopError("alg must be ES256")
    key = _public_key(header.get("jwk"))
    signature = _b64url_decode(parts[2])
    if len(signature) != 2 * _P256_COORDINATE_BYTES:
        raise DpopError("an ES256 signature is 64 bytes")
    r, s = (int.from_bytes(signature[i : i + 32], "big") for i in (0, 32))
    try:
        key.verify(encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise DpopError("the signature does not verify with the header's jwk") from None

    iat, jti, htu, htm, client_uuid = (payload.get(k) for k in ("iat", "jti", "htu", "htm", "uuid"))
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise DpopError("iat must be a number")
    if abs(now - iat) > max_age_seconds:
        raise DpopError(f"iat is {int(now - iat)} s away from the server's clock (at most {max_age_seconds:g})")
    if not isinstance(jti, str) or not _is_uuid(jti):
        raise DpopError("jti must be a uuid")
    if htm != method:
        raise DpopError(f"htm {htm!r} is not the request's method {method}")
    if not isinstance(htu, str) or normalize_htu(htu) not in {normalize_htu(u) for u in accepted_urls}:
        raise DpopError(f"htu {htu!r} is not the URL this request was sent to")
    if not isinstance(client_uuid, str) or not client_uuid:
        raise DpopError("uuid is missing")
    return DpopProof(jti=jti, iat=int(iat), htu=htu, htm=htm, client_uuid=client_uuid)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class JtiMemory:
    """The jtis seen recently. A jti only needs remembering while its proof is fresh enough to
    be accepted (a replay of an older one fails the iat check), so entries expire after twice
    the allowed age; ``capacity`` bounds memory against a flood of fresh proofs."""

    def __init__(self, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS, capacity: int = 200_000) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._keep_seconds = 2 * max_age_seconds
        self._capacity = capacity

    def first_use(self, jti: str, now: float) -> bool:
        """Record ``jti``; False when it was seen before."""
        while self._expiry and (next(iter(self._expiry.values())) < now or len(self._expiry) >= self._capacity):
            self._expiry.popitem(last=False)
        if jti in self._expiry:
            return False
        self._expiry[jti] = now + self._keep_seconds
        return True
