"""Fixtures for just-in-time access: the payments example bundle, a payments agent, people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.identity.people import Person
from tessera.identity.service import NewAgent
from tessera.policy.authzen import AuthZenService
from tessera.policy.authzen_requests import parse_evaluation
from tessera.policy.bundle import load_bundle
from tessera.policy.decisions import Question
from tessera.runtime import Runtime
from tessera.sdk.proofs import generate_private_jwk, public_jwk
from tessera.tokens.grants.ciba import GRANT_TYPE
from tessera.tokens.issuer import IssuedToken
from tests.unit.helpers import Client, assertion, client_auth, register, token_request

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "payments-approvals"
PASSWORD = "correct horse battery"
OWNER = "olivia@example.com"


@dataclass
class Staff:
    """A person with the secret of their TOTP app, so tests can log in."""

    person: Person
    totp_secret: str | None

    def code(self, clock: ManualClock, offset: int = 0) -> str:
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).at(clock.now() + offset * 30)


def add_person(runtime: Runtime, username: str, role: str, *groups: str) -> Staff:
    enrolment = runtime.people.create(username, role, PASSWORD, tuple(groups), RequestContext())
    secret = pyotp.parse_uri(enrolment.otpauth_uri).secret if enrolment.otpauth_uri else None
    return Staff(enrolment.person, secret)


@pytest.fixture
def payments(runtime: Runtime) -> Runtime:
    """The runtime with the payments example bundle active."""
    runtime.policies.apply(load_bundle(EXAMPLE), RequestContext())
    return runtime


@pytest.fixture
def pay_bot(payments: Runtime) -> Client:
    jwk = generate_private_jwk("ES256")
    agent = payments.agents.create(
        NewAgent(
            name="pay-bot",
            owner=OWNER,
            scopes=("access:request", "payments:write"),
            attributes={"role": "payments"},
            segment="payments",
            jwks=(public_jwk(jwk),),
        )
    )
    return Client(agent, jwk)


@pytest.fixture
def ops_bot(payments: Runtime) -> Client:
    return register(payments, scopes=("access:request",), attributes={"role": "operator"}, segment="payments")


@pytest.fixture
def alice(payments: Runtime) -> Staff:
    return add_person(payments, "alice@example.com", "approver", "payments-approvers", "data-owners")


@pytest.fixture
def bob(payments: Runtime) -> Staff:
    return add_person(payments, "bob@example.com", "approver", "payments-approvers", "data-owners")


def payment(agent_id: str, amount: int, payee: str = "acme", **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"type": "Agent", "id": agent_id},
        "action": {"name": "pay"},
        "resource": {"type": "Resource", "id": "acct-ops"},
        "context": {"amount": amount, "payee": payee, **extra},
    }


def question(runtime: Runtime, body: dict[str, Any]) -> Question:
    return AuthZenService(runtime.decisions, runtime.entities).question(parse_evaluation(body))


def ask(runtime: Runtime, client: Client, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``POST /access/v1/requests`` as the route does it; returns the CIBA acknowledgement."""
    opened = runtime.action_requests.ask(
        client.agent,
        question(runtime, body),
        task_id=options.pop("task_id", "T-1"),
        purpose=options.pop("purpose", "pay the acme invoice"),
        duration=options.pop("duration", None),
        audience=options.pop("audience", ()),
        callback_token=options.pop("callback_token", None),
        context=RequestContext(),
    )
    return opened.response(runtime.clock.now())


def poll(runtime: Runtime, client: Client, auth_req_id: str) -> IssuedToken:
    """The agent polls the token endpoint with the CIBA grant (CIBA §10.1)."""
    form = [
        ("grant_type", GRANT_TYPE),
        ("auth_req_id", auth_req_id),
        *client_auth(assertion(runtime, client)),
    ]
    return runtime.token_endpoint.handle(token_request(runtime, form))


def evaluate(runtime: Runtime, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """An AuthZEN evaluation as a PEP asks it, with the agent's token in the context."""
    service = AuthZenService(runtime.decisions, runtime.entities, check_token=runtime.validator.verify)
    if token is not None:
        body = {**body, "context": {**body["context"], "access_token": token}}
    return service.evaluate(parse_evaluation(body), RequestContext())
