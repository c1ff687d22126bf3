"""Server signing keys: publish before signing, verify until expiry, rotate on schedule, retire at once."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import NotFound, ServiceUnavailable
from tessera.runtime import Runtime
from tessera.sdk.verifier import VerificationError
from tessera.storage.database import reading
from tessera.storage.tables import signing_keys
from tessera.tokens.jose import JwsError
from tessera.tokens.sealing import MasterKeyError, Sealer, b64url_encode
from tessera.tokens.signing_keys import KeyRing, SigningKeyManager
from tests.unit.helpers import Client, local_verifier, request_token, unverified_claims


def jwks_kids(runtime: Runtime) -> set[str]:
    return {k["kid"] for k in runtime.keyring().jwks(runtime.clock.now())["keys"]}


def kid_of(token: str) -> str:
    header = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def current_kid(runtime: Runtime) -> str:
    key = runtime.keyring().signing_key(runtime.clock.now())
    assert key is not None
    return key.kid


def test_jwks_publishes_only_public_es256_keys(runtime: Runtime) -> None:
    (jwk,) = runtime.keyring().jwks(runtime.clock.now())["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk
    assert jwk["kid"] == current_kid(runtime)


def test_a_new_key_is_published_before_it_signs(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    old = current_kid(runtime)
    new = runtime.keys.rotate()
    runtime.follower.poll_once()  # type: ignore[union-attr]
    assert jwks_kids(runtime) == {old, new}
    assert (
        runtime.keyring().state(runtime.keyring().verification_key(new, clock.now()), clock.now())
        == "pending"
    )  # type: ignore[arg-type]
    assert kid_of(request_token(runtime, client).access_token) == old
    clock.advance(runtime.settings.signing_key_publish_delay - 1)
    assert kid_of(request_token(runtime, client).access_token) == old
    clock.advance(1)
    assert kid_of(request_token(runtime, client).access_token) == new


def test_the_old_key_verifies_until_its_tokens_expire(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    old = current_kid(runtime)
    runtime.keys.rotate()
    runtime.reload_keys()
    clock.advance(runtime.settings.signing_key_publish_delay - 1)
    last_by_old = request_token(runtime, client).access_token
    assert kid_of(last_by_old) == old
    clock.advance(1)
    # Rotated: the old key no longer signs but its token is still good, here and in the SDK.
    assert runtime.validator.verify(last_by_old)
    sdk = local_verifier(runtime)
    clock.advance(runtime.settings.access_token_ttl)
    assert runtime.validator.verify(last_by_old)
    assert sdk.verify_token(last_by_old)
    assert old in jwks_kids(runtime)
    # Once every token it could have signed has expired, it leaves the JWKS.
    clock.advance(runtime.settings.max_access_token_ttl + runtime.settings.clock_leeway)
    assert old not in jwks_kids(runtime)
    assert runtime.keyring().verification_key(old, clock.now()) is None


def test_emergency_retirement_invalidates_at_once(runtime: Runtime, client: Client) -> None:
    compromised = current_kid(runtime)
    token = request_token(runtime, client).access_token
    runtime.keys.retire(compromised)
    runtime.follower.poll_once()  # type: ignore[union-attr]
    with pytest.raises(JwsError, match="retired"):
        runtime.validator.verify(token)
    assert compromised not in jwks_kids(runtime)
    replacement = current_kid(runtime)
    assert replacement != compromised
    fresh = request_token(runtime, client).access_token
    assert kid_of(fresh) == replacement
    assert runtime.validator.verify(fresh)
    # An SDK that refreshes its JWKS no longer knows the retired key.
    with pytest.raises(VerificationError, match="unknown"):
        local_verifier(runtime).verify_token(token)


def test_retiring_is_idempotent_and_unknown_kids_are_refused(runtime: Runtime) -> None:
    kid = current_kid(runtime)
    runtime.keys.retire(kid)
    runtime.keys.retire(kid)
    with pytest.raises(NotFound):
        runtime.keys.retire("no-such-kid")


def test_retiring_the_pending_key_lines_up_a_successor(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    """The old key was set to step down when the pending one activated: someone must take over then."""
    old = current_kid(runtime)
    pending = runtime.keys.rotate()
    runtime.keys.retire(pending)
    runtime.follower.poll_once()  # type: ignore[union-attr]
    assert pending not in jwks_kids(runtime)
    successors = jwks_kids(runtime) - {old}
    assert len(successors) == 1  # published now, ahead of signing
    assert kid_of(request_token(runtime, client).access_token) == old
    clock.advance(runtime.settings.signing_key_publish_delay)
    token = request_token(runtime, client).access_token
    assert kid_of(token) == successors.pop()
    assert runtime.validator.verify(token)


def test_retiring_the_signer_during_a_rotation_leaves_no_gap(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    old = current_kid(runtime)
    pending = runtime.keys.rotate()
    runtime.keys.retire(old)
    runtime.follower.poll_once()  # type: ignore[union-attr]
    bridge = kid_of(request_token(runtime, client).access_token)
    assert bridge not in (old, pending)
    clock.advance(runtime.settings.signing_key_publish_delay)
    assert kid_of(request_token(runtime, client).access_token) == pending
    by_bridge_still_verifies = jwks_kids(runtime)
    assert bridge in by_bridge_still_verifies


def test_rotating_again_before_the_first_rotation_lands(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    """Each key signs only after its publish delay, one after the other, and never is there a gap."""
    old = current_kid(runtime)
    first = runtime.keys.rotate()
    clock.advance(10)
    second = runtime.keys.rotate()
    runtime.reload_keys()
    delay = runtime.settings.signing_key_publish_delay
    expected = [(delay - 10 - 1, old), (1, first), (9, first), (1, second)]
    for step, kid in expected:
        clock.advance(step)
        assert kid_of(request_token(runtime, client).access_token) == kid
    assert runtime.keys.rotate_if_due() is None
    assert {old, first, second} <= jwks_kids(runtime)


def test_rotating_now_while_a_rotation_is_pending(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    old = current_kid(runtime)
    overtaken = runtime.keys.rotate()
    now_key = runtime.keys.rotate(immediate=True)
    runtime.reload_keys()
    assert kid_of(request_token(runtime, client).access_token) == now_key
    clock.advance(runtime.settings.signing_key_publish_delay)
    runtime.maintain()
    assert kid_of(request_token(runtime, client).access_token) == now_key
    assert {old, now_key} <= jwks_kids(runtime)
    overtaken_key = runtime.keyring().verification_key(overtaken, clock.now())
    assert overtaken_key is not None  # published, so it stays until any token could have expired
    assert runtime.keyring().state(overtaken_key, clock.now()) == "superseded"


def test_scheduled_rotation(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    first = current_kid(runtime)
    assert runtime.keys.rotate_if_due() is None
    clock.advance(runtime.settings.signing_key_rotation_interval - 1)
    runtime.maintain()
    assert current_kid(runtime) == first
    clock.advance(1)
    runtime.maintain()
    second = {k for k in jwks_kids(runtime) if k != first}
    assert len(second) == 1
    assert runtime.keys.rotate_if_due() is None  # a rotation is already pending
    clock.advance(runtime.settings.signing_key_publish_delay)
    runtime.maintain()
    assert current_kid(runtime) == second.pop()


def test_immediate_rotation(runtime: Runtime, client: Client) -> None:
    old = current_kid(runtime)
    new = runtime.keys.rotate(immediate=True)
    runtime.reload_keys()
    assert kid_of(request_token(runtime, client).access_token) == new
    assert old in jwks_kids(runtime)


def test_private_keys_are_stored_sealed(runtime: Runtime) -> None:
    key = runtime.keyring().signing_key(runtime.clock.now())
    assert key is not None
    d = key.private_key.as_dict(private=True)["d"]
    with reading(runtime.engine) as conn:
        (sealed,) = conn.execute(select(signing_keys.c.private_jwk_sealed)).one()
    assert d.encode() not in bytes(sealed)


def test_another_master_key_cannot_read_the_keys(runtime: Runtime, settings: Settings) -> None:
    other = SigningKeyManager(
        runtime.engine,
        Sealer(b"\x07" * 32),
        runtime.clock,
        rotation_interval=3600,
        publish_delay=60,
        verify_grace=3630,
    )
    with pytest.raises(MasterKeyError):
        other.load()
    wrong = settings.model_copy(update={"master_key": SecretStr(b64url_encode(b"\x07" * 32))})
    second = Runtime(wrong, clock=runtime.clock)
    try:
        with pytest.raises(MasterKeyError):
            second.start(background=False)
    finally:
        second.stop()


def test_no_signing_key_means_no_token(runtime: Runtime, client: Client) -> None:
    runtime._keyring = KeyRing([], 0)  # simulate a ring with nothing active
    with pytest.raises(ServiceUnavailable, match="no signing key"):
        request_token(runtime, client)
    runtime.reload_keys()
    assert unverified_claims(request_token(runtime, client).access_token)["iss"] == runtime.issuer
