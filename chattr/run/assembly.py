"""Assembles chattr: characters, memory, knowledge, LLM, media → the ChatService and the web app."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from chatacter_common.blas import one_blas_thread
from chatacter_common.service.auth import matching_key, parse_keys, presented_key
from chatacter_common.storage import StorageError
from chatacter_common.telemetry import configure_tracing
from chatacter_common.telemetry import options as tracing_options
from chattr.access.gate import Gate, auth_pairs
from chattr.access.public_url import ForwardedHeaders
from chattr.access.sign_in_throttle import PasswordCheck, SignInGuard
from chattr.access.sign_out import SignOutGuard, SignOuts, open_sign_outs
from chattr.access.upload_guard import UploadGuard
from chattr.characters import world_info
from chattr.characters.character_set import load_characters
from chattr.characters.portraits import portraits_dir
from chattr.knowledge.retrieval import Retriever
from chattr.llm import NOT_CONFIGURED_HELP, make_chat_model
from chattr.media.relay import add_relay_routes
from chattr.media.store import MediaStore
from chattr.memory import open_memory
from chattr.settings import Settings
from chattr.turn.service import ChatService
from chattr.web.handlers import StatusSource
from chattr.web.layout import build_blocks

log = logging.getLogger(__name__)


def create_service(
    settings: Settings,
    *,
    media: Any = None,
    load_embedder: Callable[[], Any] | None = None,
    start_retrieval: bool = True,
) -> ChatService:
    """Everything a turn needs, from the settings; heavy models load in the background. BLAS
    runs on one thread from here on (`chatacter_common/blas.py`)."""
    one_blas_thread()
    characters = load_characters(settings.characters_dir)
    for error in characters.errors:
        log.warning("character not loaded: %s", error)
    log.info("characters: %s", ", ".join(sorted(characters.characters)) or "(none)")
    memory = open_memory(
        settings.redis_url,
        max_turns=settings.memory_turns,
        ttl_s=settings.memory_ttl_s,
        prefix=settings.redis_prefix,
    )

    def open_store(embedder: Any) -> Any:
        from chattr.knowledge import open_knowledge_store

        return open_knowledge_store(
            data_dir=settings.data_dir,
            qdrant_url=settings.qdrant_url,
            embedder=embedder,
            qdrant_api_key=(
                settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
            ),
        )

    retriever = Retriever(
        open_store,
        characters,
        knowledge_hits=settings.knowledge_hits,
        memory_hits=settings.memory_hits,
        load_embedder=load_embedder,
    )
    if start_retrieval:
        retriever.start()
    if not settings.llm_configured:
        log.warning(NOT_CONFIGURED_HELP)
    return ChatService(
        characters=characters,
        memory=memory,
        retriever=retriever,
        llm=(lambda: make_chat_model(settings)) if settings.llm_configured else None,
        media=media,
        max_message_chars=settings.max_message_chars,
        llm_help=NOT_CONFIGURED_HELP,
        world_info=world_info.Options(
            scan_depth=settings.worldinfo_scan_depth,
            budget_tokens=settings.worldinfo_budget_tokens,
            max_recursion=settings.worldinfo_max_recursion,
        ),
    )


def create_app(
    settings: Settings,
    service: ChatService,
    *,
    status: StatusSource | None = None,
    mounts: Mapping[str, FastAPI] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The web app: the Gradio page at `/`, joined media at `/media/{name}`, the probes; the
    files of the services chattr runs at `/vocalizr/files/{id}`, `/visualizr/files/{id}`.

    `mounts` are other apps served under a path prefix (the media services, in-process on a
    Space); their start-up and shutdown run with chattr's.
    """
    # Gradio wraps every event in a switch of Matplotlib's backend (installed for MediaPipe),
    # and finding the backend to switch back to imports pyplot: 0.4 s (compiled) of the first
    # turn. Named, it is only read; chattr draws no plots.
    os.environ.setdefault("MPLBACKEND", "agg")
    configure_tracing("chattr")
    tracing_options.text = settings.trace_text
    # One store per process: the fan-out's, where it writes the joined replies.
    if service.media is not None:
        store = service.media.store
    else:
        store = MediaStore.open(settings.data_dir, settings.media_store).create()
    mounts = dict(mounts or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Indexing the knowledge, and a LangChain chat model, compete with the page for the
        # interpreter: begin once the page is built. (chattr's command has MiniLM itself loading
        # since before Gradio's import, `chattr.__main__`; this waits for that load.) The two side
        # by side: ONNX Runtime and Qdrant Edge work outside the interpreter lock, so both are
        # ready sooner together (1.6-2.6 s against 3.0 s one after the other, on 2 busy cores).
        if service.retriever is not None:
            service.retriever.start()
        service.warm_up()
        async with AsyncExitStack() as stack:
            for sub_app in mounts.values():
                await stack.enter_async_context(sub_app.router.lifespan_context(sub_app))
            purging = asyncio.create_task(store.purge_periodically(settings.media_retention_s))
            try:
                yield
            finally:
                purging.cancel()
        if service.media is not None:
            await service.media.aclose()
        if on_shutdown is not None:
            # Here, not after the server returns: uvicorn re-raises SIGTERM once it has shut
            # down, which ends the process before any code after it would run.
            on_shutdown()

    app = FastAPI(title="chattr", lifespan=lifespan)
    # One gate for the page, its API and its uploads: one sign-in check, one set of limits.
    gate = Gate.from_settings(settings)
    pairs = auth_pairs(settings)
    if pairs is not None and gate.throttle is not None:
        # Added before ForwardedHeaders, so inside it: it counts the addresses that sets.
        app.add_middleware(SignInGuard, throttle=gate.throttle)
    # Outermost: everything below, Gradio's own URLs included, sees the proxy's scheme and host.
    app.add_middleware(ForwardedHeaders, trusted=settings.trusted_proxy_networks())
    for prefix, sub_app in mounts.items():
        app.mount(prefix, sub_app)  # before Gradio, which takes every other path
    if service.media is not None:
        add_relay_routes(app, service.media.relayed_clients(), skip=set(mounts))

    # Probes, open like /healthz: the process serves (/livez); the app is assembled and its
    # lifespan has started, so it takes turns (/readyz; an LLM or knowledge still loading, or
    # a media service down, degrades a turn, it does not refuse one).
    @app.get("/livez")
    @app.get("/readyz")
    def probe() -> dict[str, str]:
        return {"status": "ok"}

    metrics_keys = parse_keys(settings.metrics_key)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        # The services' scheme: a bearer key, compared in constant time; open without one.
        if metrics_keys and matching_key(metrics_keys, presented_key(request.scope)) is None:
            raise HTTPException(401, "/metrics needs 'Authorization: Bearer <CHATTR_METRICS_KEY>'")
        body, media_type = service.metrics.exposition()
        return Response(body, media_type=media_type)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        retriever = service.retriever
        return {
            "status": "ok",
            "characters": sorted(service.characters.characters),
            "llm": service.llm_configured,
            "knowledge": retriever.status if retriever else "off",
            "media": service.media is not None,
        }

    @app.get("/media/{name}")
    async def media(name: str, request: Request) -> Response:
        # Whichever replica made the reply: a bucket store's files are served by every one.
        try:
            answer = await store.response(name, request)
        except StorageError as exc:
            raise HTTPException(503, f"the media store failed: {exc}") from None
        if answer is None:
            raise HTTPException(404, f"no media file '{name}'")
        return answer

    blocks = build_blocks(service, settings, status=status, gate=gate)
    # Copies of the portraits only (chattr/characters/portraits.py), never the characters' folders.
    portraits = portraits_dir(settings.data_dir)
    characters = Path(settings.characters_dir).resolve()
    # Mounts onto `app` itself (what it returns is `app` again, untyped behind a decorator).
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        allowed_paths=[str(portraits)],
        blocked_paths=[] if portraits.is_relative_to(characters) else [str(characters)],
        max_file_size=settings.max_upload_mb * 1024 * 1024,
        auth=PasswordCheck(pairs) if pairs is not None else None,
        auth_message="Sign in to talk to the characters.",
        footer_links=["api", "gradio", "settings"],
        css=blocks.css,
    )
    guard_uploads(app, gate, settings.max_upload_mb * 1024 * 1024)
    if pairs is not None or gate.sign_in is not None:
        guard_sign_outs(app, open_sign_outs(settings.redis_url, prefix=settings.redis_prefix))
    return app


def guard_uploads(app: FastAPI, gate: Gate, max_bytes: int) -> None:
    """Put the upload guard (the gate's sign-in where required, its per-client upload limit)
    innermost in Gradio's app, inside its session middleware, so a page's sign-in is already
    decoded."""
    if gate.sign_in is None and gate.uploads is None:
        return
    gradio_app(app).user_middleware.append(
        Middleware(UploadGuard, sign_in=gate.sign_in, uploads=gate.uploads, max_bytes=max_bytes)
    )


def guard_sign_outs(app: FastAPI, sign_outs: SignOuts) -> None:
    """Put the sign-out guard innermost in Gradio's app (after the upload guard), beside
    Gradio's table of password sign-ins and inside its session middleware."""
    inner = gradio_app(app)

    def tokens() -> dict[str, str]:
        table: dict[str, str] = getattr(inner, "tokens", {})
        return table

    inner.user_middleware.append(Middleware(SignOutGuard, sign_outs=sign_outs, tokens=tokens))


def gradio_app(app: FastAPI) -> Starlette:
    """Gradio's own app, mounted at the root of `app`."""
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, Starlette) and route.path == "":
            return route.app
    raise RuntimeError("Gradio's app was not found to guard it")
