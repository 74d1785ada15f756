"""Errors the service turns into JSON `{error, detail}` responses.

The codes both services share (queue full, upload too large, undecodable audio, unauthorized)
come from the service kit, so vocalizr and visualizr answer them alike.
"""

from __future__ import annotations

from chatacter_common.service.errors import (
    AudioTooLong,
    QueueFull,
    ServiceError,
    Unauthorized,
    UndecodableAudio,
    UploadTooLarge,
)

# A failure with a short machine code, an HTTP status and a detail that says what to do.
VisualizrError = ServiceError

__all__ = [
    "AudioTooLong",
    "QueueFull",
    "Unauthorized",
    "UndecodableAudio",
    "UploadTooLarge",
    "VisualizrError",
]


class BadAudio(VisualizrError):
    """Audio that decodes but cannot be animated (silent, too short)."""

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
    """An `audio_url` whose host and port are not in the allow-list."""

    code = "host_not_allowed"
    status = 400


class FetchFailed(VisualizrError):
    """An `audio_url` that could not be fetched."""

    code = "fetch_failed"
    status = 422


class EngineUnavailable(VisualizrError):
    """The engine could not be loaded (missing weights, bad name)."""

    code = "engine_unavailable"
    status = 503
