"""A token endpoint request, independent of the web framework that received it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.errors import InvalidRequest

#: RFC 8707 §2 lets ``resource`` repeat; RFC 6749 §3.2 forbids repeating anything else.
REPEATABLE = frozenset({"resource", "audience"})


@dataclass(frozen=True, slots=True)
class TokenRequest:
    params: dict[str, str]
    resources: tuple[str, ...]
    method: str
    url: str
    authorization: str | None = None
    dpop_proof: str | None = None
    client_ip: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: RFC 8693 §2.1: ``audience`` may repeat, like ``resource``.
    audiences: tuple[str, ...] = ()

    @property
    def grant_type(self) -> str | None:
        return self.params.get("grant_type")


def build_token_request(
    pairs: list[tuple[str, str]],
    *,
    method: str,
    url: str,
    authorization: str | None,
    dpop_headers: list[str],
    client_ip: str | None,
) -> TokenRequest:
    params: dict[str, str] = {}
    resources: list[str] = []
    audiences: list[str] = []
    for name, value in pairs:
        if name == "resource":
            resources.append(value)
            continue
        if name == "audience":
            audiences.append(value)
        if name in params and name not in REPEATABLE:
            raise InvalidRequest(f"parameter '{name[:40]}' is repeated")
        params[name] = value
    if len(dpop_headers) > 1:
        raise InvalidRequest("more than one dpop header")
    return TokenRequest(
        params=params,
        resources=tuple(resources),
        method=method,
        url=url,
        authorization=authorization,
        dpop_proof=dpop_headers[0] if dpop_headers else None,
        client_ip=client_ip,
        audiences=tuple(audiences),
    )
