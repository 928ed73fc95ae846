"""DPoP proof verification: real proofs pass (one recorded from Mercari's own web client), and
every way a proof can be wrong is refused. ``signed_proof`` is reused by the HTTP tests."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from animehot_dagster.simulator.dpop import DpopError, JtiMemory, normalize_htu, verify_dpop_proof

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "mercari-api" / "search_sort_created_desc.yml"
URL = "http://127.0.0.1:8090/v2/entities:search"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def signed_proof(
    key: ec.EllipticCurvePrivateKey,
    htu: str,
    *,
    htm: str = "POST",
    iat: float | None = None,
    jti: str | None = None,
    header_key: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """A DPoP proof as Mercari's web client makes one, signed by ``key``; ``header_key`` puts
    another key's jwk in the header (a forgery)."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(header_key or key)}
    payload = {
        "iat": int(time.time() if iat is None else iat),
        "jti": jti or str(uuid.uuid4()),
        "htu": htu,
        "htm": htm,
        "uuid": "cfc5733c-eaa3-9063-b479-9d3a77fdb62f",
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def verify(token: str | None, now: float | None = None, method: str = "POST"):
    return verify_dpop_proof(token, method=method, accepted_urls=[URL], now=time.time() if now is None else now)


def test_a_proof_recorded_from_mercaris_web_client_verifies_at_its_time_and_is_stale_now():
    headers = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))["interactions"][0]["request"]["headers"]
    token = headers["dpop"][0]
    real = ["https://api.mercari.jp/v2/entities:search"]
    proof = verify_dpop_proof(token, method="POST", accepted_urls=real, now=1701519353 + 5)
    assert proof.htu == real[0] and proof.client_uuid == "cfc5733c-eaa3-9063-b479-9d3a77fdb62f"
    with pytest.raises(DpopError, match="iat"):
        verify_dpop_proof(token, method="POST", accepted_urls=real, now=time.time())


def test_a_fresh_proof_for_this_request_verifies(key):
    proof = verify(signed_proof(key, URL))
    assert proof.htm == "POST" and proof.htu == URL


def test_htu_is_compared_without_query_default_port_or_case():
    real = "https://api.mercari.jp/v2/entities:search"
    assert normalize_htu("HTTPS://API.Mercari.jp:443/v2/entities:search?x=1") == real
    assert normalize_htu("http://127.0.0.1:8090/v2/entities:search") == URL


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda key: None, "missing"),
        (lambda key: "not-a-jwt", "compact JWT"),
        (lambda key: signed_proof(key, URL, header_key=ec.generate_private_key(ec.SECP256R1())), "signature"),
        (lambda key: signed_proof(key, "http://127.0.0.1:9999/v2/entities:search"), "htu"),
        (lambda key: signed_proof(key, URL + "x"), "htu"),
        (lambda key: signed_proof(key, URL, htm="GET"), "htm"),
        (lambda key: signed_proof(key, URL, iat=time.time() - 600), "iat"),
        (lambda key: signed_proof(key, URL, iat=time.time() + 600), "iat"),
        (lambda key: signed_proof(key, URL, jti="not-a-uuid"), "jti"),
    ],
    ids=["missing", "not-jwt", "forged-key", "other-port", "other-path", "method", "stale", "future", "jti-format"],
)
def test_bad_proofs_are_refused(key, make_token, reason):
    with pytest.raises(DpopError, match=reason):
        verify(make_token(key))


def test_a_tampered_payload_or_header_is_refused(key):
    header, payload, signature = signed_proof(key, URL).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other_payload = _b64url(json.dumps(claims | {"htu": "https://api.mercari.jp/v2/entities:search"}).encode())
    with pytest.raises(DpopError, match="signature"):
        verify(f"{header}.{other_payload}.{signature}")
    fields = json.loads(base64.urlsafe_b64decode(header + "=="))
    changes = (({"typ": "JWT"}, "typ"), ({"alg": "HS256"}, "alg"), ({"jwk": fields["jwk"] | {"d": "x"}}, "private"))
    for change, reason in changes:
        forged_header = _b64url(json.dumps(fields | change).encode())
        with pytest.raises(DpopError, match=reason):
            verify(f"{forged_header}.{payload}.{signature}")


def test_a_jti_is_accepted_once_and_forgotten_only_after_it_could_no_longer_pass():
    memory = JtiMemory(max_age_seconds=120, capacity=3)
    assert memory.first_use("a", now=1000)
    assert not memory.first_use("a", now=1100)
    assert memory.first_use("a", now=1000 + 241)  # a replay this late fails the iat check anyway
    for jti in "bcd":
        assert memory.first_use(jti, now=1300)
    assert memory.first_use("a", now=1300)  # pushed out by capacity
