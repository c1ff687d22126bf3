"""Policy and resource administration (``/admin/v1/policies``, ``/admin/v1/resources``, decisions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import PlainTextResponse

from tessera.audit.service import event
from tessera.policy.bundle import bundle_from_files
from tessera.policy.compiled import compile_bundle
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.policy.service import validate_uid
from tessera.policy.testing import run_tests
from tessera.server.admin import Admin
from tessera.server.schemas import Strict, iso

router = APIRouter(prefix="/admin/v1")


class BundleBody(Strict):
    files: dict[str, str] = Field(max_length=500)
    note: str | None = Field(default=None, max_length=500)


class RollbackBody(Strict):
    version: str = Field(min_length=4, max_length=64)


class EntityRef(Strict):
    type: str = Field(min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=256)


class ResourceBody(Strict):
    type: str = Field(default="Resource", min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=256)
    attributes: dict[str, Any] = Field(default_factory=dict)
    parents: list[EntityRef] = Field(default_factory=list, max_length=32)


class DecisionBody(Strict):
    principal: EntityRef
    action: str = Field(min_length=1, max_length=128)
    resource: EntityRef
    context: dict[str, Any] = Field(default_factory=dict)


@router.post("/policies/validate")
def validate_bundle(body: BundleBody, call: Admin) -> dict[str, Any]:
    """Validate (and run the tests of) a bundle without applying it."""
    # A read: nothing changes, but every admin call is audited.
    call.runtime.auditor.record_async(
        event("admin.read", call.context, data={"route": "POST /admin/v1/policies/validate"})
    )
    compiled = compile_bundle(bundle_from_files(body.files))
    report = run_tests(compiled.bundle)
    return {
        "version": compiled.version,
        "policies": sorted(compiled.policies),
        "tests": {"passed": report.passed, "failed": report.failed},
    }


@router.post("/policies", status_code=201)
def apply_bundle(body: BundleBody, call: Admin) -> dict[str, Any]:
    bundle = bundle_from_files(body.files)
    version = call.runtime.policies.apply(bundle, call.context, note=body.note)
    return {"version": version, "active": True, "policies": sorted(call.runtime.pdp.compiled.policies)}


@router.get("/policies")
def list_versions(call: Admin) -> dict[str, Any]:
    return {
        "versions": [
            {
                "version": v.version,
                "active": v.active,
                "created_at": iso(v.created_at),
                "activated_at": iso(v.activated_at),
                "files": v.files,
            }
            for v in call.runtime.policies.versions()
        ]
    }


@router.get("/policies/diff", response_class=PlainTextResponse)
def diff_versions(
    call: Admin,
    a: Annotated[str, Query(min_length=4, max_length=64)],
    b: Annotated[str, Query(min_length=4, max_length=64)],
) -> str:
    return call.runtime.policies.diff(a, b)


@router.get("/policies/{version}")
def show_version(version: str, call: Admin) -> dict[str, Any]:
    if version == "active":
        version = call.runtime.pdp.compiled.version
    bundle = call.runtime.policies.bundle(version)
    return {
        "version": bundle.version,
        "active": bundle.version == call.runtime.pdp.version,
        "files": bundle.files,
    }


@router.post("/policies/rollback")
def rollback(body: RollbackBody, call: Admin) -> dict[str, Any]:
    return {"version": call.runtime.policies.rollback(body.version, call.context), "active": True}


@router.post("/decisions")
def explain_decision(body: DecisionBody, call: Admin) -> dict[str, Any]:
    """Decide as the PDP would, context enriched the same way, and explain why."""
    service = call.runtime.decisions
    question = Question(
        principal=validate_uid(body.principal.type, body.principal.id),
        action=body.action,
        resource=validate_uid(body.resource.type, body.resource.id),
        context=body.context,
    )
    evaluated = service.request_for(question, call.context.ip).context
    decision = service.decide([question], call.context)[0]
    return {"decision": decision.allowed, "context": decision.explanation(), "evaluated_context": evaluated}


@router.post("/resources", status_code=201)
def put_resource(body: ResourceBody, call: Admin) -> dict[str, Any]:
    stored = call.runtime.resources.put(
        body.type, body.id, body.attributes, [(p.type, p.id) for p in body.parents], call.context
    )
    return _resource_view(stored.entity(), stored.created_at, stored.updated_at)


@router.get("/resources")
def list_resources(call: Admin, type: Annotated[str | None, Query(max_length=128)] = None) -> dict[str, Any]:
    return {
        "resources": [
            _resource_view(r.entity(), r.created_at, r.updated_at) for r in call.runtime.resources.list(type)
        ]
    }


@router.delete("/resources/{type_}/{id_:path}")
def remove_resource(type_: str, id_: str, call: Admin) -> dict[str, Any]:
    """Ids may hold '/' (URIs often are ids); the type cannot, so the rest of the path is the id."""
    call.runtime.resources.remove(type_, id_, call.context)
    return {"type": type_, "id": id_, "removed": True}


def _resource_view(entity: dict[str, Any], created: float, updated: float) -> dict[str, Any]:
    uid = Uid.from_json(entity["uid"])
    return {
        "type": uid.type,
        "id": uid.id,
        "attributes": entity.get("attrs", {}),
        "parents": entity.get("parents", []),
        "created_at": iso(created),
        "updated_at": iso(updated),
    }
