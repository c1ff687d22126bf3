"""PolicyService: versions by content hash, idempotent apply, diff, rollback, atomicity, propagation."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import NotFound, ServiceUnavailable, ValidationFailed
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import BundleInvalid
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tests.unit.policy.helpers import SCHEMA, audit_down, audit_records

ADMIN = RequestContext(Actor(ActorType.ADMIN, "admin"), ip="127.0.0.1")
READ = '@id("read")\npermit(principal, action == Action::"read", resource);\n'


def doc_bundle(*extra: str, comment: str = "") -> Bundle:
    policies = READ + "".join(extra) + (f"// {comment}\n" if comment else "")
    return Bundle({"schema.cedarschema": SCHEMA, "policies.cedar": policies})


def test_a_fresh_database_gets_the_starter_bundle_once(runtime: Runtime, second_runtime: Runtime) -> None:
    starter = starter_bundle().version
    assert runtime.pdp.version == second_runtime.pdp.version == starter
    versions = runtime.policies.versions()
    assert [(v.version, v.active) for v in versions] == [(starter, True)]
    assert len(audit_records(runtime.engine, "policy.applied")) == 1


def test_apply_stores_the_bundle_under_its_content_hash_and_activates_it(runtime: Runtime) -> None:
    bundle = doc_bundle()
    version = runtime.policies.apply(bundle, ADMIN, note="first doc policy")
    assert version == bundle.version
    assert runtime.pdp.version == version
    assert runtime.policies.bundle(version).files == bundle.files
    record = audit_records(runtime.engine, "policy.applied")[-1]
    assert record["actor"] == {"type": "admin", "id": "admin"}
    assert record["reason"] == "first doc policy"
    assert record["data"] == {"version": version, "previous": starter_bundle().version, "policies": 1}


def test_applying_the_same_content_again_is_idempotent(runtime: Runtime, clock: ManualClock) -> None:
    first = runtime.policies.apply(doc_bundle(), ADMIN)
    clock.advance(10)
    again = runtime.policies.apply(Bundle(dict(reversed(list(doc_bundle().files.items())))), ADMIN)
    assert again == first
    versions = runtime.policies.versions()
    assert [v.version for v in versions].count(first) == 1
    assert len(versions) == 2  # the starter and this one
    assert next(v for v in versions if v.version == first).active


def test_versions_list_newest_first_with_one_active(runtime: Runtime, clock: ManualClock) -> None:
    clock.advance(1)
    a = runtime.policies.apply(doc_bundle(comment="a"), ADMIN)
    clock.advance(1)
    b = runtime.policies.apply(doc_bundle(comment="b"), ADMIN)
    versions = runtime.policies.versions()
    assert [v.version for v in versions] == [b, a, starter_bundle().version]
    assert [v.active for v in versions] == [True, False, False]
    assert versions[0].files == ["policies.cedar", "schema.cedarschema"]
    assert versions[0].created_at == clock.now()
    runtime.policies.rollback(a, ADMIN)
    assert [v.active for v in runtime.policies.versions()] == [False, True, False]


def test_diff_shows_the_changed_lines(runtime: Runtime) -> None:
    a = runtime.policies.apply(doc_bundle(), ADMIN)
    b = runtime.policies.apply(
        doc_bundle('@id("no-delete")\nforbid(principal, action == Action::"delete", resource);\n'), ADMIN
    )
    diff = runtime.policies.diff(a, b)
    assert f"--- {a}/policies.cedar" in diff
    assert f"+++ {b}/policies.cedar" in diff
    assert '+@id("no-delete")\n' in diff
    assert '+forbid(principal, action == Action::"delete", resource);\n' in diff
    assert "schema.cedarschema" not in diff  # unchanged files are not shown
    assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert runtime.policies.diff(a, a) == ""
    assert runtime.policies.diff(a[:6], b[:6]) == diff


def test_diff_covers_added_and_removed_files(runtime: Runtime) -> None:
    a = runtime.policies.apply(doc_bundle(), ADMIN)
    files = {**doc_bundle().files, "extra.cedar": '@id("extra")\nforbid(principal, action, resource);\n'}
    b = runtime.policies.apply(Bundle(files), ADMIN)
    assert '+@id("extra")' in runtime.policies.diff(a, b)
    assert '-@id("extra")' in runtime.policies.diff(b, a)


def test_rollback_by_full_version_and_by_unique_prefix(runtime: Runtime) -> None:
    starter = starter_bundle().version
    applied = runtime.policies.apply(doc_bundle(), ADMIN)
    assert runtime.policies.rollback(starter, ADMIN) == starter
    assert runtime.pdp.version == starter
    assert runtime.policies.rollback(applied[:4], ADMIN) == applied
    assert runtime.pdp.version == applied
    record = audit_records(runtime.engine, "policy.rolled_back")[-1]
    assert record["data"] == {"version": applied, "previous": starter}


def test_rollback_to_an_unknown_or_too_short_version_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(NotFound, match="no policy version 'ffffffffffffffff'"):
        runtime.policies.rollback("ffffffffffffffff", ADMIN)
    with pytest.raises(NotFound):
        runtime.policies.rollback(runtime.pdp.version[:3], ADMIN)  # type: ignore[index]
    with pytest.raises(NotFound):
        runtime.policies.bundle("0000")
    assert runtime.pdp.version == starter_bundle().version


def two_bundles_sharing_a_prefix(length: int = 4) -> tuple[Bundle, Bundle]:
    seen: dict[str, Bundle] = {}
    for n in itertools.count():
        candidate = doc_bundle(comment=f"variant {n}")
        prefix = candidate.version[:length]
        if prefix in seen:
            return seen[prefix], candidate
        seen[prefix] = candidate
    raise AssertionError("unreachable")


def test_an_ambiguous_prefix_is_refused(runtime: Runtime) -> None:
    first, second = two_bundles_sharing_a_prefix()
    runtime.policies.apply(first, ADMIN)
    runtime.policies.apply(second, ADMIN)
    prefix = first.version[:4]
    with pytest.raises(ValidationFailed, match=f"version prefix '{prefix}' is ambiguous"):
        runtime.policies.rollback(prefix, ADMIN)
    assert runtime.pdp.version == second.version
    assert runtime.policies.rollback(first.version, ADMIN) == first.version  # the full version is exact


def test_an_invalid_bundle_never_becomes_active(runtime: Runtime, second_runtime: Runtime) -> None:
    good = runtime.policies.apply(doc_bundle(), ADMIN)
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    before = {v.version for v in runtime.policies.versions()}
    records = len(audit_records(runtime.engine))
    broken = doc_bundle('@id("broken")\npermit(principal, action, resource) when { resource.nope };\n')
    with pytest.raises(BundleInvalid) as invalid:
        runtime.policies.apply(broken, ADMIN)
    assert invalid.value.problems[0].file == "policies.cedar"
    assert invalid.value.problems[0].line == 3
    assert "`broken`" in invalid.value.problems[0].message
    assert runtime.pdp.version == good
    assert {v.version for v in runtime.policies.versions()} == before
    assert len(audit_records(runtime.engine)) == records
    with pytest.raises(NotFound):
        runtime.policies.bundle(broken.version)
    assert second_runtime.follower.poll_once() == 0  # type: ignore[union-attr]
    assert second_runtime.pdp.version == good


def test_an_applied_version_reaches_another_runtime_through_the_change_feed(
    runtime: Runtime, second_runtime: Runtime
) -> None:
    starter = starter_bundle().version
    applied = runtime.policies.apply(doc_bundle(), ADMIN)
    assert second_runtime.pdp.version == starter  # not until it reads the feed
    assert second_runtime.follower.poll_once() >= 1  # type: ignore[union-attr]
    assert second_runtime.pdp.version == applied
    assert sorted(second_runtime.pdp.compiled.policies) == ["read"]
    runtime.policies.rollback(starter, ADMIN)
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    assert second_runtime.pdp.version == starter


def test_a_runtime_started_later_loads_the_active_version(runtime: Runtime) -> None:
    applied = runtime.policies.apply(doc_bundle(), ADMIN)
    later = Runtime(runtime.settings, clock=runtime.clock)
    try:
        later.start(background=False)
        assert later.pdp.version == applied
        assert len(later.policies.versions()) == 2  # it did not apply the starter bundle again
    finally:
        later.stop()


def test_apply_and_rollback_are_refused_whole_when_their_audit_record_cannot_be_written(
    runtime: Runtime, second_runtime: Runtime
) -> None:
    starter = starter_bundle().version
    applied = runtime.policies.apply(doc_bundle(), ADMIN)
    refused = (ServiceUnavailable, SQLAlchemyError)  # a 503 either way
    with audit_down(runtime.engine):
        with pytest.raises(refused):
            runtime.policies.apply(doc_bundle(comment="unaudited"), ADMIN)
        with pytest.raises(refused):
            runtime.policies.rollback(starter, ADMIN)
    assert runtime.pdp.version == applied
    assert {v.version for v in runtime.policies.versions()} == {applied, starter}
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    assert second_runtime.pdp.version == applied
