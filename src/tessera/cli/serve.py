"""``tessera serve``: bootstrap once in this process, then run uvicorn with its workers."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tessera.cli.client import CliError
from tessera.cli.output import JsonFlag, emit_json, line
from tessera.config import Settings
from tessera.runtime import Runtime

APP_FACTORY = "tessera.server.app:create_app"


def load_settings(host: str | None, port: int | None, workers: int | None) -> Settings:
    overrides: dict[str, Any] = {
        name: value
        for name, value in (("host", host), ("port", port), ("workers", workers))
        if value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        raise CliError(f"invalid setting {where}: {str(first.get('msg', 'invalid value')).lower()}") from None


def bootstrap(settings: Settings) -> str | None:
    """Migrate, create the master key, signing key and admin token, then stop.

    Done once in the parent so that several workers never race to create them.
    Returns the admin token if this call created it.
    """
    runtime = Runtime(settings)
    try:
        return runtime.start(background=False)
    finally:
        runtime.stop()


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8400).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default 1).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Run the Tessera server (admin API, OAuth endpoints) with uvicorn."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server stack

    settings = load_settings(host, port, workers)
    created = bootstrap(settings)
    if json_output:
        emit_json(
            {
                "url": settings.issuer_url,
                "admin_token": created,
                "admin_token_path": str(settings.admin_token_path) if created else None,
            }
        )
    elif created:
        line(f"tessera: created admin credential {created}")
        line(f"tessera: stored at {settings.admin_token_path} (mode 0600); it is not shown again")
    # Workers build their own Settings from the environment: make them agree with ours,
    # so the issuer they put in tokens is the address we serve on.
    os.environ["TESSERA_HOST"] = settings.host
    os.environ["TESSERA_PORT"] = str(settings.port)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
    )
