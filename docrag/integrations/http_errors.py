"""How the HTTP service answers errors: ``{"error": {"message", "type"}}``.

A 4xx status with a one-line message for bad requests and docrag's own errors
(a bad option 400, an unreadable file or missing model 422, an index conflict
409), and a bare 500 for anything unexpected: logged here, never shown.

>>> ApiError(404, "no such job").status
404
"""

from __future__ import annotations

import logging
import re
from typing import Any

from docrag.errors import ConfigError, DocragError, LoadError, ModelError, StoreError

try:  # optional: pip install 'docrag[serve]'
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError:  # pragma: no cover - create_app says what to install
    pass

__all__ = ["ApiError", "install_error_handlers", "CatchAll"]

log = logging.getLogger("docrag.serve")
_STATUS = {ConfigError: 400, LoadError: 422, ModelError: 422, StoreError: 409}


class ApiError(Exception):
    """An error answered as-is: status, message, type."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.kind, exc.headers)

    @app.exception_handler(DocragError)
    async def _docrag(_: Request, exc: DocragError) -> JSONResponse:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
        return _error(status, str(exc).splitlines()[0] if str(exc) else kind, kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"invalid JSON body ({e.get('msg')})" if e.get("type") == "json_invalid" else
                 f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
                 for e in exc.errors()]
        return _error(422, "; ".join(parts) or "invalid request", "validation_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error",
                      getattr(exc, "headers", None))


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a JSON 500 (logged here, never shown)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_once(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_once)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _error(500, "internal server error; the server log has the details",
                             "internal_error")(scope, receive, send)
