"""What the routes get injected: the app's video service and settings.

The factory (`visualizr.api.create_app`) puts them on `app.state`; these read them back per
request. Tests swap either with `app.dependency_overrides[get_service] = ...`.
"""

from __future__ import annotations

from typing import cast

from fastapi import Request

from visualizr.service import VideoService
from visualizr.settings import Settings


def get_service(request: Request) -> VideoService:
    """The video service of the app serving this request."""
    return cast(VideoService, request.app.state.service)


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return cast(Settings, request.app.state.settings)
