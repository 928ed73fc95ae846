"""DPoP proofs checked by the simulator's verifier (real ES256 verification), and key rotation."""

from __future__ import annotations

import base64
import json

from animehot_dagster.crawler.dpop import DpopSigner
from animehot_dagster.simulator.dpop import verify_dpop_proof

URL = "https://api.mercari.jp/v2/entities:search"


def header(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Clock:
    now = 1_767_538_800.0

    def __call__(self) -> float:
        return self.now


def test_a_proof_verifies_and_binds_method_url_time_and_client():
    clock = Clock()
    signer = DpopSigner(clock=clock)
    first, second = signer.proof(URL), signer.proof(URL)
    one = verify_dpop_proof(first, method="POST", accepted_urls=[URL], now=clock.now)
    two = verify_dpop_proof(second, method="POST", accepted_urls=[URL], now=clock.now)
    assert (one.htm, one.htu, one.iat) == ("POST", URL, int(clock.now))
    assert one.client_uuid == two.client_uuid == signer.client_uuid
    assert one.jti != two.jti
    assert header(first) == header(second)  # the same key until it rotates


def test_the_key_is_replaced_every_fifteen_minutes_and_proofs_still_verify():
    clock = Clock()
    signer = DpopSigner(clock=clock)
    original = header(signer.proof(URL))["jwk"]
    clock.now += 15 * 60 - 1
    assert header(signer.proof(URL))["jwk"] == original
    clock.now += 1
    rotated = signer.proof(URL)
    assert header(rotated)["jwk"] != original
    assert verify_dpop_proof(rotated, method="POST", accepted_urls=[URL], now=clock.now).client_uuid == signer.client_uuid
