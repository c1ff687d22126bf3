"""RFC 8693 §4.1 (``act``) and §4.4 (``may_act``) claim sets, rebuilt by real token exchanges.

Each chain starts from a person's token of a trusted issuer and is exchanged hop
by hop by registered agents; the issued token must have the RFC example's shape,
with the RFC's names mapped onto agent ids and the person's namespaced subject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tessera.errors import InvalidGrant
from tessera.runtime import Runtime
from tessera.tokens.introspection import Caller
from tests.unit.helpers import register, unverified_claims
from tests.unit.tokens.exchange_helpers import JWT_TOKEN_TYPE, PersonIssuer, exchange

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc8693_chains.json").read_text())


def renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: renamed(v, names) for k, v in value.items()}
    return names.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("case", VECTORS["chains"], ids=[c["source"] for c in VECTORS["chains"]])
def test_rfc_8693_act_chains(runtime: Runtime, case: dict[str, Any]) -> None:
    person = PersonIssuer(runtime)
    runtime.subject_verifiers.append(person.verifier())
    expected = case["expected"]
    audience = expected.get("aud", "https://crm.example/api")
    names = {case["subject"]: f"{person.issuer}#{case['subject']}"}
    token = person.token(case["subject"], aud=[runtime.issuer, audience])
    kind = JWT_TOKEN_TYPE
    for actor in case["chain"]:
        agent = register(runtime)
        names[actor] = agent.id
        issued = exchange(runtime, agent, token, subject_token_type=kind, audience=audience)
        token, kind = issued.access_token, "urn:ietf:params:oauth:token-type:access_token"
    claims = unverified_claims(token)
    assert claims["sub"] == renamed(expected["sub"], names)
    assert claims["act"] == renamed(expected["act"], names)
    assert claims["client_id"] == names[case["chain"][-1]]
    assert claims["aud"] == audience
    assert claims["iss"] == runtime.issuer
    introspected, _ = runtime.introspector.introspect(token, Caller(admin=True))
    assert introspected["act"] == claims["act"]
    assert introspected["delegation"]["actors"] == [names[a] for a in case["chain"]]


@pytest.mark.parametrize("case", VECTORS["may_act"], ids=[c["source"] for c in VECTORS["may_act"]])
def test_rfc_8693_may_act(runtime: Runtime, case: dict[str, Any]) -> None:
    person = PersonIssuer(runtime)
    runtime.subject_verifiers.append(person.verifier())
    allowed, intruder = register(runtime), register(runtime)
    names = {case["allowed"]: allowed.id, case["refused"]: intruder.id}
    example = case["subject_token"]
    token = person.token(example["sub"], may_act=renamed(example["may_act"], names))
    issued = exchange(runtime, allowed, token, subject_token_type=JWT_TOKEN_TYPE)
    assert unverified_claims(issued.access_token)["act"] == {"sub": allowed.id}
    with pytest.raises(InvalidGrant):
        exchange(runtime, intruder, token, subject_token_type=JWT_TOKEN_TYPE)
