"""One message in a scene, end to end: who answers, each answer streamed in turn, each with its
own speech and video; the next member's text starts while the last one's media are still made.

A scene's short-term memory is one list per session (`chattr.memory.SCENE_KEY` in place of a
character id) whose turns name their speaker; the person's message rides on the first reply to
it. Long-term memory keeps each reply under its speaker, so export and forget find scenes as they
find chats.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random as random_module
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from chattr.characters import world_info as world_info_rules
from chattr.characters.character_set import Character, CharacterNotFound
from chattr.characters.lorebook import LorebookError
from chattr.knowledge.retrieval import Context, RetrievalUnavailable
from chattr.media.fanout import MediaJob
from chattr.memory import SCENE_KEY, MemoryUnavailable, Turn
from chattr.reply import TurnState
from chattr.scene.prompt import build_scene_messages
from chattr.scene.speakers import Member, Strategy, choose_speakers
from chattr.scene.state import Greeting, SceneState
from chattr.turn.prompt import USER_NAME
from chattr.turn.service import (
    DEFAULT_VOICE,
    RETRIEVAL_WAIT_S,
    ChatService,
    TurnFailed,
    TurnRejected,
    check_text_argument,
)
from chattr.turn.spoken_text import SpeechFilter

log = logging.getLogger(__name__)

SCENE_MEMORY = SCENE_KEY


@dataclass(frozen=True)
class SceneRequest:
    """A checked scene message."""

    message: str
    members: tuple[Character, ...]
    session_id: str
    strategy: Strategy = Strategy.NATURAL
    speaker: str | None = None
    muted: frozenset[str] = frozenset()
    join_lorebooks: bool = False
    media: bool = True

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.members)


@dataclass
class _Reply:
    """One member's reply while it is made: its state, its task, and whether its text is done."""

    state: TurnState
    first: bool  # the first reply to the person's message carries it in memory
    context: Context = field(default_factory=Context)
    text_done: asyncio.Event = field(default_factory=asyncio.Event)
    llm_failed: bool = False
    task: asyncio.Task[None] | None = None
    job: MediaJob | None = None  # its media, while they are made


class SceneRunner:
    """Runs scene messages for every session, on the app's chat service."""

    def __init__(
        self,
        service: ChatService,
        *,
        max_replies: int = 4,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.service = service
        self.max_replies = max_replies
        self.random = random or random_module.random

    def validate(
        self,
        message: Any,
        characters: Any,
        session_id: Any,
        *,
        strategy: Any = "natural",
        speaker: Any = None,
        muted: Any = None,
        join_lorebooks: Any = False,
        media: Any = True,
    ) -> SceneRequest:
        """Check a scene request before any work; raise TurnRejected naming the argument."""
        check_text_argument("message", message)
        check_text_argument("session_id", session_id)
        message = message.strip()
        if len(message) > self.service.max_message_chars:
            raise TurnRejected(
                f"'message' is {len(message)} characters long; the limit is "
                f"{self.service.max_message_chars} (CHATTR_MAX_MESSAGE_CHARS)."
            )
        if not session_id or len(session_id) > 128:
            raise TurnRejected(
                f"'session_id' is {len(session_id)} characters long; it must be 1–128."
            )
        members = self._members(characters)
        ids = [c.id for c in members]
        try:
            chosen = Strategy(strategy)
        except ValueError:
            raise TurnRejected(
                f"'strategy' must be one of {', '.join(s.value for s in Strategy)}, "
                f"not {strategy!r}."
            ) from None
        if speaker in ("", None):
            speaker = None
        else:
            check_text_argument("speaker", speaker)
            if speaker not in ids:
                raise TurnRejected(
                    f"'speaker' {speaker!r} is not in the scene; its members are {', '.join(ids)}."
                )
        if muted is None:
            muted = []
        if not isinstance(muted, list | tuple) or not all(isinstance(m, str) for m in muted):
            raise TurnRejected("'muted' must be a list of character ids.")
        strangers = [m for m in muted if m not in ids]
        if strangers:
            raise TurnRejected(
                f"'muted' names {', '.join(map(repr, strangers))}, not in the scene; its members "
                f"are {', '.join(ids)}."
            )
        for name, value in (("media", media), ("join_lorebooks", join_lorebooks)):
            if not isinstance(value, bool):
                raise TurnRejected(f"'{name}' must be true or false, not {type(value).__name__}.")
        if not self.service.llm_configured:
            raise TurnRejected(self.service.llm_help)
        return SceneRequest(
            message,
            tuple(members),
            session_id,
            chosen,
            speaker,
            frozenset(muted),
            join_lorebooks,
            media,
        )

    def _members(self, characters: Any) -> list[Character]:
        if not isinstance(characters, list | tuple) or not all(
            isinstance(c, str) for c in characters
        ):
            raise TurnRejected(
                "'characters' must be a list of character ids (see the `characters` endpoint)."
            )
        if len(characters) < 2:
            named = "1 character" if len(characters) == 1 else "no character"
            raise TurnRejected(
                f"'characters' names {named}; a scene needs two or more (for one, use `chat`)."
            )
        repeated = sorted({c for c in characters if characters.count(c) > 1})
        if repeated:
            raise TurnRejected(
                f"'characters' names {', '.join(map(repr, repeated))} more than once: each "
                "member is in a scene once."
            )
        try:
            return [self.service.characters.get(c) for c in characters]
        except CharacterNotFound as exc:
            raise TurnRejected(f"'characters': {exc}") from exc

    def transcript(self, session_id: str) -> list[Turn]:
        """The scene so far, oldest line first (empty for a new scene)."""
        return self.service.memory.recent(session_id, SCENE_MEMORY)

    async def run(
        self, request: SceneRequest, *, base_url: str | None = None
    ) -> AsyncGenerator[SceneState, None]:
        """Stream a scene message: yields the state after every change; the last is done."""
        service = self.service
        llm = await anyio.to_thread.run_sync(lambda: service.llm)
        assert llm is not None
        state = SceneState(request.session_id, request.member_ids, request.message)
        transcript = await anyio.to_thread.run_sync(self._recent, state)
        if not transcript:
            transcript = await anyio.to_thread.run_sync(self._open, state, request)
            yield state
        if request.message:
            transcript.append(Turn(user=request.message, assistant=""))
        speakers = choose_speakers(
            [
                Member(c.id, c.name, c.nickname, c.talkativeness, c.id in request.muted)
                for c in request.members
            ],
            request.message,
            request.strategy,
            random=self.random,
            limit=self.max_replies,
            last_speaker=_last_speaker(transcript),
            spoken_since_person=_spoken_since_person(transcript),
            speaker=request.speaker,
        )
        by_id = {c.id: c for c in request.members}
        replies: list[_Reply] = []
        changed = asyncio.Event()
        try:
            for position, speaker_id in enumerate(speakers):
                if replies:
                    previous = replies[-1]
                    while not previous.text_done.is_set():
                        changed.clear()
                        await changed.wait()
                        _raise_failure(replies)
                        yield state
                    if previous.llm_failed:
                        break
                    if previous.state.text:
                        transcript.append(
                            Turn("", previous.state.text, speaker=previous.state.character)
                        )
                reply = _Reply(
                    TurnState(request.session_id, speaker_id, request.message), first=position == 0
                )
                state.replies.append(reply.state)
                replies.append(reply)
                reply.task = asyncio.create_task(
                    self._reply(
                        reply,
                        by_id[speaker_id],
                        request,
                        list(transcript),
                        llm,
                        changed,
                        base_url,
                        earlier=replies[:-1],
                    )
                )
            while any(r.task is not None and not r.task.done() for r in replies):
                changed.clear()
                await changed.wait()
                _raise_failure(replies)
                yield state
            _raise_failure(replies)
        finally:
            tasks = [r.task for r in replies if r.task is not None and not r.task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if replies and all(r.llm_failed for r in replies):
            raise TurnFailed(replies[0].state.errors[0].detail)
        await anyio.to_thread.run_sync(self._remember, state, request, replies)
        state.done = True
        yield state

    async def _reply(
        self,
        reply: _Reply,
        speaker: Character,
        request: SceneRequest,
        transcript: list[Turn],
        llm: Any,
        changed: asyncio.Event,
        base_url: str | None,
        *,
        earlier: Sequence[_Reply] = (),
    ) -> None:
        """One member's reply: its knowledge, its World Info, its words, its media. The
        `earlier` replies' media make way for its first audio."""
        service = self.service
        state = reply.state
        started = time.perf_counter()
        job = None
        media_done = True
        try:
            query = request.message or (transcript[-1].assistant if transcript else "")
            reply.context = await self._retrieve(state, query)
            world = await anyio.to_thread.run_sync(
                self._world_info, state, speaker, request, transcript
            )
            messages = build_scene_messages(
                speaker,
                request.members,
                transcript,
                knowledge=reply.context.knowledge,
                recalled=reply.context.recalled,
                world=world,
            )
            state.timings["prepare_s"] = time.perf_counter() - started
            if request.media and service.media is not None:
                voice = speaker.id if speaker.voice_path() is not None else DEFAULT_VOICE
                job = service.media.start(
                    speaker.id, voice, speaker.voice.language, base_url=base_url
                )
                reply.job = job
                # The earlier speakers' remaining speech and videos would otherwise hold this
                # reply's first sentence up (in the services' queues, on a CPU they share); they
                # go on once it has its speech.
                for before in earlier:
                    if before.job is not None:
                        before.job.yield_to(job)
                state.media = True
                media_done = False
            speech = SpeechFilter(speaker.voice.speak)
            try:
                async for _ in service.stream_reply(llm, messages, state, job, started, speech):
                    if job is not None:
                        state.show_media(job.media)
                    changed.set()
            except TurnFailed as exc:
                reply.llm_failed = True
                state.add_error("llm", str(exc))
                return
            reply.text_done.set()
            changed.set()
            if job is not None:
                async for _ in job.updates():
                    state.show_media(job.media)
                    changed.set()
                media_done = True
            state.timings["total_s"] = time.perf_counter() - started
        finally:
            if job is not None and not media_done:
                await job.cancel()
            state.done = True  # this reply's text and media are all it will have
            reply.text_done.set()
            changed.set()

    def _recent(self, state: SceneState) -> list[Turn]:
        try:
            return self.transcript(state.session_id)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; answering without the scene so far")
            return []

    def _open(self, state: SceneState, request: SceneRequest) -> list[Turn]:
        """A new scene opens with each member's greeting (a card's scene-only one first)."""
        opening = []
        for member in request.members:
            text = member.render(member.scene_greeting(), USER_NAME)
            state.greetings.append(Greeting(member.id, text))
            opening.append(Turn(user="", assistant=text, speaker=member.id))
        try:
            for turn in opening:
                self.service.memory.append(state.session_id, SCENE_MEMORY, turn)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; the greetings were not saved")
        return opening

    async def _retrieve(self, state: TurnState, query: str) -> Context:
        retriever = self.service.retriever
        if retriever is None or not query:
            return Context()
        try:
            await anyio.to_thread.run_sync(retriever.wait_for, state.character, RETRIEVAL_WAIT_S)
            return await anyio.to_thread.run_sync(
                retriever.retrieve, state.character, state.session_id, query
            )
        except RetrievalUnavailable as exc:
            state.add_error("knowledge", f"{exc}; answering without the character's knowledge")
            return Context()

    def _world_info(
        self,
        state: TurnState,
        speaker: Character,
        request: SceneRequest,
        transcript: Sequence[Turn],
    ) -> world_info_rules.Activation | None:
        """The speaker's lorebook entries this line activates (every member's, when the scene
        joins them), scanning the whole scene."""
        books = request.members if request.join_lorebooks else (speaker,)
        chat = [text for turn in transcript for text in (turn.user, turn.assistant) if text]
        found = []
        for owner in books:
            try:
                book = self.service.lorebooks.get(owner.folder)
            except LorebookError as exc:
                state.add_error("lorebook", f"{owner.name}'s: {exc}; answering without it")
                continue
            if book is None or not book.entries:
                continue
            found.append(
                world_info_rules.activate(
                    book,
                    chat,
                    self.service.world_info,
                    random=self.service.random,
                    render=functools.partial(owner.render, user=USER_NAME),
                )
            )
        if not found:
            return None
        return world_info_rules.Activation(
            before=tuple(t for a in found for t in a.before),
            after=tuple(t for a in found for t in a.after),
            at_depth=tuple(i for a in found for i in a.at_depth),
            entries=tuple(e for a in found for e in a.entries),
            budget_overflowed=any(a.budget_overflowed for a in found),
        )

    def _remember(self, state: SceneState, request: SceneRequest, replies: list[_Reply]) -> None:
        """The message and every reply to it, in the order spoken, into both memories."""
        turns: list[tuple[Turn, _Reply | None]] = []
        message_kept = not request.message
        for reply in replies:
            if not reply.state.text:
                continue
            media = tuple(u for u in (reply.state.audio_url, reply.state.video_url) if u)
            user = "" if message_kept else request.message
            message_kept = True
            turns.append(
                (Turn(user, reply.state.text, media=media, speaker=reply.state.character), reply)
            )
        if not message_kept:  # nobody answered: the message is still part of the scene
            turns.append((Turn(request.message, ""), None))
        memory = self.service.memory
        try:
            for turn, _ in turns:
                memory.append(state.session_id, SCENE_MEMORY, turn)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; this message and its replies were not saved")
        retriever = self.service.retriever
        if retriever is None or not retriever.ready:
            return
        for turn, made_by in turns:
            if made_by is None:
                continue
            try:
                retriever.remember(
                    turn.speaker,
                    state.session_id,
                    turn.user,
                    turn.assistant,
                    made_by.context.vector,
                    at=turn.at,
                    media=turn.media,
                )
            except Exception as exc:  # long-term memory is best effort; the replies stand
                log.warning("long-term memory write failed: %s", exc)


def _last_speaker(transcript: Sequence[Turn]) -> str | None:
    """Who said the scene's last line, when a member did."""
    if not transcript:
        return None
    last = transcript[-1]
    return last.speaker if last.assistant and last.speaker else None


def _spoken_since_person(transcript: Sequence[Turn]) -> list[str]:
    spoken: list[str] = []
    for turn in reversed(transcript):
        if turn.assistant and turn.speaker:
            spoken.append(turn.speaker)
        if turn.user:
            break
    return spoken


def _raise_failure(replies: Sequence[_Reply]) -> None:
    """A reply's task that crashed (a bug, not a failed service) ends the scene message."""
    for reply in replies:
        task = reply.task
        if task is not None and task.done() and not task.cancelled():
            failure = task.exception()
            if failure is not None:
                raise failure
