"""The server's signing keys: creation, scheduled rotation, emergency retirement, JWKS.

A key's life (RFC 7517 key sets, RFC 8414 §2 ``jwks_uri``):

1. created and published in the JWKS at once, but ``activates_at`` lies
   ``publish_delay`` seconds ahead, so caches learn it before it signs anything;
2. signs from ``activates_at`` until the next key activates (``deactivated_at``);
3. keeps verifying, and stays in the JWKS, until every token it signed has
   expired (``deactivated_at + max_token_ttl + leeway``);
4. or is retired in an emergency: gone from the JWKS and every token it signed
   stops verifying at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import Connection, Engine

from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import NotFound
from tessera.events.change_feed import publish
from tessera.storage.database import reading, writing
from tessera.storage.signing_keys import SqlSigningKeyStore, StoredSigningKey
from tessera.tokens.sealing import Sealer

SIGNING_ALG = "ES256"
ROTATION_LOCK = "signing-key-rotation"
KEYS_CHANGED = "keys"
_SYSTEM = RequestContext()


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_key: ECKey
    public_key: ECKey
    public_jwk: dict[str, Any]
    created_at: float
    activates_at: float
    deactivated_at: float | None
    retired_at: float | None

    def signs_at(self, now: float) -> bool:
        return (
            self.retired_at is None
            and self.activates_at <= now
            and (self.deactivated_at is None or now < self.deactivated_at)
        )

    def verifies_at(self, now: float, grace: float) -> bool:
        if self.retired_at is not None:
            return False
        return self.deactivated_at is None or now < self.deactivated_at + grace

    @property
    def superseded(self) -> bool:
        """Stepped down before it ever signed (a later rotation overtook it)."""
        return self.deactivated_at is not None and self.deactivated_at <= self.activates_at

    def pending_at(self, now: float) -> bool:
        """Published, and will sign once ``activates_at`` comes."""
        return self.retired_at is None and not self.superseded and self.activates_at > now

    def state_at(self, now: float, grace: float) -> str:
        if self.retired_at is not None:
            return "retired"
        if self.signs_at(now):
            return "active"
        if self.pending_at(now):
            return "pending"
        if self.superseded:
            return "superseded"
        if self.verifies_at(now, grace):
            return "verifying"
        return "expired"


class KeyRing:
    """An immutable snapshot of the signing keys; swapped whole on change."""

    def __init__(self, keys: list[SigningKey], grace: float) -> None:
        self._keys = keys
        self._by_kid = {key.kid: key for key in keys}
        self._grace = grace

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._keys)

    def signing_key(self, now: float) -> SigningKey | None:
        candidates = [key for key in self._keys if key.signs_at(now)]
        return max(candidates, key=lambda k: k.activates_at) if candidates else None

    def verification_key(self, kid: str, now: float) -> SigningKey | None:
        key = self._by_kid.get(kid)
        if key is None or not key.verifies_at(now, self._grace):
            return None
        return key

    def jwks(self, now: float) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [dict(k.public_jwk) for k in self._keys if k.verifies_at(now, self._grace)]}

    def state(self, key: SigningKey, now: float) -> str:
        return key.state_at(now, self._grace)


class SigningKeyManager:
    """Creates, rotates and retires keys in the database; builds :class:`KeyRing` snapshots."""

    def __init__(
        self,
        engine: Engine,
        sealer: Sealer,
        clock: Clock,
        *,
        rotation_interval: float,
        publish_delay: float,
        verify_grace: float,
        auditor: Auditor | None = None,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._clock = clock
        self._store = SqlSigningKeyStore()
        self._rotation_interval = rotation_interval
        self._publish_delay = publish_delay
        self._grace = verify_grace
        self._auditor = auditor

    def _audit(self, conn: Connection, type_: str, context: RequestContext, kid: str, **data: Any) -> None:
        if self._auditor is not None:
            self._auditor.record_in(conn, event(type_, context, data={"kid": kid, **data}))

    def load(self) -> KeyRing:
        with reading(self._engine) as conn:
            stored = self._store.all(conn)
        return KeyRing([self._unseal(s) for s in stored], self._grace)

    def _unseal(self, stored: StoredSigningKey) -> SigningKey:
        private_jwk = json.loads(self._sealer.open(stored.private_jwk_sealed, stored.kid.encode()))
        private_key = ECKey.import_key(private_jwk)
        return SigningKey(
            kid=stored.kid,
            alg=stored.alg,
            private_key=private_key,
            public_key=ECKey.import_key(dict(stored.public_jwk)),
            public_jwk=dict(stored.public_jwk),
            created_at=stored.created_at,
            activates_at=stored.activates_at,
            deactivated_at=stored.deactivated_at,
            retired_at=stored.retired_at,
        )

    def _new_key(self, now: float, activates_at: float) -> StoredSigningKey:
        key = ECKey.generate_key("P-256")
        kid = key.thumbprint()
        public = {k: str(v) for k, v in key.as_dict(private=False).items()}
        public.update(kid=kid, alg=SIGNING_ALG, use="sig")
        sealed = self._sealer.seal(json.dumps(key.as_dict(private=True)).encode(), kid.encode())
        return StoredSigningKey(kid, SIGNING_ALG, public, sealed, now, activates_at, None, None)

    def ensure_signing_key(self) -> bool:
        """Make sure a key signs now, and that a successor is lined up if the signer is stepping down.

        - nothing signs (first start, or the signer was retired): a key that signs at once,
          until a pending rotation's key takes over if there is one;
        - the signer is stepping down for a pending key that was then retired: a successor,
          published now, that signs from the moment the signer stops.
        """
        now = self._clock.now()
        with writing(self._engine) as conn:
            self._store.lock(conn, ROTATION_LOCK, now)
            ring = KeyRing([self._unseal(s) for s in self._store.all(conn)], self._grace)
            signer = ring.signing_key(now)
            pending = sorted(k.activates_at for k in ring.keys if k.pending_at(now))
            if signer is None:
                new = self._new_key(now, now)
                if pending:
                    new = replace(new, deactivated_at=pending[0])
            elif signer.deactivated_at is not None and not pending:
                new = self._new_key(now, signer.deactivated_at)
            else:
                return False
            self._store.add(conn, new)
            publish(conn, KEYS_CHANGED, "signing-keys", {"reason": "initial"}, now)
            self._audit(conn, "key.created", _SYSTEM, new.kid, activates_at=new.activates_at)
        return True

    def rotate(self, *, immediate: bool = False, context: RequestContext | None = None) -> str:
        """Add a new key; it signs after the publish delay (or at once), and the old one stops then."""
        now = self._clock.now()
        activates_at = now if immediate else now + self._publish_delay
        with writing(self._engine) as conn:
            self._store.lock(conn, ROTATION_LOCK, now)
            stored = self._store.all(conn)
            new = self._new_key(now, activates_at)
            for old in stored:
                if old.retired_at is None and (
                    old.deactivated_at is None or old.deactivated_at > activates_at
                ):
                    self._store.deactivate(conn, old.kid, activates_at)
            self._store.add(conn, new)
            publish(conn, KEYS_CHANGED, new.kid, {"reason": "rotated", "activates_at": activates_at}, now)
            self._audit(conn, "key.rotated", context or _SYSTEM, new.kid, activates_at=activates_at)
        return new.kid

    def rotate_if_due(self) -> str | None:
        """Scheduled rotation: rotate once the signing key is older than the interval."""
        now = self._clock.now()
        ring = self.load()
        current = ring.signing_key(now)
        if current is None:
            self.ensure_signing_key()
            return None
        if any(k.pending_at(now) for k in ring.keys):
            return None
        if now - current.activates_at < self._rotation_interval:
            return None
        with writing(self._engine) as conn:
            self._store.lock(conn, ROTATION_LOCK, now)
            # Re-check under the lock: another replica may have rotated meanwhile.
            fresh = KeyRing([self._unseal(s) for s in self._store.all(conn)], self._grace)
            latest = fresh.signing_key(now)
            if latest is None or latest.kid != current.kid or any(k.pending_at(now) for k in fresh.keys):
                return None
        return self.rotate()

    def retire(self, kid: str, context: RequestContext | None = None) -> None:
        """Emergency retirement: the key leaves the JWKS and its tokens stop verifying now."""
        now = self._clock.now()
        with writing(self._engine) as conn:
            self._store.lock(conn, ROTATION_LOCK, now)
            if not self._store.retire(conn, kid, now):
                known = {k.kid for k in self._store.all(conn)}
                if kid not in known:
                    raise NotFound(f"no signing key with kid '{kid}'")
                return
            publish(conn, KEYS_CHANGED, kid, {"reason": "retired"}, now)
            self._audit(conn, "key.retired", context or _SYSTEM, kid)
        self.ensure_signing_key()
