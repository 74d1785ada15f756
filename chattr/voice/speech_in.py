"""Speech in place of a typed message (a recording sent to the API, the page's microphone):
vocalizr transcribes it in the character's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from chattr.characters.character_set import CharacterNotFound
from chattr.media.clients import ServiceError
from chattr.turn.service import ChatService, TurnRejected

# chattr only guards its memory here; vocalizr refuses long recordings by duration (and size).
MAX_RECORDING_BYTES = 25_000_000


def recording_path(audio: Any) -> Path:
    """The local file of a `chat` API file argument (gradio's FileData, as a dict or a model)."""
    path = audio.get("path") if isinstance(audio, dict) else getattr(audio, "path", None)
    if not path:
        raise TurnRejected("`audio` must be a file: pass handle_file('recording.wav').")
    return Path(str(path))


async def transcribe_recording(service: ChatService, audio: Any, character_id: str) -> str:
    """What the person said in the recording, or TurnRejected saying why it cannot be heard."""
    try:
        character = service.characters.get(character_id)
    except CharacterNotFound as exc:
        raise TurnRejected(str(exc)) from exc
    vocalizr = service.media.vocalizr if service.media is not None else None
    if vocalizr is None:
        raise TurnRejected(
            "Speech input needs vocalizr, which transcribes it: set CHATTR_VOCALIZR_URL "
            "(or let chattr start it), or send `message` as text."
        )
    path = recording_path(audio)
    size = await anyio.Path(path).stat()
    if size.st_size > MAX_RECORDING_BYTES:
        raise TurnRejected(
            f"The recording is {size.st_size} bytes; the limit is {MAX_RECORDING_BYTES}: "
            "send a shorter one."
        )
    data = await anyio.Path(path).read_bytes()
    try:
        return await vocalizr.transcribe(data, path.name, character.voice.language)
    except ServiceError as exc:
        raise TurnRejected(f"The recording could not be transcribed: {exc.detail}") from exc


async def transcribe_speech(service: ChatService, audio: bytes, language: str) -> str:
    """What the person said into the page's microphone, or TurnRejected saying why not."""
    vocalizr = service.media.vocalizr if service.media is not None else None
    if vocalizr is None:
        raise TurnRejected("Speech input needs vocalizr, which is not configured or not running.")
    try:
        return (await vocalizr.transcribe(audio, "speech.wav", language)).strip()
    except ServiceError as exc:
        raise TurnRejected(f"Could not transcribe what you said: {exc.detail}") from exc
