"""Accounts for people: roles, argon2 passwords, TOTP second factor, personal API tokens.

Roles: ``admin`` (the admin API), ``approver`` (answers access requests) and
``auditor`` (reads the audit log and the requests). ``admin`` and ``approver``
must pass a TOTP code (RFC 6238, 30-second steps, six digits, ±1 step) to log
in; an accepted step is claimed in ``used_jtis``, so a code works once, on any
replica. Logging in returns a personal API token (``tsr_pat_…``) that is shown
once, stored as its SHA-256, expires, and can be revoked.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Engine, insert, select, update

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from tessera.ids import IdGenerator
from tessera.storage.database import reading, writing
from tessera.storage.single_use import AlreadyUsed, SqlSingleUseStore, single_use_key
from tessera.storage.tables import people, person_tokens
from tessera.tokens.sealing import Sealer, token_hash

ROLES = ("admin", "approver", "auditor")
TOTP_ROLES = frozenset({"admin", "approver"})
TOKEN_PREFIX = "tsr_pat_"
TOTP_STEP = 30
TOTP_WINDOW = 1
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,319}")
GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
ISSUER_NAME = "Tessera"
_HASHER = PasswordHasher()
#: Verified against when the username is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class _TotpRefused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    username: str
    role: str
    groups: tuple[str, ...]
    totp_enrolled: bool
    created_at: float
    disabled_at: float | None = None

    @property
    def actor(self) -> Actor:
        return Actor(ActorType.PERSON, self.username)

    def in_group(self, group: str) -> bool:
        """``user:<name>`` names one person; other names are groups."""
        if group.startswith("user:"):
            return group[5:].lower() == self.username.lower()
        return group in self.groups

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "groups": list(self.groups),
            "totp_enrolled": self.totp_enrolled,
            "created_at": self.created_at,
            "disabled": self.disabled_at is not None,
        }


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A new account or a TOTP reset: the ``otpauth://`` URI is shown once."""

    person: Person
    otpauth_uri: str | None


@dataclass(frozen=True, slots=True)
class PersonalToken:
    token: str
    id: str
    expires_at: float
    person: Person


def _person(row: Any) -> Person:
    return Person(
        id=row.id,
        username=row.username,
        role=row.role,
        groups=tuple(row.groups or ()),
        totp_enrolled=row.totp_sealed is not None,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def check_groups(groups: tuple[str, ...]) -> tuple[str, ...]:
    if len(groups) > 32:
        raise ValidationFailed("at most 32 groups")
    for group in groups:
        if not GROUP.fullmatch(group):
            raise ValidationFailed(f"group '{group[:60]}' must be 1-128 characters [A-Za-z0-9._:@-]")
    return tuple(dict.fromkeys(groups))


class PeopleService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        sealer: Sealer,
        auditor: Auditor,
        *,
        token_ttl: int,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._sealer = sealer
        self._auditor = auditor
        self._token_ttl = token_ttl
        self._single_use = SqlSingleUseStore()

    # --- accounts -------------------------------------------------------------------

    def _new_totp(self, person_id: str, username: str) -> tuple[bytes, str]:
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER_NAME)
        return self._sealer.seal(secret.encode(), f"totp|{person_id}".encode()), uri

    def create(
        self, username: str, role: str, password: str, groups: tuple[str, ...], context: RequestContext
    ) -> Enrolment:
        if not USERNAME.fullmatch(username):
            raise ValidationFailed(f"username '{username[:60]}' must be 1-320 characters [A-Za-z0-9._@+-]")
        if role not in ROLES:
            raise ValidationFailed(f"unknown role '{role[:20]}'; use one of {', '.join(ROLES)}")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise ValidationFailed(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
        groups = check_groups(groups)
        now = self._clock.now()
        person_id = self._ids.new("usr")
        sealed, uri = self._new_totp(person_id, username) if role in TOTP_ROLES else (None, None)
        with writing(self._engine) as conn:
            exists = conn.execute(select(people.c.id).where(people.c.username == username)).first()
            if exists is not None:
                raise Conflict(f"username '{username}' is taken")
            conn.execute(
                insert(people).values(
                    id=person_id,
                    username=username,
                    role=role,
                    groups=list(groups),
                    password_hash=_HASHER.hash(password),
                    totp_sealed=sealed,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._auditor.record_in(
                conn,
                event(
                    "person.created",
                    context,
                    subject=username,
                    data={"role": role, "groups": list(groups), "totp": sealed is not None},
                ),
            )
        return Enrolment(self.get(username), uri)

    def list(self) -> list[Person]:
        with reading(self._engine) as conn:
            rows = conn.execute(select(people).order_by(people.c.username)).all()
        return [_person(r) for r in rows]

    def find(self, username: str) -> Person | None:
        with reading(self._engine) as conn:
            row = conn.execute(select(people).where(people.c.username == username)).first()
        return _person(row) if row is not None else None

    def get(self, username: str) -> Person:
        person = self.find(username)
        if person is None:
            raise NotFound(f"no person '{username[:80]}'")
        return person

    def disable(self, username: str, context: RequestContext) -> Person:
        """Disable the account and revoke its personal tokens, in one transaction."""
        now = self._clock.now()
        person = self.get(username)
        with writing(self._engine) as conn:
            conn.execute(
                update(people).where(people.c.id == person.id).values(disabled_at=now, updated_at=now)
            )
            revoked = conn.execute(
                update(person_tokens)
                .where(person_tokens.c.person_id == person.id, person_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            self._auditor.record_in(
                conn, event("person.disabled", context, subject=username, data={"revoked_tokens": revoked})
            )
        return self.get(username)

    def reset_totp(self, username: str, context: RequestContext) -> Enrolment:
        person = self.get(username)
        if person.role not in TOTP_ROLES:
            raise ValidationFailed(f"role '{person.role}' does not use totp")
        sealed, uri = self._new_totp(person.id, person.username)
        now = self._clock.now()
        with writing(self._engine) as conn:
            conn.execute(
                update(people).where(people.c.id == person.id).values(totp_sealed=sealed, updated_at=now)
            )
            conn.execute(
                update(person_tokens)
                .where(person_tokens.c.person_id == person.id, person_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            self._auditor.record_in(conn, event("person.totp_reset", context, subject=username))
        return Enrolment(self.get(username), uri)

    # --- login and personal tokens ---------------------------------------------------

    def _check_totp(self, person_id: str, sealed: bytes, code: str, now: float) -> int:
        """RFC 6238 §5.2: accept ±``TOTP_WINDOW`` steps; return the matched step (or -1)."""
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            return -1
        totp = pyotp.TOTP(self._sealer.open(sealed, f"totp|{person_id}".encode()).decode())
        step = int(now) // TOTP_STEP
        for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
            if hmac.compare_digest(totp.at((step + offset) * TOTP_STEP), code):
                return step + offset
        return -1

    def _claim_totp(self, conn: Connection, person_id: str, sealed: bytes, code: str, now: float) -> None:
        step = self._check_totp(person_id, sealed, code, now)
        if step < 0:
            raise _TotpRefused("wrong totp code")
        try:
            key = single_use_key("totp", person_id, str(step))
            self._single_use.claim(conn, key, (step + TOTP_WINDOW + 2) * TOTP_STEP)
        except AlreadyUsed:
            raise _TotpRefused("totp code already used") from None

    def login(self, username: str, password: str, totp: str | None, ip: str | None) -> PersonalToken:
        """Password, then TOTP where the role needs it; any failure is the same 401."""
        now = self._clock.now()
        refused = Unauthorized("invalid username, password or totp code")
        context = RequestContext(Actor(ActorType.PERSON, username[:320]), ip=ip)
        with reading(self._engine) as conn:
            row = conn.execute(select(people).where(people.c.username == username)).first()
        try:
            _HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password[:MAX_PASSWORD])
            password_ok = row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            password_ok = False
        reason = None
        if not password_ok or row is None:
            reason = "bad username or password"
        elif row.disabled_at is not None:
            reason = "account disabled"
        elif row.role in TOTP_ROLES and row.totp_sealed is None:
            reason = "totp not enrolled"
        if reason is not None or row is None:
            self._auditor.record_async(
                event("person.login_failed", context, subject=username[:320], reason=reason)
            )
            raise refused
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = self._ids.new("pat")
        expires = now + self._token_ttl
        try:
            with writing(self._engine) as conn:
                if row.role in TOTP_ROLES:
                    self._claim_totp(conn, row.id, row.totp_sealed, totp or "", now)
                conn.execute(
                    insert(person_tokens).values(
                        id=token_id,
                        token_hash=token_hash(token),
                        person_id=row.id,
                        created_at=now,
                        expires_at=expires,
                    )
                )
                self._auditor.record_in(
                    conn,
                    event(
                        "person.login",
                        context,
                        subject=username,
                        data={"token_id": token_id, "expires_at": expires},
                    ),
                )
        except _TotpRefused as exc:
            # Recorded after the transaction ends: the writer must not wait on this one's lock.
            self._auditor.record_async(
                event("person.login_failed", context, subject=username, reason=str(exc))
            )
            raise refused from None
        return PersonalToken(token, token_id, expires, _person(row))

    def verify_token(self, token: str | None) -> Person | None:
        """The live, enabled person a personal token belongs to, or ``None``."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = self._clock.now()
        with reading(self._engine) as conn:
            row = conn.execute(
                select(people)
                .join(person_tokens, person_tokens.c.person_id == people.c.id)
                .where(
                    person_tokens.c.token_hash == token_hash(token),
                    person_tokens.c.revoked_at.is_(None),
                    person_tokens.c.expires_at > now,
                    people.c.disabled_at.is_(None),
                )
            ).first()
        return _person(row) if row is not None else None

    def logout(self, token: str, context: RequestContext) -> bool:
        now = self._clock.now()
        with writing(self._engine) as conn:
            count = conn.execute(
                update(person_tokens)
                .where(person_tokens.c.token_hash == token_hash(token), person_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if count:
                self._auditor.record_in(conn, event("person.logout", context, subject=context.actor.id))
        return bool(count)
