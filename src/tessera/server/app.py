"""The ASGI application: ``create_app(settings)`` builds a ``Runtime`` and mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from tessera import __version__
from tessera.config import Settings
from tessera.runtime import Runtime
from tessera.server import (
    access,
    admin,
    audit,
    authzen,
    issuers,
    oauth,
    people,
    policies,
    policy_feed,
    revocation_feed,
    tasks,
    verification,
)
from tessera.server.errors import install_error_handlers
from tessera.server.limits import BodySizeLimit, BodyTooLarge


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runtime.follower is None:
            created = runtime.start()
            if created:
                print(
                    f"tessera: created admin credential {created}\n"
                    f"tessera: stored at {runtime.settings.admin_token_path} (mode 0600); "
                    "it is not shown again",
                    flush=True,
                )
        yield
        runtime.stop()

    app = FastAPI(
        title="Tessera",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_request: Request, _exc: BodyTooLarge) -> Response:
        return JSONResponse(
            {"error": "payload_too_large", "error_description": "request body is too large"}, status_code=413
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        runtime.healthy()
        return {"status": "ok", "version": __version__}

    # The hot paths first: Starlette matches routes in order.
    app.include_router(oauth.router)
    app.include_router(authzen.router)
    app.include_router(admin.router)
    app.include_router(verification.router)
    app.include_router(audit.router)
    app.include_router(audit.public)
    app.include_router(policies.router)
    app.include_router(issuers.router)
    app.include_router(tasks.router)
    app.include_router(policy_feed.router)
    app.include_router(access.agents)
    app.include_router(access.router)
    app.include_router(people.auth)
    app.include_router(people.router)
    app.include_router(revocation_feed.router)
    app.add_middleware(admin.AdminGate, runtime=runtime)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=runtime.settings.max_request_bytes,
        overrides={"/admin/v1/policies": runtime.settings.max_bundle_bytes},
    )
    return app
