"""A person's own data: their conversation as JSON (`export`), and deleting all of it (`forget`).

What a session leaves behind: its short-term memory (Redis or in-process), its long-term memory
(remembered turns in Qdrant), and the joined replies chattr made for it (data_dir/media), which
a small index per session lets `forget` find.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chattr.knowledge.retrieval import RetrievalUnavailable
from chattr.media.store import MediaStore
from chattr.memory import MemoryUnavailable
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn.service import ChatService

# How long `forget` waits for long-term memory that is still loading.
FORGET_WAIT_S = 30.0


class BadSession(Refusal):
    """The session id given is not one chattr could have made."""


def check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 128:
        raise BadSession("A session id (1–128 characters) is required.")
    return session_id.strip()


class MediaIndex:
    """Which media each session made: one small file per session (named by a hash of its id)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _file(self, session_id: str) -> Path:
        return self.folder / f"{hashlib.sha256(session_id.encode('utf-8')).hexdigest()}.txt"

    def record(self, session_id: str, urls: list[str]) -> None:
        if not urls:
            return
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._file(session_id).open("a", encoding="utf-8") as out:
                out.writelines(f"{url}\n" for url in urls)

    def urls(self, session_id: str) -> list[str]:
        try:
            return self._file(session_id).read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return []

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._file(session_id).unlink(missing_ok=True)


def media_urls(state: TurnState) -> list[str]:
    """Every media URL a finished turn handed out: the joined reply and each sentence's clips."""
    urls = [u for u in (state.audio_url, state.video_url) if u]
    for segment in state.segments:
        urls.extend(u for u in (segment.audio_url, segment.video_url) if u)
    return urls


@dataclass
class ForgetReport:
    session_id: str
    turns: int = 0
    long_term_memory: bool = False
    media: int = 0
    not_deleted: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "deleted": {
                "turns": self.turns,
                "long_term_memory": self.long_term_memory,
                "media_files": self.media,
            },
            "not_deleted": self.not_deleted,
        }


class PersonalData:
    """Export and forget a session, across memory, long-term memory and media."""

    def __init__(self, service: ChatService, data_dir: Path) -> None:
        self.service = service
        # The fan-out's store (a folder or a bucket), where the turns' joined replies went.
        media = service.media
        self.store = media.store if media is not None else MediaStore.under(data_dir)
        self.index = MediaIndex(data_dir / "media-sessions")

    def record_turn(self, state: TurnState) -> None:
        """Note the media a finished turn made, so `forget` can find them."""
        self.index.record(state.session_id, media_urls(state))

    def export(self, session_id: Any) -> dict[str, Any]:
        """The session's conversation with every character, oldest turn first."""
        session_id = check_session_id(session_id)
        turns: list[dict[str, Any]] = []
        characters = self.service.characters.characters
        for cid in sorted(characters):
            try:
                remembered = self.service.memory.recent(session_id, cid)
            except MemoryUnavailable as exc:
                raise BadSession(f"The conversation cannot be read now: {exc}") from exc
            for turn in remembered:
                turns.append(
                    {
                        "character": cid,
                        "character_name": characters[cid].name,
                        "user": turn.user,
                        "assistant": turn.assistant,
                        "at": turn.at,
                        "at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(turn.at)),
                    }
                )
        turns.sort(key=lambda t: t["at"])
        return {
            "session_id": session_id,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "turns": turns,
            "media": [url for url in self.index.urls(session_id) if self.store.name_in_url(url)],
        }

    def export_file(self, session_id: Any) -> Path:
        """The export as a JSON file to download (a fresh temporary file)."""
        data = self.export(session_id)
        folder = Path(tempfile.gettempdir()) / "chattr-exports"
        folder.mkdir(exist_ok=True)
        # Exports hold personal data: an earlier one is not kept longer than needed to download.
        for old in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < time.time() - 600:
                    old.unlink()
        handle, name = tempfile.mkstemp(prefix="conversation-", suffix=".json", dir=folder)
        with open(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2)
        return Path(name)

    def forget(self, session_id: Any) -> ForgetReport:
        """Delete everything the session left; what could not be deleted is said, not hidden."""
        session_id = check_session_id(session_id)
        report = ForgetReport(session_id)
        memory = self.service.memory
        for cid in sorted(self.service.characters.characters):
            try:
                report.turns += len(memory.recent(session_id, cid))
                memory.clear(session_id, cid)
            except MemoryUnavailable as exc:
                report.not_deleted.append(f"short-term memory: {exc}")
                break
        retriever = self.service.retriever
        if retriever is not None:
            try:
                retriever.wait(FORGET_WAIT_S)
                retriever.forget_session(session_id)
                report.long_term_memory = True
            except RetrievalUnavailable as exc:
                report.not_deleted.append(f"long-term memory: {exc}")
        pieces = 0
        for url in self.index.urls(session_id):
            name = self.store.name_in_url(url)
            if name is None:
                pieces += 1
                continue
            try:
                if self.store.delete(name):  # else already expired (CHATTR_MEDIA_RETENTION_S)
                    report.media += 1
            except OSError as exc:
                report.not_deleted.append(f"media file {name}: {exc.strerror or exc}")
        if pieces:
            report.not_deleted.append(
                f"{pieces} single-sentence clips kept by the speech and video services; they "
                "delete them when their retention ends"
            )
        self.index.drop(session_id)
        return report
