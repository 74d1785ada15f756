"""A registry of engines chosen by name in settings (`VOCALIZR_ENGINE=xtts`).

Each entry is a factory that imports its engine's module only when called, so a service never
imports the heavy libraries (torch, Coqui TTS, diffusers) of an engine it does not run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

SettingsT = TypeVar("SettingsT")
EngineT = TypeVar("EngineT")


class UnknownEngine(ValueError):
    """A name in settings that no engine is registered under."""


class EngineRegistry(Mapping[str, Callable[[SettingsT], EngineT]], Generic[SettingsT, EngineT]):
    """Engine factories by name; a read-only mapping, so `name in ENGINES` and listing work."""

    def __init__(
        self, kind: str, setting: str, factories: Mapping[str, Callable[[SettingsT], EngineT]]
    ) -> None:
        self.kind = kind
        self.setting = setting
        self._factories = dict(factories)

    def __getitem__(self, name: str) -> Callable[[SettingsT], EngineT]:
        return self._factories[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def register(self, name: str, factory: Callable[[SettingsT], EngineT]) -> None:
        """Add an engine under a new name (a plugin, or a bench's stand-in); a taken name is a
        ValueError, so a plugin cannot silently replace a shipped engine."""
        if name in self._factories:
            raise ValueError(f"a {self.kind} is already registered as {name!r}")
        self._factories[name] = factory

    def create(self, name: str, settings: SettingsT) -> EngineT:
        """The engine registered as `name`, built from `settings`; UnknownEngine otherwise."""
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories))
            raise UnknownEngine(
                f"no {self.kind} {name!r} ({self.setting}); known: {known}"
            ) from None
        return factory(settings)
