"""Errors the service turns into JSON `{error, detail}` responses."""

from __future__ import annotations


class VisualizrError(Exception):
    """A failure with a short machine code, an HTTP status and a detail that says what to do."""

    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadAudio(VisualizrError):
    """Audio that does not decode, is silent, or is too long."""

    code = "bad_audio"
    status = 422


class BadImage(VisualizrError):
    """An image that does not decode or is too large."""

    code = "bad_image"
    status = 422


class NoFace(VisualizrError):
    """No face found in the portrait and none declared."""

    code = "no_face"
    status = 422


class CharacterNotFound(VisualizrError):
    """A character id that is not registered."""

    code = "unknown_character"
    status = 404


class HostNotAllowed(VisualizrError):
    """An `audio_url` whose host is not in the allow-list."""

    code = "host_not_allowed"
    status = 400


class FetchFailed(VisualizrError):
    """An `audio_url` that could not be fetched."""

    code = "fetch_failed"
    status = 422


class QueueFull(VisualizrError):
    """More requests than the queue bound allows."""

    code = "busy"
    status = 503


class EngineUnavailable(VisualizrError):
    """The engine could not be loaded (missing weights, bad name)."""

    code = "engine_unavailable"
    status = 503
