"""What the routes get injected: the app's service, settings and caller.

The factory (`vocalizr.api.create_app`) puts the service objects on `app.state`; these read them
back per request. Tests swap any of them with `app.dependency_overrides[get_service] = ...`.
"""

from __future__ import annotations

from typing import cast

from fastapi import Request

from chatacter_common.service import caller_id
from vocalizr.service import SpeechService
from vocalizr.settings import Settings
from vocalizr.transcription import TranscriptionService


def get_service(request: Request) -> SpeechService:
    """The speech service of the app serving this request."""
    return cast(SpeechService, request.app.state.service)


def get_transcription(request: Request) -> TranscriptionService:
    """The speech-to-text service of the app serving this request."""
    return cast(TranscriptionService, request.app.state.transcription)


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return cast(Settings, request.app.state.settings)


def get_caller(request: Request) -> str:
    """Who is calling: a fingerprint of their bearer key, else their address."""
    return caller_id(request)
