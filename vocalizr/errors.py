"""Errors the caller can act on: each maps to an HTTP status and a short code.

The codes both services share (queue full, upload too large, undecodable audio, unauthorized,
no such file, still loading) come from the service kit, so vocalizr and visualizr answer them
alike.
"""

from __future__ import annotations

from chatacter_common.service.errors import (
    AudioTooLong,
    EngineNotReady,
    FileNotFound,
    QueueFull,
    ServiceError,
    Unauthorized,
    UndecodableAudio,
    UploadTooLarge,
)

VocalizrError = ServiceError

__all__ = [
    "AudioTooLong",
    "EngineNotReady",
    "FileNotFound",
    "QueueFull",
    "Unauthorized",
    "UndecodableAudio",
    "UploadTooLarge",
    "VocalizrError",
]


class EmptyText(VocalizrError):
    status = 422
    code = "empty_text"


class TextTooLong(VocalizrError):
    status = 422
    code = "text_too_long"


class UnknownVoice(VocalizrError):
    status = 404
    code = "unknown_voice"


class UnsupportedLanguage(VocalizrError):
    status = 422
    code = "unsupported_language"


class BadReference(VocalizrError):
    """A reference clip that decodes but cannot clone a voice (silent, too short, too long)."""

    status = 422
    code = "bad_reference"


class NothingToSay(VocalizrError):
    status = 422
    code = "nothing_to_say"


class SynthesisFailed(VocalizrError):
    status = 422
    code = "synthesis_failed"
