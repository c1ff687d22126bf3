"""An agent: get a task-bound, DPoP-bound token from Tessera and call a resource server with it.

After the README tutorial (which wrote ``agent.jwk`` and set ``$AGENT``), with
``examples/resource_server.py`` running:

    .venv/bin/python examples/agent.py $AGENT agent.jwk
"""

from __future__ import annotations

import json
import os
import sys

import httpx

from tessera.sdk import AgentClient
from tessera.sdk.agent import TokenError

TESSERA_URL = os.environ.get("TESSERA_URL", "http://127.0.0.1:8400")
RESOURCE_URL = os.environ.get("RESOURCE_URL", "http://127.0.0.1:8500")


def main(agent_id: str, key_path: str) -> int:
    with open(key_path) as handle:
        private_jwk = json.load(handle)
    client = AgentClient(TESSERA_URL, agent_id, private_jwk)  # DPoP on by default
    try:
        token = client.fetch_token(
            scope="tickets:read",
            resources=[RESOURCE_URL],  # becomes the token's aud
            task={"task_id": "T-1", "purpose": "triage", "actions": ["read"]},
            expires_in=120,
        )
    except TokenError as exc:
        print(f"no token: {exc}", file=sys.stderr)
        return 1
    print(f"got a {token.token_type} token for {token.expires_in}s, scope '{token.scope}'")
    # A fresh DPoP proof (htm, htu, ath) is made for each request.
    response = client.request("GET", f"{RESOURCE_URL}/tickets", token)
    print(response.status_code, response.text)
    # The token alone is worth nothing: without a proof signed by the agent's key it is refused.
    stolen = httpx.get(f"{RESOURCE_URL}/tickets", headers={"Authorization": f"DPoP {token.access_token}"})
    print("token without proof:", stolen.status_code, stolen.headers.get("www-authenticate"))
    client.close()
    return 0 if response.status_code == 200 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: agent.py AGENT_ID PRIVATE_JWK_FILE")
    sys.exit(main(sys.argv[1], sys.argv[2]))
