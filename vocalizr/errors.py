"""Errors the caller can act on: each maps to an HTTP status and a short code."""

from __future__ import annotations


class VocalizrError(Exception):
    """Base: `code` goes in the JSON body, `status` is the HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class UndecodableAudio(VocalizrError):
    status = 415
    code = "undecodable_audio"


class BadReference(VocalizrError):
    """A reference clip that decodes but cannot clone a voice (silent, too short, too long)."""

    status = 422
    code = "bad_reference"


class UploadTooLarge(VocalizrError):
    status = 413
    code = "upload_too_large"


class FileNotFound(VocalizrError):
    status = 404
    code = "not_found"


class QueueFull(VocalizrError):
    status = 503
    code = "queue_full"


class EngineNotReady(VocalizrError):
    status = 503
    code = "loading"


class NothingToSay(VocalizrError):
    status = 422
    code = "nothing_to_say"


class SynthesisFailed(VocalizrError):
    status = 422
    code = "synthesis_failed"
