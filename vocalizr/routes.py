"""vocalizr's own routes: speech, voices and produced files, on a module-level router.

Handlers get the service, settings and caller through dependencies (`vocalizr.dependencies`),
so a test can override any of them; `/healthz` and `/metrics` are the kit's (`ops_router`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.types import Receive, Scope, Send

from chatacter_common.emotions import normalize_label
from chatacter_common.service import error_responses, files_base
from chatacter_common.service.limits import read_limited
from vocalizr.audio import ENCODINGS
from vocalizr.dependencies import get_caller, get_service, get_settings
from vocalizr.service import Priority, SpeechRequest, SpeechService
from vocalizr.settings import Settings
from vocalizr.voices import Voice


class SpeechBody(BaseModel):
    text: str = Field(description="What to say (one sentence or a few).", examples=["Hello there."])
    voice: str = Field(
        description="A voice id: a character id, one from POST /v1/voices, or `default` "
        "(the engine's own voice, no reference clip needed)."
    )
    language: str = Field("en", max_length=32, description="Language code, e.g. `en`.")
    speed: float = Field(1.0, ge=0.5, le=2.0, description="Speaking rate; 1 is normal.")
    emotion: str | None = Field(
        None,
        max_length=40,
        description="An emotion label (one of the 28, e.g. `sadness`): Piper nudges pace and "
        "pitch; XTTS clones the character's `voice/<label>.wav` when it has one.",
    )

    priority: Priority = Field(
        "normal",
        description="`first`: the first sentence of a reply, which someone is waiting to hear. "
        "It goes before every `normal` request waiting, and a `normal` synthesis already running "
        "is stopped for it and run again after it (the Piper engine; XTTS cannot stop one, so "
        "there it only goes first in the queue). A stopped request still gets its whole audio "
        "and words, later; a request is stopped at most three times.",
    )

    @field_validator("emotion")
    @classmethod
    def _known_emotion(cls, value: str | None) -> str | None:
        # An unknown label is the caller's mistake (422 naming the 28); chattr drops tags it
        # does not know before asking.
        return normalize_label(value) if value is not None else None

    def request(self, caller: str) -> SpeechRequest:
        """The service's request for this body."""
        return SpeechRequest(
            self.text, self.voice, self.language, self.speed, caller, self.emotion, self.priority
        )


class WordAnswer(BaseModel):
    word: str = Field(description="A word of the text spoken (the text split at whitespace).")
    start_s: float = Field(description="When it starts, in seconds from the start of the audio.")
    end_s: float = Field(description="When it ends, in seconds from the start of the audio.")


class SpeechAnswer(BaseModel):
    id: str
    url: str = Field(description="Absolute URL of the WAV file (PCM 16-bit mono).")
    duration_s: float
    sample_rate: int
    engine: str
    words: list[WordAnswer] = Field(
        description="Every word of the text, in order, with when it is said in the audio."
    )
    word_timing: Literal["aligned", "estimated"] = Field(
        description="`aligned`: from the engine's own phoneme durations (Piper); `estimated`: "
        "spread over the audio by characters (engines that do not say, as XTTS)."
    )


class VoiceAnswer(BaseModel):
    voice: str
    name: str
    source: str = Field(description="`builtin` (the `default` voice), `character` or `upload`.")
    duration_s: float = Field(description="Length of the reference clip (0 for `default`).")


class VoicesAnswer(BaseModel):
    voices: list[VoiceAnswer]


ERRORS = error_responses(
    {
        400: "Bad request.",
        401: "A bearer key is set (VOCALIZR_API_KEY) and the request has not got it.",
        404: "Unknown voice.",
        413: "Upload too large.",
        422: "Empty or too long text, an unsupported language, audio that does not decode.",
        503: "Busy past the queue bound (`queue_full`) or still loading (Retry-After).",
    }
)

Service = Annotated[SpeechService, Depends(get_service)]
Caller = Annotated[str, Depends(get_caller)]


router = APIRouter()


@router.post("/v1/speech", responses=ERRORS)
async def speech(
    body: SpeechBody,
    service: Service,
    caller: Caller,
    base: Annotated[str, Depends(files_base)],
) -> SpeechAnswer:
    """Speak `text` in `voice`; the answer's `url` serves the WAV."""
    result = await service.speak(body.request(caller))
    return SpeechAnswer(
        id=result.id,
        url=f"{base}/files/{result.id}",
        duration_s=result.duration_s,
        sample_rate=result.sample_rate,
        engine=result.engine,
        words=[WordAnswer(word=w.word, start_s=w.start_s, end_s=w.end_s) for w in result.words],
        word_timing=result.word_timing,
    )


@router.post(
    "/v1/speech/stream",
    responses={**ERRORS, 200: {"content": {"audio/wav": {}}}},
    response_class=StreamingResponse,
)
async def speech_stream(body: SpeechBody, service: Service, caller: Caller) -> StreamingResponse:
    """The same speech as a WAV stream: audio starts before the whole text is synthesized."""
    stream = await service.stream(body.request(caller))
    return ReleasingStreamingResponse(stream.body, stream.release, media_type="audio/wav")


@router.post("/v1/voices", responses=ERRORS)
async def upload_voice(
    file: Annotated[UploadFile, File()],
    service: Service,
    caller: Caller,
    settings: Annotated[Settings, Depends(get_settings)],
) -> VoiceAnswer:
    """Register a reference clip (3–30 s of speech, any common format) as a new voice.

    The voice is the uploader's own (listed and spoken for them only) and expires after
    VOCALIZR_VOICE_RETENTION_S.
    """
    service.ensure_ready()  # a loading service says so before anything about the upload
    limit = settings.max_upload_bytes
    data = await read_limited(
        file,
        limit,
        f"upload is over {limit} bytes (VOCALIZR_MAX_UPLOAD_BYTES); send 3–30 s of speech",
    )
    return voice_answer(await service.add_voice(data, caller))


@router.get("/v1/voices")
async def list_voices(service: Service, caller: Caller) -> VoicesAnswer:
    """Every voice that `POST /v1/speech` accepts from this caller: the characters' voices
    and the caller's own uploads."""
    return VoicesAnswer(voices=[voice_answer(voice) for voice in service.voices.all(caller)])


@router.get(
    "/files/{file_id}",
    responses={**error_responses({404: "No such file."}), 200: {"content": {"audio/wav": {}}}},
    response_class=FileResponse,
)
async def get_file(
    file_id: str,
    request: Request,
    service: Service,
    format: Annotated[
        Literal["wav", "mp3", "ogg"] | None,
        Query(description="Audio format; default from `Accept`, else WAV."),
    ] = None,
) -> Response:
    """A produced audio file, until it expires: WAV, or MP3 / Ogg Opus on request."""
    audio_format = format or format_from_accept(request.headers.get("accept", ""))
    if audio_format == "wav":
        return await service.files.response(file_id, request, "audio/wav")
    path = await anyio.to_thread.run_sync(service.files.encoded, file_id, audio_format)
    return FileResponse(path, media_type=ENCODINGS[audio_format][3])


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
