"""AuthZEN decisions on delegated tokens: the acting agent is the principal, the chain is context."""

from __future__ import annotations

from tessera.audit.service import RequestContext
from tessera.policy.authzen_requests import parse_evaluation
from tessera.policy.bundle import Bundle
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tests.unit.helpers import register, request_token
from tests.unit.policy.authzen_support import authzen_service
from tests.unit.tokens.exchange_helpers import exchange

ON_BEHALF = """
@id("read-only-on-behalf-of-the-planner")
permit (principal is Agent, action == Action::"read", resource is Resource)
when { context.delegation.depth == 1 && resource has owner && context.delegation.subject == resource.owner };
"""


def test_the_chain_reaches_the_pdp_and_the_actor_is_the_principal(runtime: Runtime) -> None:
    planner, helper = register(runtime), register(runtime)
    files = {**starter_bundle().files, "delegation.cedar": ON_BEHALF}
    runtime.policies.apply(Bundle(files), RequestContext())
    delegated = exchange(runtime, helper, request_token(runtime, planner).access_token).access_token
    own = request_token(runtime, helper).access_token
    service = authzen_service(runtime)

    def ask(principal: str, token: str) -> dict[str, object]:
        body = {
            "subject": {"type": "Agent", "id": principal},
            "action": {"name": "read"},
            "resource": {"type": "Resource", "id": "doc-1", "properties": {"owner": planner.id}},
            "context": {"access_token": token},
        }
        return service.evaluate(parse_evaluation(body), RequestContext())

    allowed = ask(helper.id, delegated)
    assert allowed["decision"] is True, allowed
    assert ask(helper.id, own)["decision"] is False
    # The token names the helper as its client: nobody else can present it as theirs.
    refused = ask(planner.id, delegated)
    assert refused["decision"] is False
    context = refused["context"]
    assert isinstance(context, dict)
    assert context["errors"] == ["access token subject does not match the request's subject"]
