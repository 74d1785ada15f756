"""visualizr's own routes: videos, produced files and characters, on a module-level router.

Handlers get the service and settings through dependencies (`visualizr.dependencies`), so a test
can override either; `/healthz` and `/metrics` are the kit's (`ops_router`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from chatacter_common.emotions import UnknownEmotion, expression_of, normalize_label
from chatacter_common.service import error_responses, files_base
from chatacter_common.service.errors import validation_detail
from chatacter_common.service.limits import BodyTooLarge, read_limited
from visualizr.dependencies import get_service
from visualizr.errors import VisualizrError
from visualizr.expressions import ExpressionCue
from visualizr.service import VideoJob, VideoService


class VideoRequest(BaseModel):
    """JSON body of POST /v1/videos."""

    audio_url: str = Field(
        ...,
        min_length=1,
        max_length=2048,
        description="URL of the speech audio (allowed host).",
    )
    portrait: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="Character id (from characters/) or an image URL on an allow-listed host.",
    )
    character: str | None = Field(
        None, min_length=1, max_length=200, description="Character id (alternative to portrait)."
    )
    fps: int | None = Field(None, ge=1, le=60, description="Frames per second (default 25).")
    size: int | None = Field(
        None, ge=128, le=1024, multiple_of=16, description="Width = height in pixels (default 512)."
    )
    expression: str | None = Field(
        None,
        max_length=40,
        description="An emotion label (one of the 28, e.g. `joy`); the face shows it. A "
        "character's `expressions/<label>` sprite, when it has one, replaces the portrait.",
    )
    previous_expression: str | None = Field(
        None,
        max_length=40,
        description="The label the previous clip showed: this one eases from it (default "
        "`neutral`).",
    )


class VideoResponse(BaseModel):
    """A produced video."""

    id: str
    url: str = Field(description="Absolute URL of the MP4 (H.264 + AAC, faststart).")
    duration_s: float
    frames: int
    fps: int
    size: int
    engine: str


MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "audio": {"type": "string", "format": "binary", "description": "Speech audio file."},
        "audio_url": {"type": "string", "description": "Or: URL of the audio (allow-listed host)."},
        "portrait": {
            "type": "string",
            "format": "binary",
            "description": "Portrait image (JPEG, PNG with or without alpha, WebP).",
        },
        "character": {"type": "string", "description": "Or: a character id."},
        "fps": {"type": "integer", "minimum": 1, "maximum": 60},
        "size": {"type": "integer", "minimum": 128, "maximum": 1024, "multipleOf": 16},
        "expression": {"type": "string", "description": "An emotion label, e.g. `joy`."},
        "previous_expression": {"type": "string", "description": "The previous clip's label."},
    },
}

ERROR_RESPONSES = error_responses(
    {
        400: "Bad request (audio_url not allowed, missing fields).",
        401: "A bearer key is set (VISUALIZR_API_KEY) and the request has not got it.",
        404: "Unknown character.",
        413: "Upload, fetched file or image too large.",
        415: "Neither JSON nor multipart.",
        422: "Audio that does not decode, silent or too long; image without a face; a fetch "
        "that failed or passed its deadline.",
        503: "Busy past the queue bound (`queue_full`) or still loading (Retry-After).",
    }
)


FORM_FIELDS = ("audio_url", "character", "fps", "size", "expression", "previous_expression")


def expression_cue(parsed: VideoRequest) -> ExpressionCue:
    """The request's expression and the one before it; an unknown label is the caller's mistake
    (422, listing the 28): chattr drops tags it does not know before they get here."""
    labels = []
    for field, label in (
        ("expression", parsed.expression),
        ("previous_expression", parsed.previous_expression),
    ):
        try:
            labels.append(expression_of(normalize_label(label) if label else None))
        except UnknownEmotion as error:
            raise VisualizrError(
                f"{field}: {error}", code="unknown_expression", status=422
            ) from None
    return ExpressionCue(labels[0], labels[1])


async def _read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    refusal = f"{what} is larger than {limit} bytes (VISUALIZR_MAX_UPLOAD_BYTES)"
    return await read_limited(upload, limit, refusal)


async def parse_video_request(request: Request, service: VideoService) -> VideoJob:
    """Turn a JSON or multipart request into a job, fetching URLs from allowed hosts."""
    settings = service.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    audio: bytes | None = None
    portrait_file: bytes | None = None
    fields: dict[str, Any] = {}
    if content_type == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise VisualizrError("the body is not valid JSON", code="bad_json") from None
        if not isinstance(body, dict):
            raise VisualizrError("the JSON body must be an object", code="bad_json")
        fields = body
    elif content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=4, max_fields=16)
        except Exception as error:  # starlette raises several types for broken multipart
            if isinstance(error, BodyTooLarge):
                raise  # the body limit answers this one (413)
            raise VisualizrError(
                f"the multipart body does not parse: {error}", code="bad_form"
            ) from None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name == "audio":
                    audio = await _read_upload(value, settings.max_upload_bytes, "audio")
                elif name == "portrait":
                    portrait_file = await _read_upload(value, settings.max_upload_bytes, "portrait")
            elif name in FORM_FIELDS or (name == "portrait" and portrait_file is None):
                fields[name] = value
    else:
        raise VisualizrError(
            "send application/json or multipart/form-data",
            code="unsupported_media_type",
            status=415,
        )
    if audio is not None:
        fields.setdefault("audio_url", "upload")
    try:
        parsed = VideoRequest.model_validate(fields)
    except ValidationError as error:
        raise VisualizrError(
            validation_detail(error.errors()), code="invalid_request", status=422
        ) from None
    cue = expression_cue(parsed)
    character: str | None = None
    portrait: Any
    if portrait_file is not None:
        portrait = portrait_file
    else:
        reference = parsed.character or parsed.portrait
        if not reference:
            raise VisualizrError(
                "name a `portrait` (character id or image URL) or `character`, or upload a "
                "`portrait` image",
                code="missing_portrait",
            )
        if reference.startswith(("http://", "https://")):
            portrait = await service.fetch(reference, "portrait")
        else:
            portrait = await service.character(reference)
            character = reference if parsed.expression else None
    if audio is None:
        audio = await service.fetch(parsed.audio_url, "audio_url")
    return VideoJob(
        audio=audio,
        portrait=portrait,
        fps=parsed.fps or settings.default_fps,
        size=parsed.size or settings.default_size,
        cue=cue,
        character=character,
    )


Service = Annotated[VideoService, Depends(get_service)]

router = APIRouter()


@router.post(
    "/v1/videos",
    response_model=VideoResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": VideoRequest.model_json_schema()},
                "multipart/form-data": {"schema": MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_video(
    request: Request, service: Service, base: Annotated[str, Depends(files_base)]
) -> VideoResponse:
    """Make a talking-head MP4: audio (URL or upload) + portrait (character id or upload).

    JSON `{audio_url, portrait, fps?, size?, expression?, previous_expression?}` or multipart
    fields `audio`|`audio_url`, `portrait` (image)|`character`, `fps`, `size`, `expression`,
    `previous_expression`. Every video of one portrait and size has the
    same codec parameters, so they join by stream copy.
    """
    renderer = service.ready_renderer()
    async with service.admitted():  # fetching the inputs counts against the queue bound
        job = await parse_video_request(request, service)
        result = await service.render(job)
    file_id = result.path.name
    return VideoResponse(
        id=file_id,
        url=f"{base}/files/{file_id}",
        duration_s=round(result.duration_s, 4),
        frames=result.frames,
        fps=result.fps,
        size=result.size,
        engine=renderer.engine.name,
    )


@router.get(
    "/files/{file_id}",
    response_class=FileResponse,
    responses=error_responses({404: "No such file."}),
)
async def get_file(file_id: str, request: Request, service: Service) -> Response:
    """Serve a produced MP4 (supports Range requests, for seeking in a browser)."""
    return await service.files.response(file_id, request, "video/mp4")


@router.get("/v1/characters")
async def list_characters(service: Service) -> dict[str, list[str]]:
    """Character ids with portraits: found at start-up or requested since."""
    return {"characters": service.characters.ids()}
