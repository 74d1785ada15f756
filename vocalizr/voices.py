"""Voices: the engine's own, the characters' reference clips (found at start-up or on first
use), and uploaded clips: each belongs to the caller that uploaded it and expires.

A character's voice is its folder's `voice.reference` clip, found by the folder contract every
program shares (chatacter_common.character_folder): the same ids, files and confinement as chattr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from chatacter_common.character_folder import (
    CharacterError,
    CharacterMedia,
    character_folders,
    find_character_folder,
    load_character_media,
)
from vocalizr.audio import Clip, check_reference, decode_audio, write_wav
from vocalizr.engines.base import DEFAULT_VOICE, SpeechEngine
from vocalizr.errors import BadReference, UnknownVoice

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "voice-"


@dataclass(frozen=True)
class Voice:
    """A registered voice: `id` is what callers pass as `voice`."""

    id: str
    name: str
    source: str  # "builtin", "character" or "upload"
    duration_s: float
    owner: str | None = None  # uploads: the caller that made it (see chatacter_common auth)
    created: float = 0.0  # uploads: when, in seconds since the epoch


def upload_id(owner: str, content_hash: str) -> str:
    """The id of an uploaded clip: one per owner and clip, so two callers never share one."""
    return UPLOAD_PREFIX + hashlib.sha256(f"{owner}\n{content_hash}".encode()).hexdigest()[:16]


class VoiceRegistry:
    """Known voices; every one is prepared by the engine when it is added."""

    def __init__(
        self,
        engine: SpeechEngine,
        characters_dir: Path,
        uploads_dir: Path,
        min_reference_s: float,
        max_reference_s: float,
        upload_retention_s: float = 7 * 24 * 3600.0,
    ) -> None:
        self.engine = engine
        self.characters_dir = characters_dir
        self.uploads_dir = uploads_dir
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.min_reference_s = min_reference_s
        self.max_reference_s = max_reference_s
        self.upload_retention_s = upload_retention_s
        self._voices: dict[str, Voice] = {}
        # Per-emotion clips of characters (voice/<label>.wav), prepared under `<id>@<label>`:
        # not voices of their own, so never listed.
        self._emotion_voices: set[str] = set()
        self._lock = threading.Lock()
        # One character folder prepared at a time, so two first requests measure it once.
        self._discovery_lock = threading.Lock()

    def default_voice(self) -> Voice:
        """The engine's own voice, spoken without matching any reference clip."""
        return Voice(DEFAULT_VOICE, f"{self.engine.name} default", "builtin", 0.0)

    def get(self, voice_id: str, caller: str | None = None) -> Voice:
        """The voice, or UnknownVoice naming the known ones.

        With a `caller`, another caller's upload is unknown too (the same answer as a voice that
        does not exist, so ids cannot be probed); None is the in-process caller, who sees all.
        """
        if voice_id == DEFAULT_VOICE:
            if not self.engine.speaks_default():
                raise UnknownVoice(
                    f"the {self.engine.name} engine has no voice of its own: it needs a reference "
                    "clip to clone. Upload one to POST /v1/voices or give the character a voice "
                    "clip (voice.wav, or the file its character.yaml names in voice.reference)"
                )
            return self.default_voice()
        with self._lock:
            voice = self._voices.get(voice_id)
            known = sorted(v.id for v in self._voices.values() if _visible(v, caller))
        if voice is None or not _visible(voice, caller):
            listed = ", ".join([DEFAULT_VOICE, *known][:20])
            raise UnknownVoice(
                f"no voice {voice_id[:80]!r}; known: {listed}. Upload a clip to POST /v1/voices"
            )
        return voice

    def emotion_voice(self, voice_id: str, emotion: str | None) -> str | None:
        """The engine's voice id for `voice_id`'s own clip of `emotion`, or None if it has none."""
        if emotion is None:
            return None
        candidate = emotion_voice_id(voice_id, emotion)
        with self._lock:
            return candidate if candidate in self._emotion_voices else None

    def all(self, caller: str | None = None) -> list[Voice]:
        """Every voice `get` accepts now for `caller`: the default one first, then by id."""
        with self._lock:
            registered = sorted(
                (voice for voice in self._voices.values() if _visible(voice, caller)),
                key=lambda voice: voice.id,
            )
        return [self.default_voice(), *registered] if self.engine.speaks_default() else registered

    def character_folder(self, voice_id: str) -> Path | None:
        """`<characters_dir>/<voice_id>/` if it is a character folder with a voice clip now.

        The id must be a character id naming an entry of the characters folder itself, so no
        path from a request reaches the filesystem. A folder whose character.yaml cannot be
        read is returned too: `add_character` then says why it has no voice.
        """
        if voice_id == DEFAULT_VOICE:
            return None
        folder = find_character_folder(self.characters_dir, voice_id)
        if folder is None:
            return None
        try:
            media = load_character_media(folder)
        except CharacterError:
            return folder
        return folder if media.voice_path() is not None else None

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
                    f"character {voice_id!r} has a voice clip that cannot be used ({error}); "
                    f"replace it with 3–30 s of clear speech, or ask for voice {DEFAULT_VOICE!r}"
                ) from None
            log.info("registered voice %s from a character added after start-up", voice_id)
            return voice

    def add(
        self,
        voice_id: str,
        name: str,
        source: str,
        clip: Clip,
        owner: str | None = None,
        created: float = 0.0,
    ) -> Voice:
        """Check the clip, let the engine prepare it (slow: call from a worker thread), register."""
        check_reference(clip, self.min_reference_s, self.max_reference_s)
        try:
            self.engine.add_voice(voice_id, clip)
        except Exception as error:
            log.warning("engine could not prepare voice %s: %s", voice_id, error)
            raise BadReference(
                f"no usable voice found in the reference clip ({error}); send clear speech"
            ) from None
        voice = Voice(voice_id, name, source, round(clip.duration_s, 2), owner, created)
        with self._lock:
            self._voices[voice_id] = voice
        return voice

    def add_upload(self, data: bytes, owner: str) -> Voice:
        """Register `owner`'s uploaded clip; the same clip from the same owner gets the same id."""
        clip = decode_audio(data, self.max_reference_s)
        check_reference(clip, self.min_reference_s, self.max_reference_s)
        voice_id = upload_id(owner, clip.content_hash)
        with self._lock:
            if voice_id in self._voices:
                return self._voices[voice_id]
        voice = self.add(voice_id, voice_id, "upload", clip, owner, time.time())
        # Kept, so an uploaded voice outlives a restart (until it expires); the owner beside it.
        write_wav(self.uploads_dir / f"{voice_id}.wav", clip.samples, clip.sample_rate)
        meta = {"owner": owner, "created": voice.created}
        (self.uploads_dir / f"{voice_id}.json").write_text(json.dumps(meta), encoding="utf-8")
        return voice

    def purge_uploads(self, now: float | None = None) -> int:
        """Forget and delete uploads older than the retention period; returns how many."""
        cutoff = (time.time() if now is None else now) - self.upload_retention_s
        with self._lock:
            expired = [
                voice.id
                for voice in self._voices.values()
                if voice.source == "upload" and voice.created < cutoff
            ]
            for voice_id in expired:
                del self._voices[voice_id]
        for voice_id in expired:
            self.engine.remove_voice(voice_id)
            self._delete_upload_files(voice_id)
        if expired:
            log.info("deleted %d expired uploaded voices", len(expired))
        return len(expired)

    def _delete_upload_files(self, voice_id: str) -> None:
        for suffix in (".wav", ".json"):
            (self.uploads_dir / f"{voice_id}{suffix}").unlink(missing_ok=True)

    def load_characters(self) -> None:
        """Register each character folder's voice clip; a broken folder is logged and skipped."""
        if not self.characters_dir.is_dir():
            log.warning("no characters folder at %s yet; only uploaded voices", self.characters_dir)
            return
        for folder in character_folders(self.characters_dir):
            try:
                media = load_character_media(folder)
                if media.voice_path() is not None:
                    self._register_character(media)
            except Exception as error:
                log.warning("skipping character %s: %s", folder.name, error)

    def _load_character(self, folder: Path) -> Voice:
        return self._register_character(load_character_media(folder))

    def _register_character(self, media: CharacterMedia) -> Voice:
        if media.id == DEFAULT_VOICE:
            raise ValueError(f"{DEFAULT_VOICE!r} is the engine's own voice; rename the folder")
        path = media.voice_path()
        name = media.voice.reference
        if path is None:
            raise ValueError(f"{name}: no such file in the character's folder")
        try:
            clip = decode_audio(path.read_bytes(), self.max_reference_s)
        except OSError as error:
            # strerror, not str(error): that one carries the server's path.
            reason = error.strerror or type(error).__name__
            raise ValueError(f"{name}: cannot read: {reason}") from None
        except Exception as error:
            raise ValueError(f"{name}: {error}") from None
        try:
            voice = self.add(media.id, media.display_name, "character", clip)
        except Exception as error:
            raise ValueError(f"{name}: {error}") from None
        self._register_emotion_clips(media)
        return voice

    def _register_emotion_clips(self, media: CharacterMedia) -> None:
        """Prepare each `voice/<label>.wav`; a clip that cannot be used is logged and skipped
        (that emotion is spoken in the character's main voice)."""
        for label, path in media.emotion_voices().items():
            voice_id = emotion_voice_id(media.id, label)
            try:
                clip = decode_audio(path.read_bytes(), self.max_reference_s)
                check_reference(clip, self.min_reference_s, self.max_reference_s)
                self.engine.add_voice(voice_id, clip)
            except Exception as error:
                reason = getattr(error, "strerror", None) or error
                log.warning("character %s: voice/%s.wav not used: %s", media.id, label, reason)
                continue
            with self._lock:
                self._emotion_voices.add(voice_id)

    def load_uploads(self) -> None:
        """Re-register voices uploaded before a restart; expired ones are deleted instead."""
        cutoff = time.time() - self.upload_retention_s
        for path in sorted(self.uploads_dir.glob(f"{UPLOAD_PREFIX}*.wav")):
            owner, created = _upload_meta(path)
            if owner is None or created < cutoff:
                self._delete_upload_files(path.stem)  # expired, or nobody's (no owner record)
                continue
            try:
                clip = decode_audio(path.read_bytes(), self.max_reference_s)
                self.add(path.stem, path.stem, "upload", clip, owner, created)
            except Exception as error:
                log.warning("skipping uploaded voice %s: %s", path.name, error)


def emotion_voice_id(voice_id: str, label: str) -> str:
    """The engine's id for a character's clip of one emotion ('@' is in no voice id)."""
    return f"{voice_id}@{label}"


def _visible(voice: Voice, caller: str | None) -> bool:
    return voice.source != "upload" or caller is None or voice.owner == caller


def _upload_meta(path: Path) -> tuple[str | None, float]:
    """The owner and creation time kept beside an uploaded clip; (None, 0) when unreadable."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        return str(meta["owner"]), float(meta["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0.0
