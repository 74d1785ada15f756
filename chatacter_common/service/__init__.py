"""The service kit both media services use: one set of errors, body limits, bearer keys, bounded
audio decoding, the job queue, the file store and its retention, health, metrics, the engine
registry, the app's common shape, the shared settings and the command line. Imports neither
vocalizr nor visualizr (nor chattr)."""

from chatacter_common.service.app import create_service_app, guard
from chatacter_common.service.auth import BearerAuth, caller_id, parse_keys
from chatacter_common.service.engines import EngineRegistry, UnknownEngine
from chatacter_common.service.errors import (
    AudioTooLong,
    EngineNotReady,
    ErrorBody,
    FileNotFound,
    QueueFull,
    ServiceError,
    StoreFailed,
    Unauthorized,
    UndecodableAudio,
    UploadTooLarge,
    error_response,
    error_responses,
    install_error_handlers,
    redact_paths,
)
from chatacter_common.service.files import FileStore
from chatacter_common.service.health import Health
from chatacter_common.service.jobs import JobQueue, Preempted, StopSignal
from chatacter_common.service.limits import BodyLimit
from chatacter_common.service.metrics import ServiceMetrics, count_requests
from chatacter_common.service.retention import purge_expired, purge_period_s, purge_periodically
from chatacter_common.service.routes import files_base, get_health, get_metrics, ops_router
from chatacter_common.service.settings import ServiceSettings

__all__ = [
    "AudioTooLong",
    "BearerAuth",
    "BodyLimit",
    "EngineNotReady",
    "EngineRegistry",
    "ErrorBody",
    "FileNotFound",
    "FileStore",
    "Health",
    "JobQueue",
    "Preempted",
    "QueueFull",
    "ServiceError",
    "ServiceMetrics",
    "ServiceSettings",
    "StopSignal",
    "StoreFailed",
    "Unauthorized",
    "UndecodableAudio",
    "UnknownEngine",
    "UploadTooLarge",
    "caller_id",
    "count_requests",
    "create_service_app",
    "error_response",
    "error_responses",
    "files_base",
    "get_health",
    "get_metrics",
    "guard",
    "install_error_handlers",
    "ops_router",
    "parse_keys",
    "purge_expired",
    "purge_period_s",
    "purge_periodically",
    "redact_paths",
]
