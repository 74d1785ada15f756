"""Running chattr: the media services (remote, or started here), then the web app under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import uvicorn
from pydantic import SecretStr

from chatacter_common.first_speech import FirstSpeechMarker
from chatacter_common.logs import uvicorn_log_config
from chattr.media.clients import ClientOptions, VisualizrClient, VocalizrClient
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.local_stack import LocalStack
from chattr.media.store import MediaStore
from chattr.settings import Settings

log = logging.getLogger(__name__)


def make_fanout(
    settings: Settings,
    vocalizr_url: str | None,
    visualizr_url: str | None,
    wait_started: Callable[[float], Collection[str]] | None = None,
    *,
    vocalizr_key: str | None = None,
    visualizr_key: str | None = None,
    own_services: frozenset[str] = frozenset(),
    store: MediaStore | None = None,
    first_speech: FirstSpeechMarker | None = None,
) -> MediaFanout:
    """The media fan-out over the given service URLs (either may be None: that medium is off).

    The bearer keys default to the settings' (CHATTR_VOCALIZR_API_KEY, CHATTR_VISUALIZR_API_KEY).
    `own_services`: those chattr runs itself (child processes, or in-process on a Space); by
    default their files are served at chattr's address (CHATTR_RELAY_SERVICE_FILES). `store`:
    where joined replies go; default: the one CHATTR_MEDIA_STORE names, opened (and checked)
    now. `first_speech`: marks first sentences being spoken, for a visualizr on the same cores
    (one chattr started)."""
    vocalizr_key = vocalizr_key or _secret(settings.vocalizr_api_key)
    visualizr_key = visualizr_key or _secret(settings.visualizr_api_key)
    relay = own_services
    if settings.relay_service_files is not None:
        relay = frozenset({"vocalizr", "visualizr"} if settings.relay_service_files else ())

    def options(read_timeout_s: float) -> ClientOptions:
        return ClientOptions(
            connect_timeout_s=settings.media_connect_timeout_s,
            read_timeout_s=read_timeout_s,
            retries=settings.media_retries,
            retry_deadline_s=settings.media_retry_deadline_s,
            breaker_threshold=settings.breaker_threshold,
            breaker_reset_s=settings.breaker_reset_s,
        )

    return MediaFanout(
        VocalizrClient(vocalizr_url, options(settings.vocalizr_timeout_s), vocalizr_key)
        if vocalizr_url
        else None,
        VisualizrClient(visualizr_url, options(settings.visualizr_timeout_s), visualizr_key)
        if visualizr_url
        else None,
        store=store or MediaStore.open(settings.data_dir, settings.media_store),
        public_url=settings.fixed_public_url or settings.local_url,
        options=FanoutOptions(
            speech_concurrency=settings.speech_concurrency,
            video_concurrency=settings.video_concurrency,
            fps=settings.video_fps,
            first_sentence_hold_s=settings.scene_first_sentence_hold_s,
        ),
        wait_started=wait_started,
        relay=relay,
        first_speech=first_speech,
    )


def start_media(
    settings: Settings, store: MediaStore | None = None
) -> tuple[MediaFanout, LocalStack | None]:
    """Use the configured services; start local ones (CPU engines) for those not configured."""
    stack = None
    vocalizr_url, visualizr_url = settings.vocalizr_url, settings.visualizr_url
    if not vocalizr_url or not visualizr_url:
        stack = LocalStack(
            characters_dir=settings.characters_dir,
            data_dir=settings.data_dir,
            vocalizr=not vocalizr_url,
            visualizr=not visualizr_url,
            vocalizr_url=vocalizr_url,
            vocalizr_key=_secret(settings.vocalizr_api_key),
            startup_timeout_s=settings.media_startup_timeout_s,
        )
        if stack.vocalizr is not None:
            vocalizr_url = stack.vocalizr.url
        if stack.visualizr is not None:
            visualizr_url = stack.visualizr.url
        log.info("started local media services: %s", ", ".join(s.url for s in stack.services))
    wait = stack.wait_started if stack else None
    keys: dict[str, str | None] = {}
    if stack is not None:
        keys["vocalizr_key"] = stack.vocalizr.api_key if stack.vocalizr else None
        keys["visualizr_key"] = stack.visualizr.api_key if stack.visualizr else None
    own = frozenset(s.name for s in stack.services) if stack else frozenset()
    return (
        make_fanout(
            settings,
            vocalizr_url,
            visualizr_url,
            wait,
            **keys,
            own_services=own,
            store=store,
            first_speech=stack.first_speech if stack else None,
        ),
        stack,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def serve(settings: Settings, *, media: bool = True) -> None:
    """Start everything and serve until interrupted; local services stop with chattr."""
    # The store first: a wrong bucket, key or endpoint stops start-up before services start.
    store = MediaStore.open(settings.data_dir, settings.media_store)
    fanout, stack = start_media(settings, store) if media else (None, None)
    try:
        # Gradio is imported only now, with the services already starting: its import holds one
        # core for seconds while the other would sit idle (bench/startup.py).
        from chattr.run.assembly import create_app, create_service

        service = create_service(settings, media=fanout, start_retrieval=False)
        app = create_app(settings, service, status=stack, on_shutdown=stack.stop if stack else None)
        log.info("chattr on %s", settings.own_url)
        # X-Forwarded-* are chattr's to judge (CHATTR_TRUSTED_PROXIES), not uvicorn's. Open
        # streams (a page's event stream) would hold a shutdown open: they get a few seconds.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            log_config=uvicorn_log_config(settings.log_format),
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if stack is not None:
            stack.stop()
