"""One set of error codes and statuses for both services, and the JSON answer they give.

Every error is `{"error": code, "detail": text}`. The caller's mistakes are 4xx; a full queue is
503 with `Retry-After`. Details never carry server paths (`redact_paths`), and a bug is a 500
that says to read the log, not the exception text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every error answer's body, in both services."""

    error: str = Field(description="A short code to act on, e.g. `queue_full`, `unknown_voice`.")
    detail: str = Field(description="What went wrong and what to do, in words.")


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the statuses a route may answer with an ErrorBody."""
    return {
        status: {"model": ErrorBody, "description": text} for status, text in descriptions.items()
    }


class ServiceError(Exception):
    """A failure the caller can act on: `code` goes in the JSON body, `status` is the HTTP one."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class Unauthorized(ServiceError):
    """No bearer key, or the wrong one, on a guarded route."""

    status = 401
    code = "unauthorized"


class UploadTooLarge(ServiceError):
    """A request body (upload, chunked or not) past the service's byte cap."""

    status = 413
    code = "upload_too_large"


class UndecodableAudio(ServiceError):
    """Bytes that do not decode as audio. 422, not 415: the media type was fine, the content not."""

    status = 422
    code = "undecodable_audio"


class AudioTooLong(ServiceError):
    """Audio longer than the service takes; found from the header or while decoding."""

    status = 422
    code = "audio_too_long"

    def __init__(self, detail: str, *, seconds: float | None = None) -> None:
        super().__init__(detail)
        self.seconds = seconds


class FileNotFound(ServiceError):
    """A file id that is not a live produced file (malformed, never made, or expired)."""

    status = 404
    code = "not_found"


class EngineNotReady(ServiceError):
    """The engine is still loading: 503 with Retry-After, as `/healthz` says."""

    status = 503
    code = "loading"


class StoreFailed(ServiceError):
    """The media store (an S3 bucket) failed to store or serve a file: 503, worth retrying."""

    status = 503
    code = "store_unavailable"


class QueueFull(ServiceError):
    """More jobs than the queue bound: 503 with Retry-After."""

    status = 503
    code = "queue_full"


# Absolute paths under the usual roots of a server's file system. URL paths (`/v1/voices`,
# `/files/<id>`) are not under these roots, and a path inside a URL follows a host, not a space.
_SERVER_PATH = re.compile(
    r"(?<![\w:/.\-])/(?:home|tmp|usr|etc|proc|var|opt|srv|app|data|root|mnt|dev|sys|run|work|"
    r"weights|nix|private|Users|lib|lib64|bin|sbin|boot|media)(?:/[^\s'\",;)\]]*)?"
)


def redact_paths(text: str) -> str:
    """`text` with every absolute server path replaced by `<path>`."""
    return _SERVER_PATH.sub("<path>", text)


class ErrorJSON(JSONResponse):
    """JSON with non-ASCII escaped, so even a lone surrogate echoed from the input renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error answer: an ErrorBody, server paths taken out of its detail."""
    body = ErrorBody(error=code, detail=redact_paths(detail))
    return ErrorJSON(body.model_dump(), status_code=status, headers=headers)


def validation_detail(errors: Any) -> str:
    """Pydantic's errors as `field: problem; ...`."""
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is malformed"


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(
    app: FastAPI,
    *,
    retry_after_s: Callable[[], int],
    on_error: Callable[[str], None] | None = None,
) -> None:
    """Answer ServiceError, validation errors, HTTP errors and bugs with the one JSON shape."""

    def answer(status: int, code: str, detail: str) -> JSONResponse:
        if on_error is not None:
            on_error(code)
        headers = {"Retry-After": str(retry_after_s())} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(status, code, detail, headers)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return answer(error.status, error.code, error.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return answer(422, "invalid_request", validation_detail(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        return answer(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return answer(500, "internal", "an internal error; the service's log has the details")
