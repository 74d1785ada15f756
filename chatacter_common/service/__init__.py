"""The service kit both media services use: one set of errors, body limits, bearer keys, bounded
audio decoding and the job queue. Imports neither vocalizr nor visualizr (nor chattr)."""

from chatacter_common.service.auth import BearerAuth, caller_id, parse_keys
from chatacter_common.service.errors import (
    AudioTooLong,
    QueueFull,
    ServiceError,
    Unauthorized,
    UndecodableAudio,
    UploadTooLarge,
    error_response,
    install_error_handlers,
    redact_paths,
)
from chatacter_common.service.jobs import JobQueue
from chatacter_common.service.limits import BodyLimit

__all__ = [
    "AudioTooLong",
    "BearerAuth",
    "BodyLimit",
    "JobQueue",
    "QueueFull",
    "ServiceError",
    "Unauthorized",
    "UndecodableAudio",
    "UploadTooLarge",
    "caller_id",
    "error_response",
    "install_error_handlers",
    "parse_keys",
    "redact_paths",
]
