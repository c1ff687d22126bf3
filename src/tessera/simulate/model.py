"""What a simulation is made of: the fleet, its resources, and labelled requests.

Everything here is plain data. :mod:`tessera.simulate.fleet` builds a fleet,
:mod:`tessera.simulate.traffic` turns it into a time-ordered list of labelled
requests, :mod:`tessera.simulate.driver` sends them to a server and
:mod:`tessera.simulate.metrics` scores what the server did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Label(StrEnum):
    """What a request really is; only the simulator knows."""

    NORMAL = "normal"
    DRIFT = "drift"  # legitimate: a resource added by registration mid-run
    ATTACK = "attack"


class AttackKind(StrEnum):
    STOLEN_TOKEN = "stolen_token"  # the agent's token used from a network zone it never used
    EXFILTRATION = "exfiltration"  # prompt-injected reads of sensitive resources outside the task
    PRIVILEGE_PROBING = "privilege_probing"  # a burst of actions the agent may not take
    RUNAWAY_LOOP = "runaway_loop"  # the same work repeated at many times the usual rate
    LATERAL_MOVEMENT = "lateral_movement"  # reaching into other segments' resources


#: The network zones of the simulated world (``TESSERA_NETWORK_ZONES``), CIDR → zone.
NETWORK_ZONES: dict[str, str] = {
    "10.10.0.0/16": "corporate",
    "10.20.0.0/16": "cloud",
    "10.30.0.0/16": "partner",
}
#: Where attackers come from: a documentation range in no configured zone ("unknown").
OUTSIDE_NETWORK = "198.51.100.0/24"


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A resource registered with the server (``POST /admin/v1/resources``)."""

    id: str
    segment: str
    kind: str
    classification: str  # "internal" or "sensitive"
    uri: str
    shared_with: tuple[str, ...] = ()

    @property
    def sensitive(self) -> bool:
        return self.classification == "sensitive"

    def attributes(self) -> dict[str, object]:
        attrs: dict[str, object] = {
            "segment": self.segment,
            "kind": self.kind,
            "classification": self.classification,
            "uri": self.uri,
        }
        if self.shared_with:
            attrs["shared_with_segments"] = list(self.shared_with)
        return attrs


@dataclass(slots=True)
class AgentSpec:
    """One simulated agent: who it is, and the habits its normal traffic follows."""

    name: str
    owner: str
    segment: str
    role: str
    writer: bool  # the policy lets writers write
    client_ip: str
    start_hour: int  # working hours [start_hour, start_hour + hours) UTC; batch agents work 24 h
    hours: int
    rate_per_hour: float
    working_set: list[str]  # resource ids, most used first
    actions: dict[str, float]  # action → weight
    batch: bool = False
    #: The id the server gave the agent (set by the driver after registration).
    agent_id: str = ""

    def works_at(self, hour: int) -> bool:
        if self.batch:
            return True
        return (hour - self.start_hour) % 24 < self.hours


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One authorization request a PEP asks about, with the truth about it."""

    at: float  # simulated seconds since the start of the run
    agent: int  # index into the fleet's agents
    action: str
    resource: str  # resource id
    client_ip: str
    label: Label
    attack: AttackKind | None = None
    attack_id: int | None = None  # index into the scenario's attacks


@dataclass(frozen=True, slots=True)
class Attack:
    """One attack on one agent: its kind and when it runs."""

    kind: AttackKind
    agent: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A resource registered mid-run and added to an agent's working set (legitimate)."""

    at: float
    agent: int
    resource: ResourceSpec


@dataclass
class Fleet:
    agents: list[AgentSpec]
    resources: dict[str, ResourceSpec]  # id → resource, registered before the run
    segments: tuple[str, ...]

    def in_segment(self, segment: str) -> list[ResourceSpec]:
        return [r for r in self.resources.values() if r.segment == segment]


@dataclass
class Scenario:
    """A whole run: the fleet, the labelled requests in time order, attacks and drift."""

    fleet: Fleet
    requests: list[SimRequest]
    attacks: list[Attack]
    drift: list[DriftEvent]
    start_epoch: float  # simulated wall-clock time of ``at == 0``
    duration: float
    stats: dict[str, int] = field(default_factory=dict)

    def attacked_agents(self) -> set[int]:
        return {attack.agent for attack in self.attacks}


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """The knobs of a run; the defaults are the documented default run."""

    seed: int = 7
    agents: int = 40
    days: float = 3.0
    segments: tuple[str, ...] = ("payments", "research", "support", "operations")
    resources_per_segment: int = 28
    attacks_per_kind: int = 4
    #: Attacks start after this many simulated days (the agents' learning period).
    attacks_after_days: float = 1.0
    #: Share of the remaining agents that take on a newly registered resource mid-run.
    drift_share: float = 0.3
    #: Simulated start: Monday 2026-03-02 00:00 UTC.
    start_epoch: float = 1_772_409_600.0
    token_lifetime: int = 3600
