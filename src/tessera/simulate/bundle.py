"""The simulated organisation's policy bundle: the starter schema and guardrails, plus its own rules.

Access narrows as ``context.risk`` rises, by policy alone: sensitive resources
need a low risk, writes a moderate one, and an agent at elevated risk keeps only
the resources its task declared. The starter guardrails stop everything at 80
and every agent that is not active (quarantined, suspended).
"""

from __future__ import annotations

from tessera.policy.service import starter_bundle

SIMULATION_POLICIES = """\
// The simulated organisation. Agents read and list within their own segment (and
// what another segment shares with theirs); agents tagged writer=yes also write.
@id("sim-read-own-segment")
permit (
  principal is Agent,
  action in [Action::"read", Action::"list"],
  resource is Resource
)
when {
  resource has segment &&
  (resource.segment == principal.segment ||
   (resource has shared_with_segments && resource.shared_with_segments.contains(principal.segment)))
};

@id("sim-writers-write-own-segment")
permit (principal is Agent, action == Action::"write", resource is Resource)
when {
  principal.hasTag("writer") && principal.getTag("writer") == "yes" &&
  resource has segment && resource.segment == principal.segment
};

// Sensitive resources only from the organisation's own networks.
@id("sim-sensitive-from-own-networks")
forbid (principal is Agent, action, resource is Resource)
when {
  resource has classification && resource.classification == "sensitive" &&
  !["corporate", "cloud"].contains(context.network_zone)
};

// Access narrows as risk rises.
@id("sim-risk-sensitive")
forbid (principal is Agent, action, resource is Resource)
when { resource has classification && resource.classification == "sensitive" && context.risk >= 40 };

@id("sim-risk-writes")
forbid (principal is Agent, action in [Action::"write", Action::"delete"], resource)
when { context.risk >= 50 };

@id("sim-risk-task-only")
forbid (principal is Agent, action, resource is Resource)
when { context.risk >= 50 }
unless { resource has uri && context.task_resources.contains(resource.uri) };
"""

#: Policies whose deny is the response to risk or to a playbook (quarantine), not
#: the organisation's standing rules: a denial they determine counts as a response.
RESPONSE_POLICIES = frozenset(
    {
        "forbid-high-risk",
        "forbid-inactive-agents",
        "sim-risk-sensitive",
        "sim-risk-writes",
        "sim-risk-task-only",
    }
)
STARTER_FILES = ("guardrails.cedar", "tokens.cedar")
SCOPE = "work"


def simulation_bundle() -> dict[str, str]:
    """The files to apply with ``POST /admin/v1/policies``."""
    starter = starter_bundle().files
    files = {
        name: content for name, content in starter.items() if name in STARTER_FILES or name.endswith("schema")
    }
    files["simulation.cedar"] = SIMULATION_POLICIES
    return files
