"""Voices: the engine's own, the characters' reference clips (found at start-up or on first
use), and uploaded clips."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from vocalizr.audio import Clip, check_reference, decode_audio, write_wav
from vocalizr.engines.base import DEFAULT_VOICE, SpeechEngine
from vocalizr.errors import BadReference, UnknownVoice

log = logging.getLogger(__name__)

VOICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
UPLOAD_PREFIX = "voice-"


@dataclass(frozen=True)
class Voice:
    """A registered voice: `id` is what callers pass as `voice`."""

    id: str
    name: str
    source: str  # "builtin", "character" or "upload"
    duration_s: float


class VoiceRegistry:
    """Known voices; every one is prepared by the engine when it is added."""

    def __init__(
        self,
        engine: SpeechEngine,
        characters_dir: Path,
        uploads_dir: Path,
        min_reference_s: float,
        max_reference_s: float,
    ) -> None:
        self.engine = engine
        self.characters_dir = characters_dir
        self.uploads_dir = uploads_dir
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.min_reference_s = min_reference_s
        self.max_reference_s = max_reference_s
        self._voices: dict[str, Voice] = {}
        self._lock = threading.Lock()
        # One character folder prepared at a time, so two first requests measure it once.
        self._discovery_lock = threading.Lock()

    def default_voice(self) -> Voice:
        """The engine's own voice, spoken without matching any reference clip."""
        return Voice(DEFAULT_VOICE, f"{self.engine.name} default", "builtin", 0.0)

    def get(self, voice_id: str) -> Voice:
        """The voice, or UnknownVoice naming the known ones."""
        if voice_id == DEFAULT_VOICE:
            if not self.engine.speaks_default():
                raise UnknownVoice(
                    f"the {self.engine.name} engine has no voice of its own: it needs a reference "
                    "clip to clone. Upload one to POST /v1/voices or give the character a voice.wav"
                )
            return self.default_voice()
        with self._lock:
            voice = self._voices.get(voice_id)
            known = sorted(self._voices)
        if voice is None:
            listed = ", ".join([DEFAULT_VOICE, *known][:20])
            raise UnknownVoice(
                f"no voice {voice_id[:80]!r}; known: {listed}. Upload a clip to POST /v1/voices"
            )
        return voice

    def all(self) -> list[Voice]:
        """Every voice `get` accepts now: the default one first, then the rest by id."""
        with self._lock:
            registered = sorted(self._voices.values(), key=lambda voice: voice.id)
        return [self.default_voice(), *registered] if self.engine.speaks_default() else registered

    def character_folder(self, voice_id: str) -> Path | None:
        """`<characters_dir>/<voice_id>/` if it holds a `voice.wav` now; None otherwise.

        The id must match `VOICE_ID` and name an entry of the characters folder itself, so no
        path from a request reaches the filesystem.
        """
        if voice_id == DEFAULT_VOICE or not VOICE_ID.fullmatch(voice_id):
            return None
        try:
            with os.scandir(self.characters_dir) as entries:
                listed = any(entry.name == voice_id and entry.is_dir() for entry in entries)
        except OSError:
            return None
        folder = self.characters_dir / voice_id
        return folder if listed and (folder / "voice.wav").is_file() else None

    def add_character(self, voice_id: str) -> Voice:
        """Register a character folder added after start-up (slow: call from a worker thread)."""
        with self._discovery_lock:
            with self._lock:
                known = self._voices.get(voice_id)
            if known is not None:
                return known  # prepared by a request that came just before this one
            folder = self.character_folder(voice_id)
            if folder is None:
                return self.get(voice_id)  # gone again: UnknownVoice
            try:
                voice = self._load_character(folder)
            except Exception as error:
                log.warning("cannot use the new character %s: %s", voice_id, error)
                raise UnknownVoice(
                    f"character {voice_id!r} has a voice.wav that cannot be used ({error}); "
                    f"replace it with 3–30 s of clear speech, or ask for voice {DEFAULT_VOICE!r}"
                ) from None
            log.info("registered voice %s from a character added after start-up", voice_id)
            return voice

    def add(self, voice_id: str, name: str, source: str, clip: Clip) -> Voice:
        """Check the clip, let the engine prepare it (slow: call from a worker thread), register."""
        check_reference(clip, self.min_reference_s, self.max_reference_s)
        try:
            self.engine.add_voice(voice_id, clip)
        except Exception as error:
            log.warning("engine could not prepare voice %s: %s", voice_id, error)
            raise BadReference(
                f"no usable voice found in the reference clip ({error}); send clear speech"
            ) from None
        voice = Voice(voice_id, name, source, round(clip.duration_s, 2))
        with self._lock:
            self._voices[voice_id] = voice
        return voice

    def add_upload(self, data: bytes) -> Voice:
        """Register an uploaded clip; the same clip always gets the same id."""
        clip = decode_audio(data)
        check_reference(clip, self.min_reference_s, self.max_reference_s)
        voice_id = f"{UPLOAD_PREFIX}{clip.content_hash[:16]}"
        with self._lock:
            if voice_id in self._voices:
                return self._voices[voice_id]
        voice = self.add(voice_id, voice_id, "upload", clip)
        # Kept, so an uploaded voice outlives a restart.
        write_wav(self.uploads_dir / f"{voice_id}.wav", clip.samples, clip.sample_rate)
        return voice

    def load_characters(self) -> None:
        """Register each character folder's `voice.wav`; a broken folder is logged and skipped."""
        if not self.characters_dir.is_dir():
            log.warning("no characters folder at %s yet; only uploaded voices", self.characters_dir)
            return
        for folder in sorted(self.characters_dir.iterdir()):
            if folder.is_dir() and (folder / "voice.wav").is_file():
                try:
                    self._load_character(folder)
                except Exception as error:
                    log.warning("skipping character %s: %s", folder.name, error)

    def _load_character(self, folder: Path) -> Voice:
        if not VOICE_ID.fullmatch(folder.name):
            raise ValueError("folder name is not a valid id (letters, digits, _ and -)")
        if folder.name == DEFAULT_VOICE:
            raise ValueError(f"{DEFAULT_VOICE!r} is the engine's own voice; rename the folder")
        name = folder.name
        card = folder / "character.yaml"
        if card.is_file():
            data = yaml.safe_load(card.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                name = data["name"]
        clip = decode_audio((folder / "voice.wav").read_bytes())
        return self.add(folder.name, name, "character", clip)

    def load_uploads(self) -> None:
        """Re-register voices uploaded before a restart."""
        for path in sorted(self.uploads_dir.glob(f"{UPLOAD_PREFIX}*.wav")):
            try:
                self.add(path.stem, path.stem, "upload", decode_audio(path.read_bytes()))
            except Exception as error:
                log.warning("skipping uploaded voice %s: %s", path.name, error)
