"""A person's own data: their whole conversation as JSON and as Markdown (`export`), and
deleting all of it (`forget`): each other's inverse, whatever export finds, forget deletes.

What a session leaves behind: its short-term memory (Redis or in-process; the last
CHATTR_MEMORY_TURNS turns), its long-term memory (every remembered turn, in Qdrant, with its
joined media's URLs), and the joined replies chattr made for it (data_dir/media or a bucket),
which a small index per session lets `forget` find too: in Redis when there is one, so that every
replica finds what any of them made, else in data_dir/media-sessions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis

from chattr.knowledge.retrieval import RetrievalUnavailable
from chattr.knowledge.store import RememberedTurn
from chattr.media.store import MediaStore
from chattr.memory import SCENE_KEY, MemoryUnavailable, Turn
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn.service import ChatService

log = logging.getLogger(__name__)

# How long `forget` waits for long-term memory that is still loading.
FORGET_WAIT_S = 30.0


class BadSession(Refusal):
    """The session id given is not one chattr could have made."""


def check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 128:
        raise BadSession("A session id (1–128 characters) is required.")
    return session_id.strip()


@dataclass(frozen=True)
class TurnMedia:
    """The media one finished turn made, with the turn they belong to as memory keeps it (so a
    page loaded later shows them beside it)."""

    character: str
    user: str
    assistant: str
    urls: tuple[str, ...]  # every URL the turn handed out, for `forget`
    audio_url: str | None = None  # the whole reply's
    video_url: str | None = None

    @classmethod
    def of(cls, state: TurnState) -> TurnMedia:
        urls = [u for u in (state.audio_url, state.video_url) if u]
        for segment in state.segments:
            urls.extend(u for u in (segment.audio_url, segment.video_url) if u)
        return cls(
            state.character,
            state.message,
            state.text,
            tuple(urls),
            state.audio_url,
            state.video_url,
        )

    def to_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_line(cls, line: str) -> TurnMedia:
        if not line.startswith("{"):  # an index written before turns were noted: one URL a line
            return cls("", "", "", (line,))
        fields = json.loads(line)
        return cls(**{**fields, "urls": tuple(fields["urls"])})


class MediaIndex(Protocol):
    """What media each session made (one line per turn, `TurnMedia.to_line`), so `forget` finds
    them and a page loaded later shows them."""

    def record(self, session_id: str, line: str) -> None: ...

    def lines(self, session_id: str) -> list[str]: ...

    def drop(self, session_id: str) -> None: ...


def _session_key(session_id: str) -> str:
    # A hash: session ids are the keys to people's data, not to be left readable on disk.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class DiskMediaIndex:
    """One small file per session in this process's data folder (one replica)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _file(self, session_id: str) -> Path:
        return self.folder / f"{_session_key(session_id)}.txt"

    def record(self, session_id: str, line: str) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._file(session_id).open("a", encoding="utf-8") as out:
                out.write(f"{line}\n")

    def lines(self, session_id: str) -> list[str]:
        try:
            text = self._file(session_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._file(session_id).unlink(missing_ok=True)


class MediaIndexUnavailable(RuntimeError):
    """The shared index cannot be reached."""


class RedisMediaIndex:
    """One Redis list per session, shared by every replica: `forget` on one finds the media a
    turn on another made. A list lives as long as the media it names can (`ttl_s`)."""

    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:media-sessions:{_session_key(session_id)}"

    def record(self, session_id: str, line: str) -> None:
        key = self._key(session_id)
        try:
            with self._redis.pipeline() as pipe:
                pipe.rpush(key, line)
                pipe.expire(key, self._ttl_s)
                pipe.execute()
        except redis.RedisError as exc:
            raise MediaIndexUnavailable(f"Redis unreachable: {exc}") from exc

    def lines(self, session_id: str) -> list[str]:
        try:
            stored = self._redis.lrange(self._key(session_id), 0, -1)
        except redis.RedisError as exc:
            raise MediaIndexUnavailable(f"Redis unreachable: {exc}") from exc
        return [line if isinstance(line, str) else line.decode() for line in stored]

    def drop(self, session_id: str) -> None:
        try:
            self._redis.delete(self._key(session_id))
        except redis.RedisError as exc:
            raise MediaIndexUnavailable(f"Redis unreachable: {exc}") from exc


def open_media_index(
    data_dir: Path, redis_url: str | None, *, prefix: str, retention_s: float
) -> MediaIndex:
    """In Redis when there is one (CHATTR_REDIS_URL: what replicas share), else on disk."""
    if redis_url:
        # A day past the media's own retention: the sweep that deletes them runs now and then.
        return RedisMediaIndex(redis_url, prefix=prefix, ttl_s=int(retention_s) + 24 * 3600)
    return DiskMediaIndex(data_dir / "media-sessions")


@dataclass(frozen=True)
class ExportedTurn:
    character: str
    turn: Turn


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def readable_export(data: Mapping[str, Any]) -> str:
    """An export as Markdown: who said what, when, oldest first, with the media links."""
    lines = [
        f"# Conversation {data['session_id']}",
        "",
        f"Exported {data['exported_at']}; {len(data['turns'])} turns, oldest first.",
    ]
    for turn in data["turns"]:
        heading = f"## {turn['at_utc']} — {turn['character_name']}".rstrip(" —")
        lines += ["", heading, ""]
        if turn["user"]:
            lines += [f"**You:** {turn['user']}", ""]
        if turn["assistant"]:  # a scene's message nobody answered has none
            note = " *(interrupted: the part you heard)*" if turn["interrupted"] else ""
            lines.append(f"**{turn['character_name']}:** {turn['assistant']}{note}")
        for url in turn["media"]:
            lines += ["", f"- <{url}>"]
    for line in data.get("not_exported") or []:
        lines += ["", f"> Not exported: {line}"]
    return "\n".join(lines) + "\n"


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

    def __init__(
        self, service: ChatService, data_dir: Path, index: MediaIndex | None = None
    ) -> None:
        """`index`: where the sessions' media are noted; default: on disk under `data_dir`."""
        self.service = service
        # The fan-out's store (a folder or a bucket), where the turns' joined replies went.
        media = service.media
        self.store = media.store if media is not None else MediaStore.under(data_dir)
        self.index = index if index is not None else DiskMediaIndex(data_dir / "media-sessions")

    def record_turn(self, state: TurnState) -> None:
        """Note the media a finished turn made, so `forget` can find them (an index that cannot
        be reached is logged: the turn itself went well)."""
        made = TurnMedia.of(state)
        if not made.urls:
            return
        try:
            self.index.record(state.session_id, made.to_line())
        except MediaIndexUnavailable as exc:
            log.warning("media of session not noted for forget: %s", exc)

    def export(self, session_id: Any) -> dict[str, Any]:
        """The session's whole conversation with every character, oldest turn first: the turns
        long-term memory keeps, and the recent ones short-term memory holds (the same turn in
        both is given once, as short-term memory has it: an interrupted reply as heard)."""
        session_id = check_session_id(session_id)
        characters = self.service.characters.characters
        turns: dict[tuple[str, float], ExportedTurn] = {}
        missing: list[str] = []
        for remembered in self._long_term(session_id, missing):
            turns[(remembered.character_id, remembered.at)] = ExportedTurn(
                remembered.character_id,
                Turn(remembered.user, remembered.assistant, remembered.at, media=remembered.media),
            )
        for cid in [*sorted(characters), SCENE_KEY]:
            try:
                recent = self.service.memory.recent(session_id, cid)
            except MemoryUnavailable as exc:
                raise BadSession(f"The conversation cannot be read now: {exc}") from exc
            for turn in recent:
                # A scene's line is its speaker's (none: a message nobody answered).
                speaker = turn.speaker if cid == SCENE_KEY else cid
                turns[(speaker, turn.at)] = ExportedTurn(speaker, turn)
        ordered = sorted(turns.values(), key=lambda t: t.turn.at)
        return {
            "session_id": session_id,
            "exported_at": _utc(time.time()),
            "turns": [self._turn_to_api(t, characters) for t in ordered],
            "media": [url for url in self._media_urls(session_id) if self.store.name_in_url(url)],
            "not_exported": missing,
        }

    def _long_term(self, session_id: str, missing: list[str]) -> list[RememberedTurn]:
        retriever = self.service.retriever
        if retriever is None:
            return []
        try:
            retriever.wait(FORGET_WAIT_S)
            return retriever.session_turns(session_id)
        except RetrievalUnavailable as exc:
            missing.append(f"turns older than short-term memory holds: long-term memory {exc}")
            return []

    def _turn_to_api(self, exported: ExportedTurn, characters: Mapping[str, Any]) -> dict[str, Any]:
        turn = exported.turn
        known = characters.get(exported.character)
        return {
            "character": exported.character,
            "character_name": known.name if known is not None else exported.character,
            "user": turn.user,
            "assistant": turn.assistant,
            "interrupted": turn.interrupted,
            "at": turn.at,
            "at_utc": _utc(turn.at),
            "media": [url for url in turn.media if self._still_kept(url)],
        }

    def _still_kept(self, url: str) -> bool:
        name = self.store.name_in_url(url)
        if name is None:
            return False
        try:
            return self.store.exists(name)
        except OSError:
            return False  # a link that may not work is not offered

    def export_file(self, session_id: Any) -> Path:
        """The export as a JSON file to download (a fresh temporary file)."""
        return self.export_files(session_id)[0]

    def export_files(self, session_id: Any) -> list[Path]:
        """The export to download: as JSON, and as a Markdown file to read (fresh temporary
        files)."""
        data = self.export(session_id)
        folder = Path(tempfile.gettempdir()) / "chattr-exports"
        folder.mkdir(exist_ok=True)
        # Exports hold personal data: an earlier one is not kept longer than needed to download.
        for old in [*folder.glob("*.json"), *folder.glob("*.md")]:
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < time.time() - 600:
                    old.unlink()
        handle, name = tempfile.mkstemp(prefix="conversation-", suffix=".json", dir=folder)
        with open(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2)
        readable = Path(name).with_suffix(".md")
        readable.write_text(readable_export(data), encoding="utf-8")
        return [Path(name), readable]

    def forget(self, session_id: Any) -> ForgetReport:
        """Delete everything the session left; what could not be deleted is said, not hidden."""
        session_id = check_session_id(session_id)
        report = ForgetReport(session_id)
        memory = self.service.memory
        turns: set[tuple[str, float]] = set()  # a turn in both memories counts once
        turn_media: list[str] = []  # what export links to: its files go too
        for cid in [*sorted(self.service.characters.characters), SCENE_KEY]:
            try:
                recent = memory.recent(session_id, cid)
                memory.clear(session_id, cid)
            except MemoryUnavailable as exc:
                report.not_deleted.append(f"short-term memory: {exc}")
                break
            turns.update((turn.speaker if cid == SCENE_KEY else cid, turn.at) for turn in recent)
            turn_media.extend(url for turn in recent for url in turn.media)
        retriever = self.service.retriever
        if retriever is not None:
            try:
                retriever.wait(FORGET_WAIT_S)
                remembered = retriever.session_turns(session_id)
                retriever.forget_session(session_id)
                report.long_term_memory = True
            except RetrievalUnavailable as exc:
                report.not_deleted.append(f"long-term memory: {exc}")
            else:
                turns.update((turn.character_id, turn.at) for turn in remembered)
                turn_media.extend(url for turn in remembered for url in turn.media)
        report.turns = len(turns)
        pieces = 0
        try:
            index_urls = [url for made in self.turn_media(session_id) for url in made.urls]
        except MediaIndexUnavailable as exc:
            # What long-term memory links to is still deleted below.
            report.not_deleted.append(f"media: the list of this session's media: {exc}")
            index_urls = []
        for url in dict.fromkeys([*index_urls, *turn_media]):
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
        with contextlib.suppress(MediaIndexUnavailable):  # read a moment ago; expires anyway
            self.index.drop(session_id)
        return report

    def turn_media(self, session_id: str) -> list[TurnMedia]:
        """The media each of the session's turns made, oldest first (MediaIndexUnavailable)."""
        return [TurnMedia.from_line(line) for line in self.index.lines(session_id)]

    def _media_urls(self, session_id: str) -> list[str]:
        try:
            return [url for made in self.turn_media(session_id) for url in made.urls]
        except MediaIndexUnavailable as exc:
            raise BadSession(f"The conversation's media cannot be listed now: {exc}") from exc
