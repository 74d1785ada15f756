"""Talking-head engines, chosen by name (`VISUALIZR_ENGINE`) and loaded once."""

from __future__ import annotations

from chatacter_common.service import EngineRegistry
from visualizr.engines.base import FramedPortrait, TalkingHeadEngine, frame_portrait
from visualizr.errors import EngineUnavailable
from visualizr.settings import Settings


def _load_warp(settings: Settings) -> TalkingHeadEngine:
    from visualizr.engines.warp import WarpEngine

    return WarpEngine()


def _load_musetalk(settings: Settings) -> TalkingHeadEngine:
    from visualizr.engines.musetalk import MuseTalkEngine

    if settings.weights_dir is None:
        raise EngineUnavailable(
            "the musetalk engine needs VISUALIZR_WEIGHTS_DIR: a folder laid out as the MuseTalk "
            "v1.5 checkpoint (musetalkV15/, sd-vae/, whisper/)"
        )
    return MuseTalkEngine.load(
        settings.weights_dir, device=settings.device, batch_size=settings.batch_size
    )


# Loaders import their engine lazily: the warp service never imports torch or diffusers.
ENGINES = EngineRegistry[Settings, TalkingHeadEngine](
    "talking-head engine", "VISUALIZR_ENGINE", {"warp": _load_warp, "musetalk": _load_musetalk}
)


def load_engine(settings: Settings) -> TalkingHeadEngine:
    """Look the engine up by name and load it; UnknownEngine (a ValueError) if none."""
    return ENGINES.create(settings.engine, settings)


__all__ = ["ENGINES", "FramedPortrait", "TalkingHeadEngine", "frame_portrait", "load_engine"]
