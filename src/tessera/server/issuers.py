"""Trusted issuers for identity federation (``/admin/v1/issuers``): register, list, show, remove."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from tessera.federation.issuers import TrustedIssuer
from tessera.server.admin import Admin
from tessera.server.schemas import iso

router = APIRouter(prefix="/admin/v1")


def issuer_view(issuer: TrustedIssuer) -> dict[str, Any]:
    return {
        "id": issuer.id,
        **issuer.config(),
        "created_at": iso(issuer.created_at),
        "updated_at": iso(issuer.updated_at),
    }


@router.post("/issuers", status_code=201)
def add_issuer(body: Annotated[dict[str, Any], Body()], call: Admin) -> dict[str, Any]:
    """The body is validated field by field by ``federation.issuers.parse_issuer``."""
    return issuer_view(call.runtime.trusted_issuers.add(body, call.context))


@router.get("/issuers")
def list_issuers(call: Admin) -> dict[str, Any]:
    return {"issuers": [issuer_view(i) for i in call.runtime.trusted_issuers.list()]}


@router.get("/issuers/{issuer_id}")
def show_issuer(issuer_id: str, call: Admin) -> dict[str, Any]:
    return issuer_view(call.runtime.trusted_issuers.get(issuer_id))


@router.delete("/issuers/{issuer_id}")
def remove_issuer(issuer_id: str, call: Admin) -> dict[str, Any]:
    call.runtime.trusted_issuers.remove(issuer_id, call.context)
    return {"id": issuer_id, "removed": True}
