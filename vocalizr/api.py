"""The HTTP edge: FastAPI app factory, routes, JSON errors, start-up and clean-up tasks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from chatacter_common.service import (
    BearerAuth,
    BodyLimit,
    caller_id,
    install_error_handlers,
    parse_keys,
    redact_paths,
)
from vocalizr.audio import ENCODINGS
from vocalizr.engines import create_engine
from vocalizr.errors import EngineNotReady, UploadTooLarge
from vocalizr.files import FileStore
from vocalizr.jobs import JobQueue
from vocalizr.metrics import Metrics
from vocalizr.openai_routes import create_openai_router
from vocalizr.service import SpeechRequest, SpeechService
from vocalizr.settings import Settings
from vocalizr.transcription import TranscriptionService, create_transcriber
from vocalizr.voices import Voice, VoiceRegistry

log = logging.getLogger(__name__)

UPLOAD_READ_BYTES = 1 << 20
# Room for multipart boundaries and headers around an upload of the largest allowed size.
UPLOAD_OVERHEAD = 64 * 1024


class SpeechBody(BaseModel):
    text: str = Field(description="What to say (one sentence or a few).", examples=["Hello there."])
    voice: str = Field(
        description="A voice id: a character id, one from POST /v1/voices, or `default` "
        "(the engine's own voice, no reference clip needed)."
    )
    language: str = Field("en", max_length=32, description="Language code, e.g. `en`.")
    speed: float = Field(1.0, ge=0.5, le=2.0, description="Speaking rate; 1 is normal.")


class SpeechAnswer(BaseModel):
    id: str
    url: str = Field(description="Absolute URL of the WAV file (PCM 16-bit mono).")
    duration_s: float
    sample_rate: int
    engine: str


class VoiceAnswer(BaseModel):
    voice: str
    name: str
    source: str = Field(description="`builtin` (the `default` voice), `character` or `upload`.")
    duration_s: float = Field(description="Length of the reference clip (0 for `default`).")


class VoicesAnswer(BaseModel):
    voices: list[VoiceAnswer]


class ErrorAnswer(BaseModel):
    error: str
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer} for status in (400, 401, 404, 413, 422, 503)
}


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the engine loads in the background once it starts (see /healthz)."""
    engine = create_engine(settings)
    jobs = JobQueue(settings.max_queue, settings.workers, "speech jobs")
    metrics = Metrics(queue_depth=lambda: jobs.depth)
    files = FileStore(settings.data_dir / "files")
    voices = VoiceRegistry(
        engine,
        settings.characters_dir,
        settings.data_dir / "voices",
        settings.min_reference_s,
        settings.max_reference_s,
        settings.voice_retention_s,
    )
    service = SpeechService(engine, voices, files, jobs, metrics, settings.max_text_chars)
    transcription = TranscriptionService(create_transcriber(settings), jobs, settings.stt_max_s)

    def start_engine() -> None:
        try:
            engine.load()
            voices.load_characters()
            voices.load_uploads()
            service.ready = True
            log.info("vocalizr ready: engine %s, %d voices", engine.name, len(voices.all()))
        except Exception as error:
            log.exception("the %s engine failed to load", engine.name)
            service.load_error = redact_paths(f"the {engine.name} engine failed to load: {error}")

    async def purge_expired() -> None:
        while True:
            await anyio.to_thread.run_sync(files.purge, settings.retention_s)
            await anyio.to_thread.run_sync(voices.purge_uploads)
            await anyio.sleep(min(60.0, settings.retention_s / 2, settings.voice_retention_s / 2))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, start_engine)
            tasks.start_soon(purge_expired)
            yield
            tasks.cancel_scope.cancel()

    app = FastAPI(
        title="vocalizr",
        version="1",
        description="Text to speech in a character's cloned voice.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings

    def public_base(request: Request) -> str:
        if settings.public_url:
            return settings.public_url.rstrip("/")
        if settings.host in ("0.0.0.0", "::", ""):
            return str(request.base_url).rstrip("/")  # all interfaces: echo what the caller used
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        return f"http://{host}:{settings.port}"

    install_error_handlers(
        app,
        retry_after_s=jobs.retry_after_s,
        on_error=lambda code: metrics.errors.labels(code).inc(),
    )

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        metrics.requests.labels(label, str(response.status_code)).inc()
        return response

    @app.get("/healthz", responses={503: {"model": ErrorAnswer}})
    async def healthz() -> JSONResponse:
        """200 once the engine is loaded; 503 while loading (or if loading failed)."""
        if service.ready:
            body = {"status": "ok", "engine": engine.name, "device": engine.device}
            return JSONResponse(body)
        if service.load_error:
            return JSONResponse({"status": "error", "detail": service.load_error}, 503)
        return JSONResponse({"status": "loading"}, 503, headers={"Retry-After": "1"})

    @app.get("/metrics")
    async def metrics_text() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/speech", responses=ERRORS)
    async def speech(body: SpeechBody, request: Request) -> SpeechAnswer:
        """Speak `text` in `voice`; the answer's `url` serves the WAV."""
        result = await service.speak(
            SpeechRequest(body.text, body.voice, body.language, body.speed, caller_id(request))
        )
        return SpeechAnswer(
            id=result.id,
            url=f"{public_base(request)}/files/{result.id}",
            duration_s=result.duration_s,
            sample_rate=result.sample_rate,
            engine=result.engine,
        )

    @app.post(
        "/v1/speech/stream",
        responses={**ERRORS, 200: {"content": {"audio/wav": {}}}},
        response_class=StreamingResponse,
    )
    async def speech_stream(body: SpeechBody, http: Request) -> StreamingResponse:
        """The same speech as a WAV stream: audio starts before the whole text is synthesized."""
        request = SpeechRequest(body.text, body.voice, body.language, body.speed, caller_id(http))
        stream = await service.stream(request)
        return ReleasingStreamingResponse(stream.body, stream.release, media_type="audio/wav")

    @app.post("/v1/voices", responses=ERRORS)
    async def upload_voice(file: Annotated[UploadFile, File()], request: Request) -> VoiceAnswer:
        """Register a reference clip (3–30 s of speech, any common format) as a new voice.

        The voice is the uploader's own (listed and spoken for them only) and expires after
        VOCALIZR_VOICE_RETENTION_S.
        """
        if not service.ready:
            raise EngineNotReady(f"the {engine.name} engine is still loading; retry shortly")
        data = await read_limited(file, settings.max_upload_bytes)
        owner = caller_id(request)
        async with jobs.slot():
            voice = await jobs.run(lambda: voices.add_upload(data, owner))
        return voice_answer(voice)

    @app.get("/v1/voices")
    async def list_voices(request: Request) -> VoicesAnswer:
        """Every voice that `POST /v1/speech` accepts from this caller: the characters' voices
        and the caller's own uploads."""
        caller = caller_id(request)
        return VoicesAnswer(voices=[voice_answer(voice) for voice in voices.all(caller)])

    @app.get(
        "/files/{file_id}",
        responses={404: {"model": ErrorAnswer}, 200: {"content": {"audio/wav": {}}}},
        response_class=FileResponse,
    )
    async def get_file(
        file_id: str,
        request: Request,
        format: Annotated[
            Literal["wav", "mp3", "ogg"] | None,
            Query(description="Audio format; default from `Accept`, else WAV."),
        ] = None,
    ) -> FileResponse:
        """A produced audio file, until it expires: WAV, or MP3 / Ogg Opus on request."""
        audio_format = format or format_from_accept(request.headers.get("accept", ""))
        if audio_format == "wav":
            return FileResponse(files.path_of(file_id), media_type="audio/wav")
        path = await anyio.to_thread.run_sync(files.encoded, file_id, audio_format)
        return FileResponse(path, media_type=ENCODINGS[audio_format][3])

    app.include_router(create_openai_router(settings, service, transcription))
    app.state.transcription = transcription

    if settings.ui:
        from vocalizr.ui import mount_ui

        app = mount_ui(app, service)
    # Outermost first: a caller without the key is refused before its body is read at all.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_upload_bytes + UPLOAD_OVERHEAD,
        setting="VOCALIZR_MAX_UPLOAD_BYTES",
    )
    app.add_middleware(BearerAuth, keys=parse_keys(settings.api_key), setting="VOCALIZR_API_KEY")
    return app


class ReleasingStreamingResponse(StreamingResponse):
    """Frees the job's queue place however the response ends (done, failed, client gone)."""

    def __init__(
        self, content: AsyncIterator[bytes], release: Callable[[], None], media_type: str
    ) -> None:
        super().__init__(content, media_type=media_type)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def format_from_accept(accept: str) -> str:
    """`audio/mpeg` → mp3, `audio/ogg` → ogg; anything else (`*/*`, `audio/wav`) → wav."""
    for audio_format, (*_, media_type) in ENCODINGS.items():
        if media_type in accept and "audio/wav" not in accept:
            return audio_format
    return "wav"


def voice_answer(voice: Voice) -> VoiceAnswer:
    return VoiceAnswer(
        voice=voice.id, name=voice.name, source=voice.source, duration_s=voice.duration_s
    )


async def read_limited(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refusing more than `limit` without reading them all."""
    data = bytearray()
    while chunk := await file.read(UPLOAD_READ_BYTES):
        data.extend(chunk)
        if len(data) > limit:
            raise UploadTooLarge(
                f"upload is over {limit} bytes (VOCALIZR_MAX_UPLOAD_BYTES); send 3–30 s of speech"
            )
    return bytes(data)
