"""Replays a scenario against a server over HTTP and records what the server answered.

Setup registers the simulated organisation (policy bundle, resources, agents with
keys). Then, in time order: drift registers new resources; each agent fetches a
token for its task when it has none (or its task changed); a PEP asks AuthZEN
about each request; the agent's risk is read back after each of its requests.
A stolen token is the victim's token as it was when the attack began.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessera.simulate.api import Answer, TesseraApi, Token
from tessera.simulate.bundle import RESPONSE_POLICIES, SCOPE, simulation_bundle
from tessera.simulate.model import AgentSpec, AttackKind, Scenario, SimRequest

SAMPLE_EVERY = 4  # a quiet agent's risk is read after every 4th request
NEAR_ATTACK = 3600.0  # ... and after every request within an hour of an attack on it
WATCH_INTERVAL = 600.0  # the watched agent's risk is also read this often (simulated seconds)
TOKEN_MARGIN = 60.0  # refresh a token this long before it expires
REFUSED_RETRY = 600.0  # an agent refused a token tries again after this many simulated seconds
NO_TOKEN = "no token: the token endpoint refused the agent"


class SimulatedTime(Protocol):
    """The server's clock as the simulator sees it: moved by it, or the real one."""

    def now(self) -> float: ...

    def advance_to(self, epoch: float) -> None: ...

    def settle(self) -> None: ...


class RealTime:
    """``--url``: the server keeps its own clock, the real one.

    The timeline is replayed at ``speed`` simulated seconds per real second (1 is
    real time); 0 sends every request as soon as the last was answered. Above 1 the
    server sees the agents' rhythm compressed: their rates really are higher.
    """

    def __init__(
        self,
        speed: float = 1.0,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self._now = now
        self._sleep = sleep
        self._origin: tuple[float, float] | None = None  # (simulated epoch, real time) at the start

    def now(self) -> float:
        return self._now()

    def advance_to(self, epoch: float) -> None:
        if self._origin is None:
            self._origin = (epoch, self._now())
            return
        if self.speed <= 0:
            return
        simulated, real = self._origin
        delay = real + (epoch - simulated) / self.speed - self._now()
        if delay > 0:
            self._sleep(delay)

    def settle(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request, as the PEP saw it, and the agent's risk right after."""

    allowed: bool
    response: bool  # denied by a risk rule, a quarantine or a revoked token
    policies: tuple[str, ...]
    error: str
    risk: int
    at: float  # simulated seconds since the start


@dataclass
class RunRecord:
    outcomes: list[Outcome]
    risk_trace: dict[int, list[tuple[float, int]]]  # agent → (simulated seconds, score)
    final_states: dict[int, str]
    agent_ids: list[str]
    lagged: int = 0
    token_refusals: int = 0
    risk_readings: int = 0


@dataclass
class _Session:
    spec: AgentSpec
    agent_id: str
    private_jwk: dict[str, Any]
    token: Token | None = None
    refused_until: float = -math.inf
    tasks: int = 0
    requests: int = 0
    last_risk: int = 0
    extra_resources: list[str] = field(default_factory=list)


class Driver:
    def __init__(
        self,
        api: TesseraApi,
        clock: SimulatedTime,
        scenario: Scenario,
        *,
        token_lifetime: int = 3600,
        watch: int | None = None,
    ):
        self.api = api
        self.watch = watch
        self.clock = clock
        self.scenario = scenario
        self.token_lifetime = token_lifetime
        self._sessions: list[_Session] = []
        self._stolen: dict[int, Token | None] = {}
        self._refusals = 0
        self._readings = 0
        self._windows: dict[int, list[tuple[float, float]]] = {}
        for attack in scenario.attacks:
            self._windows.setdefault(attack.agent, []).append((attack.start, attack.end))

    def _epoch(self, at: float) -> float:
        return self.scenario.start_epoch + at

    def setup(self) -> None:
        fleet = self.scenario.fleet
        self.clock.advance_to(self._epoch(0.0))
        self.api.apply_bundle(simulation_bundle(), note="tessera simulate")
        for resource in fleet.resources.values():
            self.api.put_resource(resource.id, resource.attributes())
        for spec in fleet.agents:
            agent_id, private = self.api.create_agent(
                {
                    "name": spec.name,
                    "owner": spec.owner,
                    "segment": spec.segment,
                    "attributes": {"role": spec.role, "writer": "yes" if spec.writer else "no"},
                    "scopes": [SCOPE],
                    "max_ttl": self.token_lifetime,
                }
            )
            spec.agent_id = agent_id
            self._sessions.append(_Session(spec, agent_id, private))

    def run(self, progress: Callable[[int], None] | None = None) -> RunRecord:
        scenario = self.scenario
        drift = sorted(scenario.drift, key=lambda d: d.at)
        outcomes: list[Outcome] = []
        trace: dict[int, list[tuple[float, int]]] = {i: [] for i in range(len(self._sessions))}
        for n, request in enumerate(scenario.requests):
            while drift and drift[0].at <= request.at:
                event = drift.pop(0)
                self.clock.advance_to(self._epoch(event.at))
                self.api.put_resource(event.resource.id, event.resource.attributes())
                session = self._sessions[event.agent]
                session.extra_resources.append(event.resource.id)
                session.token = None  # the task now declares the new resource: a new token
            if self.watch is not None:
                self._sample(trace[self.watch], request.at)
            self.clock.advance_to(self._epoch(request.at))
            answer = self._ask(request)
            self.clock.settle()
            risk = self._read_risk(request, answer)
            trace[request.agent].append((request.at, risk))
            response = not answer.allowed and (
                bool(RESPONSE_POLICIES.intersection(answer.policies)) or bool(answer.error or answer.errors)
            )
            outcomes.append(
                Outcome(answer.allowed, response, answer.policies, answer.error, risk, request.at)
            )
            if progress is not None:
                progress(n + 1)
        states = self.api.agent_states()
        return RunRecord(
            outcomes=outcomes,
            risk_trace=trace,
            final_states={i: states.get(s.agent_id, "") for i, s in enumerate(self._sessions)},
            agent_ids=[s.agent_id for s in self._sessions],
            token_refusals=self._refusals,
            risk_readings=self._readings,
        )

    def _read_risk(self, request: SimRequest, answer: Answer) -> int:
        """The agent's risk after ``request``: read from the server whenever it can have moved.

        Always near an attack on the agent, for the watched agent, after a denial and
        while the last reading was above zero; otherwise every ``SAMPLE_EVERY``-th
        request (a quiet agent's score is 0 and stays there until a detector fires,
        after which it is read on every request until it has decayed back to 0).
        """
        session = self._sessions[request.agent]
        session.requests += 1
        near_attack = any(
            start - NEAR_ATTACK <= request.at <= end + NEAR_ATTACK
            for start, end in self._windows.get(request.agent, ())
        )
        if (
            near_attack
            or request.agent == self.watch
            or not answer.allowed
            or session.last_risk > 0
            or session.requests % SAMPLE_EVERY == 0
        ):
            session.last_risk = self.api.risk(session.agent_id).score
            self._readings += 1
        return session.last_risk

    def _sample(self, points: list[tuple[float, int]], until: float) -> None:
        """Read the watched agent's risk every ``WATCH_INTERVAL`` between requests (it decays)."""
        if self.watch is None:
            return
        last = points[-1][0] if points else 0.0
        at = (last // WATCH_INTERVAL + 1) * WATCH_INTERVAL
        while at < until:
            self.clock.advance_to(self._epoch(at))
            points.append((at, self.api.risk(self._sessions[self.watch].agent_id).score))
            at += WATCH_INTERVAL

    def _ask(self, request: SimRequest) -> Answer:
        session = self._sessions[request.agent]
        if request.attack is AttackKind.STOLEN_TOKEN and request.attack_id is not None:
            if request.attack_id not in self._stolen:
                self._stolen[request.attack_id] = self._token(session)
            token = self._stolen[request.attack_id]
        else:
            token = self._token(session)
        if token is None:
            return Answer(False, (), NO_TOKEN)
        answer = self.api.evaluate(
            session.agent_id, request.action, request.resource, token.value, request.client_ip
        )
        if answer.error and token is session.token:
            session.token = None  # revoked: the agent asks for a new one next time
        return answer

    def _token(self, session: _Session) -> Token | None:
        now = self.clock.now()
        token = session.token
        # Refresh a little before expiry (a fifth of a short token's life: playbooks may cap it).
        if token is not None and token.expires_at - min(TOKEN_MARGIN, token.lifetime / 5) > now:
            return token
        if now < session.refused_until:
            return None
        session.tasks += 1
        spec = session.spec
        resources = list(dict.fromkeys([*spec.working_set, *session.extra_resources]))[:32]
        task = {
            "scope": SCOPE,
            "task_id": f"{spec.name}-task-{session.tasks}",
            "purpose": f"{spec.role} work for {spec.segment}",
            "resources": resources,
        }
        fetched = self.api.fetch_token(session.agent_id, session.private_jwk, task, self.token_lifetime)
        if isinstance(fetched, str):
            self._refusals += 1
            session.token = None
            session.refused_until = now + REFUSED_RETRY
            return None
        session.token = fetched
        return fetched
