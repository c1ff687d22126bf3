"""Turning exceptions into responses: ``TesseraError`` as data, storage errors as 503, others as 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from tessera.errors import ServiceUnavailable, TesseraError

log = logging.getLogger("tessera.server")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(exc: TesseraError) -> JSONResponse:
    headers = dict(NO_STORE)
    headers.update(exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _validation_reason(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    location = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    message = str(first.get("msg", "invalid value")).lower()
    return f"{location or 'request'}: {message}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TesseraError)
    async def _tessera_error(_request: Request, exc: TesseraError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(
            {"error": "invalid_request", "error_description": _validation_reason(exc)}, status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return JSONResponse(
            {"error": code, "error_description": str(exc.detail).lower()},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(SQLAlchemyError)
    async def _storage_error(request: Request, exc: SQLAlchemyError) -> Response:
        # Operations write in one transaction, so a storage error means nothing was applied.
        # Handled here, not as a bare 500, so the connection stays usable (Starlette re-raises
        # unhandled exceptions and uvicorn then drops the keep-alive connection).
        log.error("storage error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(ServiceUnavailable("storage is unavailable; the operation was not performed"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "server_error", "error_description": "internal error; see the server log"},
            status_code=500,
        )
