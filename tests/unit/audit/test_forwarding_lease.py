"""One replica forwards at a time, from a cursor every replica shares and restarts keep."""

from __future__ import annotations

from tessera.audit.forwarder import AuditForwarder
from tessera.audit.records import AuditRecord
from tessera.clock import ManualClock
from tessera.identity.agents import Transition
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tests.unit.audit.helpers import fill

LEASE = 10.0


class Collecting:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def deliver(self, records: list[AuditRecord]) -> None:
        self.ids.extend(r.id for r in records)


def forwarder(runtime: Runtime, clock: ManualClock, sink: Collecting, owner: str) -> AuditForwarder:
    return AuditForwarder(runtime.engine, [sink], clock=clock, lease_seconds=LEASE, owner=owner)


def test_two_replicas_forward_each_record_once(runtime: Runtime, clock: ManualClock) -> None:
    first, second = Collecting(), Collecting()
    a, b = forwarder(runtime, clock, first, "a"), forwarder(runtime, clock, second, "b")
    a.sync_position()
    written = fill(runtime, 5)
    assert b.forward_once() == 0  # a holds the lease
    assert a.forward_once() == 5
    assert b.forward_once() == 0
    assert first.ids == [r.id for r in written]
    assert second.ids == []
    assert a.holds_lease
    assert not b.holds_lease


def test_a_stopped_replica_hands_over_at_once_without_loss(runtime: Runtime, clock: ManualClock) -> None:
    first, second = Collecting(), Collecting()
    a, b = forwarder(runtime, clock, first, "a"), forwarder(runtime, clock, second, "b")
    a.sync_position()
    before = fill(runtime, 3)
    a.forward_once()
    a.stop()  # releases the lease
    after = fill(runtime, 4)
    assert b.forward_once() == 4
    assert first.ids == [r.id for r in before]
    assert second.ids == [r.id for r in after]


def test_a_dead_replica_is_taken_over_once_its_lease_lapses(runtime: Runtime, clock: ManualClock) -> None:
    first, second = Collecting(), Collecting()
    a, b = forwarder(runtime, clock, first, "a"), forwarder(runtime, clock, second, "b")
    a.sync_position()
    fill(runtime, 2)
    a.forward_once()
    pending = fill(runtime, 3)  # a "dies" here: it never forwards again nor releases
    clock.advance(LEASE - 1)
    assert b.forward_once() == 0
    clock.advance(2)
    assert b.forward_once() == 3
    assert second.ids == [r.id for r in pending]
    # The old holder, back from a stall, finds the lease gone and forwards nothing twice.
    assert a.forward_once() == 0
    assert len(first.ids) == 2


def test_records_committed_while_nothing_forwarded_go_out_on_restart(
    runtime: Runtime, clock: ManualClock
) -> None:
    first = Collecting()
    a = forwarder(runtime, clock, first, "a")
    a.sync_position()
    fill(runtime, 1)
    a.forward_once()
    a.stop()
    while_down = fill(runtime, 6)
    restarted = Collecting()
    assert forwarder(runtime, clock, restarted, "a2").forward_once() == 6
    assert restarted.ids == [r.id for r in while_down]


def test_the_cursor_starts_at_the_head_the_first_time(runtime: Runtime, clock: ManualClock) -> None:
    fill(runtime, 3)  # history before forwarding was configured is for `tessera audit export`
    sink = Collecting()
    fresh = forwarder(runtime, clock, sink, "a")
    assert fresh.forward_once() == 0
    later = fill(runtime, 2)
    assert fresh.forward_once() == 2
    assert sink.ids == [r.id for r in later]


def test_records_written_inside_an_operations_transaction_are_forwarded(
    runtime: Runtime, clock: ManualClock
) -> None:
    sink = Collecting()
    fwd = forwarder(runtime, clock, sink, "a")
    fwd.sync_position()
    agent = runtime.agents.create(NewAgent(name="fwd", owner="o@example.com", scopes=("s",)))
    runtime.agents.transition(agent.id, Transition.SUSPEND, "testing")
    assert fwd.forward_once() >= 2
    with runtime.engine.connect() as conn:
        types = [
            row.type
            for row in conn.exec_driver_sql("SELECT id, type FROM audit_records ORDER BY seq")
            if row.id in sink.ids
        ]
    assert "agent.created" in types
    assert "agent.suspended" in types
