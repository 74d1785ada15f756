"""OpenAI-compatible audio routes, so any OpenAI client (SillyTavern, Open WebUI) can use vocalizr.

`POST /v1/audio/transcriptions` is speech to text; `POST /v1/audio/speech` speaks in a vocalizr
voice. Errors come in OpenAI's shape, `{"error": {"message", "type", "code"}}`, which OpenAI
clients show to the person, with vocalizr's statuses and codes (and `detail`, as every vocalizr
error has).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from chatacter_common.service.limits import read_limited
from vocalizr.dependencies import get_service, get_settings, get_transcription
from vocalizr.errors import VocalizrError
from vocalizr.service import SpeechRequest, SpeechService
from vocalizr.settings import Settings
from vocalizr.transcription import Transcript, TranscriptionService

# OpenAI's `pcm` format: raw signed 16-bit little-endian mono at 24 kHz, no header.
PCM_RATE = 24_000

TranscriptFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
SpeechFormat = Literal["mp3", "opus", "wav", "flac", "pcm"]


class SpeechCreate(BaseModel):
    """The body of OpenAI's `audio.speech.create`."""

    model: str = Field("tts-1", description="Accepted and ignored: vocalizr's engine speaks.")
    input: str = Field(description="The text to speak.", examples=["Hello there."])
    voice: str = Field(
        description="A vocalizr voice id (a character id, one from `POST /v1/voices`, or "
        "`default`); see `GET /v1/voices`."
    )
    response_format: SpeechFormat = Field(
        "mp3", description="`mp3` (default, as OpenAI), `opus` (Ogg), `wav`, `flac`, `pcm`."
    )
    speed: float = Field(1.0, ge=0.5, le=2.0, description="Speaking rate; 1 is normal.")
    language: str = Field("en", max_length=32, description="vocalizr's extra: language code.")
    instructions: str | None = Field(None, description="Accepted and ignored.")


class TranscriptionAnswer(BaseModel):
    text: str


class SegmentAnswer(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseTranscriptionAnswer(BaseModel):
    task: str = "transcribe"
    language: str = Field(description="The language code, e.g. `en`.")
    duration: float
    text: str
    segments: list[SegmentAnswer]


MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}

ERROR_STATUSES = (400, 404, 413, 415, 422, 503)


def openai_error(status: int, code: str, message: str) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    # `detail` too: every vocalizr error carries one, whatever the route.
    body = {
        "error": {"message": message, "type": kind, "code": code, "param": None},
        "detail": message,
    }
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIErrorRoute(APIRoute):
    """A route whose refusals (vocalizr's errors, invalid fields) read as OpenAI's errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except VocalizrError as error:
                return openai_error(error.status, error.code, error.detail)
            except RequestValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in problem.get('loc', ()))}: "
                    f"{problem.get('msg', '')}"
                    for problem in error.errors()
                )
                return openai_error(422, "invalid_request", problems or "malformed request")

        return route


async def preload(speech: SpeechService, transcription: TranscriptionService) -> None:
    """Load speech to text once the speech engine is up (or failed to load)."""
    # After the speech engine, so the two loads do not share the cores and /healthz
    # turns 200 as soon as it did without speech to text.
    # The speech engine loads in a worker thread, so its end is a threading.Event, waited for in
    # another; at shutdown the wait is abandoned (it ends with the load, which shutdown awaits).
    await anyio.to_thread.run_sync(speech.health.settled.wait, abandon_on_cancel=True)
    await anyio.to_thread.run_sync(_load_quietly, transcription)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Preloads speech to text in the background, where the settings ask for it."""
    settings: Settings = app.state.settings
    transcription: TranscriptionService = app.state.transcription
    async with anyio.create_task_group() as tasks:
        if settings.stt_preload and transcription.engine is not None:
            tasks.start_soon(preload, app.state.service, transcription)
        yield
        tasks.cancel_scope.cancel()


ERROR_MODELS: dict[int | str, dict[str, Any]] = {
    status: {"description": "`{error: {message, type, code}}`"} for status in ERROR_STATUSES
}

router = APIRouter(
    prefix="/v1/audio",
    tags=["OpenAI-compatible"],
    lifespan=lifespan,
    route_class=OpenAIErrorRoute,
)


@router.post(
    "/transcriptions",
    responses={
        **ERROR_MODELS,
        200: {
            "content": {"text/plain": {}},
            "description": "json: `{text}`; verbose_json: with segments; text/srt/vtt: text.",
        },
    },
    response_model=None,
)
async def transcriptions(
    file: Annotated[UploadFile, File(description="The recording, any common audio format.")],
    transcription: Annotated[TranscriptionService, Depends(get_transcription)],
    settings: Annotated[Settings, Depends(get_settings)],
    model: Annotated[str, Form(description="Accepted and ignored (VOCALIZR_STT_MODEL).")] = (
        "whisper-1"
    ),
    language: Annotated[
        str | None, Form(max_length=32, description="Language code; empty: detect.")
    ] = None,
    prompt: Annotated[
        str | None, Form(max_length=1000, description="Words to expect (names, spelling).")
    ] = None,
    response_format: Annotated[TranscriptFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
) -> Response:
    """Speech to text, as OpenAI's `audio.transcriptions.create`."""
    data = await read_limited(
        file,
        settings.max_upload_bytes,
        f"upload is over {settings.max_upload_bytes} bytes (VOCALIZR_MAX_UPLOAD_BYTES); send a "
        "shorter recording or a compressed format",
    )
    # Segment times only where they are answered (verbose_json); the text comes sooner without.
    transcript = await transcription.transcribe(
        data, language, prompt, temperature, timestamps=response_format == "verbose_json"
    )
    return transcript_response(transcript, response_format, temperature)


@router.post(
    "/speech",
    responses={
        **ERROR_MODELS,
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
    },
    response_class=Response,
)
async def create_speech(
    body: SpeechCreate, speech: Annotated[SpeechService, Depends(get_service)]
) -> Response:
    """Text to speech in a vocalizr voice, as OpenAI's `audio.speech.create`."""
    request = SpeechRequest(body.input, body.voice, body.language, body.speed)
    result = await speech.speak(request)
    media_type = MEDIA_TYPES[body.response_format]
    if body.response_format in ("mp3", "opus", "wav"):
        stored = {"opus": "ogg"}.get(body.response_format, body.response_format)
        path = await anyio.to_thread.run_sync(speech.files.encoded, result.id, stored)
        return FileResponse(path, media_type=media_type)
    wav = await anyio.to_thread.run_sync(speech.files.path_of, result.id)
    audio = await anyio.to_thread.run_sync(reencode, wav, body.response_format)
    return Response(audio, media_type=media_type)


def _load_quietly(transcription: TranscriptionService) -> None:
    # A failure is logged and kept as the load error that transcription requests answer with.
    with contextlib.suppress(Exception):
        transcription.ensure_loaded()


def reencode(wav: Any, audio_format: str) -> bytes:
    """A produced WAV as FLAC, or as OpenAI's headerless 24 kHz PCM."""
    samples, rate = sf.read(wav, dtype="float32")
    if audio_format == "flac":
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
        return buffer.getvalue()
    import soxr

    resampled = soxr.resample(samples, rate, PCM_RATE) if rate != PCM_RATE else samples
    pcm = np.asarray(np.clip(resampled, -1.0, 1.0) * 32767).astype("<i2")
    return pcm.tobytes()


def transcript_response(
    transcript: Transcript, response_format: str, temperature: float
) -> Response:
    """The transcript in the format asked for."""
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript, response_format))
    if response_format == "verbose_json":
        answer = VerboseTranscriptionAnswer(
            language=transcript.language,
            duration=transcript.duration_s,
            text=transcript.text,
            segments=[
                SegmentAnswer(
                    id=index,
                    seek=0,
                    start=segment.start_s,
                    end=segment.end_s,
                    text=segment.text,
                    tokens=[],
                    temperature=temperature,
                    avg_logprob=segment.avg_logprob,
                    compression_ratio=0.0,
                    no_speech_prob=segment.no_speech_prob,
                )
                for index, segment in enumerate(transcript.segments)
            ],
        )
        return JSONResponse(answer.model_dump())
    return JSONResponse(TranscriptionAnswer(text=transcript.text).model_dump())


def subtitles(transcript: Transcript, kind: str) -> str:
    """SRT or WebVTT cues, one per segment."""
    separator = "," if kind == "srt" else "."

    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        hours, millis = divmod(millis, 3_600_000)
        minutes, millis = divmod(millis, 60_000)
        secs, millis = divmod(millis, 1000)
        return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"

    cues = [
        (f"{index}\n" if kind == "srt" else "")
        + f"{stamp(segment.start_s)} --> {stamp(segment.end_s)}\n{segment.text}\n"
        for index, segment in enumerate(transcript.segments, start=1)
    ]
    return ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(cues)
