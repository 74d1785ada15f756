"""chattr as a Hugging Face Space, in one of two ways.

- The app alone: `CHATTR_VOCALIZR_URL` and `CHATTR_VISUALIZR_URL` (Space secrets) point at
  vocalizr and visualizr running elsewhere.
- Everything in the Space: with no service URLs, both services run inside this process, mounted
  at `/vocalizr` and `/visualizr`, with the engines their settings name (`VOCALIZR_ENGINE=xtts`,
  `VISUALIZR_ENGINE=musetalk` on a GPU Space); on ZeroGPU hardware the model calls the engines
  mark themselves run under `spaces.GPU` (chatacter_common/zero_gpu.py). The mounted services
  are public with the Space, so each is guarded by a bearer key: the configured one
  (CHATTR_VOCALIZR_API_KEY, CHATTR_VISUALIZR_API_KEY), else a random key each start that only
  this process knows. Their `/files/<id>` stay open: browsers play them.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI
from pydantic import SecretStr

from chattr.run.assembly import create_app, create_service
from chattr.run.serving import make_fanout
from chattr.settings import Settings

log = logging.getLogger(__name__)


def import_gpu_engines() -> None:
    """Import the engines that mark their GPU methods, so the marks exist before the app starts.

    ZeroGPU takes stock of the `spaces.GPU` functions when the app launches; visualizr would
    otherwise import its engine only while it loads, in the background, after that.
    """
    import visualizr.engines.musetalk  # noqa: F401
    import vocalizr.engines.xtts  # noqa: F401


def build_space_app(settings: Settings) -> FastAPI:
    """The whole app a Space serves."""
    if settings.vocalizr_url and settings.visualizr_url:
        log.info("media: remote services %s, %s", settings.vocalizr_url, settings.visualizr_url)
        fanout = make_fanout(settings, settings.vocalizr_url, settings.visualizr_url)
        service = create_service(settings, media=fanout, start_retrieval=False)
        return create_app(settings, service)

    from visualizr.api import create_app as create_visualizr
    from visualizr.settings import Settings as VisualizrSettings
    from vocalizr.api import create_app as create_vocalizr
    from vocalizr.settings import Settings as VocalizrSettings

    import_gpu_engines()
    # chattr and visualizr call the services over loopback; replies name them at the page's
    # address instead (MediaFanout's relay: the mounts serve /vocalizr/files/<id>).
    base = settings.local_url
    # What the services themselves answer, for scripts that call them directly on the Space.
    public = settings.fixed_public_url or base
    vocalizr_key = _key(settings.vocalizr_api_key)
    visualizr_key = _key(settings.visualizr_api_key)
    vocalizr = create_vocalizr(
        VocalizrSettings(
            api_key=SecretStr(vocalizr_key),
            public_url=f"{public}/vocalizr",
            characters_dir=settings.characters_dir,
            data_dir=settings.data_dir / "vocalizr",
            ui=False,
        )
    )
    visualizr = create_visualizr(
        VisualizrSettings(
            api_key=SecretStr(visualizr_key),
            vocalizr_api_key=SecretStr(vocalizr_key),
            public_url=f"{public}/visualizr",
            vocalizr_url=f"{base}/vocalizr",
            characters_dir=settings.characters_dir,
            data_dir=settings.data_dir / "visualizr",
            ui=False,
        )
    )
    log.info("media: vocalizr and visualizr in-process at %s/vocalizr, %s/visualizr", base, base)
    fanout = make_fanout(
        settings,
        f"{base}/vocalizr",
        f"{base}/visualizr",
        vocalizr_key=vocalizr_key,
        visualizr_key=visualizr_key,
        own_services=frozenset({"vocalizr", "visualizr"}),
    )
    service = create_service(settings, media=fanout, start_retrieval=False)
    return create_app(settings, service, mounts={"/vocalizr": vocalizr, "/visualizr": visualizr})


def _key(configured: SecretStr | None) -> str:
    """The configured bearer key of a mounted service, else a random one for this start."""
    return configured.get_secret_value() if configured is not None else secrets.token_urlsafe(32)
