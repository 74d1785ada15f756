"""Talking-head engines, chosen by name (`VISUALIZR_ENGINE`) and loaded once."""

from __future__ import annotations

from collections.abc import Callable

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


ENGINES: dict[str, Callable[[Settings], TalkingHeadEngine]] = {
    "warp": _load_warp,
    "musetalk": _load_musetalk,
}


def load_engine(settings: Settings) -> TalkingHeadEngine:
    """Look the engine up by name and load it."""
    try:
        loader = ENGINES[settings.engine]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise EngineUnavailable(f"no engine {settings.engine!r}; known: {known}") from None
    return loader(settings)


__all__ = ["ENGINES", "FramedPortrait", "TalkingHeadEngine", "frame_portrait", "load_engine"]
