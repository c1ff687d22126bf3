"""Talking to the server: where it is, the admin credential, and errors reduced to one line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8400"
DEFAULT_HOME = ".tessera"
TIMEOUT = 10.0


class CliError(Exception):
    """A failure the CLI reports as one line on stderr, then exits non-zero."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def server_url() -> str:
    return (os.environ.get("TESSERA_URL") or DEFAULT_URL).rstrip("/")


def admin_token_path() -> Path:
    return Path(os.environ.get("TESSERA_HOME") or DEFAULT_HOME) / "admin-token"


def person_token_path() -> Path:
    """Where ``tessera login`` keeps the personal token (mode 0600)."""
    return Path(os.environ.get("TESSERA_HOME") or DEFAULT_HOME) / "person-token"


def admin_token() -> str:
    """The credential the CLI sends, first found of: ``TESSERA_TOKEN`` (a personal token),
    ``TESSERA_ADMIN_TOKEN``, ``$TESSERA_HOME/person-token`` (written by ``tessera login``),
    and the bootstrap token the server wrote to ``$TESSERA_HOME/admin-token``."""
    for variable in ("TESSERA_TOKEN", "TESSERA_ADMIN_TOKEN"):
        token = os.environ.get(variable, "").strip()
        if token:
            return token
    personal = person_token_path()
    if personal.is_file():
        token = personal.read_text(encoding="utf-8").strip()
        if token:
            return token
    path = admin_token_path()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CliError(
            f"no admin token: set TESSERA_ADMIN_TOKEN or TESSERA_HOME ('{path}' does not exist)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read admin token '{path}': {describe_os_error(exc)}") from None
    if not token:
        raise CliError(f"admin token file '{path}' is empty")
    return token


def describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def transport_error(exc: httpx.HTTPError | httpx.InvalidURL, url: str) -> CliError:
    """A connection-level failure (refused, timeout, bad URL) as a ``CliError``."""
    if isinstance(exc, httpx.ConnectError):
        return CliError(f"cannot connect to tessera at {url} (is the server running? set TESSERA_URL)")
    if isinstance(exc, httpx.TimeoutException):
        return CliError(f"timed out talking to tessera at {url}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CliError(f"invalid server url '{url}': {exc}")
    return CliError(f"request to {url} failed: {exc or type(exc).__name__}")


def response_error(response: httpx.Response) -> CliError:
    """An error response as ``error: description`` using the server's ``error``/``error_description``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        if isinstance(description, str) and description:
            return CliError(f"{body['error']}: {description}")
        return CliError(f"{body['error']} (http {response.status_code})")
    return CliError(f"http {response.status_code}: {response.reason_phrase.lower() or 'error'}")


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CliError(f"the server's response is not json (http {response.status_code})") from None


class AdminClient:
    """The admin API over HTTP, authenticated with the admin bearer token."""

    def __init__(self, base_url: str, token: str, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(
                method, url, json=json, params=params, data=data, headers=self._headers
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, self.base_url) from None
        if not response.is_success:
            raise response_error(response)
        return json_body(response)

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def close(self) -> None:
        self._http.close()


@contextmanager
def admin_client() -> Iterator[AdminClient]:
    client = AdminClient(server_url(), admin_token())
    try:
        yield client
    finally:
        client.close()


def read_json_file(path: Path, what: str = "file") -> Any:
    """Parse a JSON file, or raise a one-line ``CliError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {what} '{path}': {describe_os_error(exc)}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        line = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise CliError(f"{what} '{path}' is not valid json: {reason.lower()}{line}") from None
