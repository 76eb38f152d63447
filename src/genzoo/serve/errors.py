"""Errors as OpenAI's API writes them, `{"error": {"message", "type", "param", "code"}}`, so its clients raise
their own exception classes (BadRequestError, AuthenticationError, NotFoundError, RateLimitError, ...) with our
message. Every genzoo error a request can cause maps to a 4xx here; a 5xx means a bug or a broken model."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import GenzooError
from .scheduler import QueueFull, Unavailable

log = logging.getLogger("genzoo.serve")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


class ClientGone(Exception):
    """The client disconnected before its answer was ready (its requests are cancelled)."""


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def _field(loc) -> str:
    """pydantic's location ("body", "messages", 0, "content") -> "messages[0].content"."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in ("str", "int", "float", "bool") or str(part).startswith(
                ("list[", "dict[", "constrained-", "function-", "union[", "tagged-union[", "json-or-python[")):
            continue  # the type a union branch tried, not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return error_response(400, f"the request body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}",
                              code="invalid_json")
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        return error_response(400, "the request has no body: send a JSON object", code="missing_body")
    seen, parts = set(), []
    for e in errors:
        name = _field(e.get("loc", ()))
        if name in seen:  # a union reports each branch; the first says enough
            continue
        seen.add(name)
        value = e.get("input")
        shown = "" if isinstance(value, (dict, list)) or e.get("type") == "missing" else f" (got {value!r:.60})"
        parts.append(f"{name}: {e['msg']}{shown}")
    first = _field(errors[0].get("loc", ())) if errors else None
    return error_response(422, "; ".join(parts), param=first, code="validation_error")


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return validation_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; GET /v1/models lists what this server serves"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(GenzooError)
    async def _genzoo(request: Request, exc: GenzooError):
        return error_response(400, str(exc))

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, exc: QueueFull):
        return error_response(429, f"the server is busy: {exc}; retry later", code="queue_full",
                              headers={"Retry-After": "1"})

    @app.exception_handler(Unavailable)
    async def _down(request: Request, exc: Unavailable):
        return error_response(503, f"the server cannot take requests now: {exc}", code="unavailable",
                              headers={"Retry-After": "5"})

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone):  # nobody reads it; 499 as nginx logs a client that left
        return error_response(499, "the client closed the connection")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
