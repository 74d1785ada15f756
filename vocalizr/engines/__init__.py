"""Speech engines behind one interface, chosen by name (`VOCALIZR_ENGINE`)."""

from __future__ import annotations

from chatacter_common.service import EngineRegistry
from vocalizr.engines.base import SpeechEngine
from vocalizr.settings import Settings


def _piper(settings: Settings) -> SpeechEngine:
    from vocalizr.engines.piper import PiperEngine

    return PiperEngine(settings)


def _xtts(settings: Settings) -> SpeechEngine:
    from vocalizr.engines.xtts import XttsEngine

    return XttsEngine(settings)


# Factories import their engine lazily: the piper service never imports torch or Coqui TTS.
ENGINES = EngineRegistry[Settings, SpeechEngine](
    "speech engine", "VOCALIZR_ENGINE", {"piper": _piper, "xtts": _xtts}
)


def create_engine(settings: Settings) -> SpeechEngine:
    """Build (not yet load) the engine named in settings; UnknownEngine (a ValueError) if none."""
    return ENGINES.create(settings.engine, settings)


__all__ = ["ENGINES", "SpeechEngine", "create_engine"]
