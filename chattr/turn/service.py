"""One chat turn, end to end: memory, retrieval, prompt, streamed LLM, media, write-back."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio

from chatacter_common.telemetry import span
from chattr.characters import world_info as world_info_rules
from chattr.characters.character_set import Character, CharacterNotFound, CharacterSet
from chattr.characters.lorebook import LorebookCache, LorebookError
from chattr.knowledge.retrieval import Context, RetrievalUnavailable, Retriever
from chattr.memory import MemoryUnavailable, ShortTermMemory, Turn
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn.emotions import EmotionClassifier, TagReader, without_marks
from chattr.turn.metrics import TurnMetrics
from chattr.turn.prompt import USER_NAME, build_messages
from chattr.turn.sentences import SentenceSplitter
from chattr.turn.speaking import Speaker
from chattr.turn.spoken_text import SpeechFilter
from chattr.turn.tracing import LlmSpan

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from chattr.llm import ChatModel
    from chattr.media.fanout import MediaFanout, MediaJob

log = logging.getLogger(__name__)

# vocalizr's built-in voice, for characters that have no reference clip.
DEFAULT_VOICE = "default"

# How long a turn waits for its character's knowledge to be embedded (once the knowledge model
# is loaded) before answering without it: a turn never waits on start-up for long; the page's
# status line shows what is still loading.
RETRIEVAL_WAIT_S = 1.0
# How long the emotion classifier waits for the knowledge model before embedding its prototypes.
STARTUP_WAIT_S = 300.0


class TurnRejected(Refusal):
    """The request cannot be answered as given (empty message, unknown character, ...)."""


class TurnFailed(Refusal):
    """The LLM could not produce a reply."""


def check_text_argument(name: str, value: object) -> None:
    """Refuse an argument that is not text a turn can store and send (API callers send anything)."""
    if value is None:
        raise TurnRejected(f"'{name}' is missing: send it as a string.")
    if not isinstance(value, str):
        raise TurnRejected(f"'{name}' must be a string, not {type(value).__name__}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TurnRejected(
            f"'{name}' is not valid text: character {exc.start + 1} is a lone UTF-16 surrogate "
            f"(U+{ord(value[exc.start]):04X}), which cannot be stored or sent."
        ) from None


class ChatService:
    """Runs turns for every session; one instance per app."""

    def __init__(
        self,
        *,
        characters: CharacterSet,
        memory: ShortTermMemory,
        retriever: Retriever | None,
        llm: ChatModel | Callable[[], ChatModel] | None,
        media: MediaFanout | None = None,
        max_message_chars: int = 2000,
        llm_help: str = "",
        world_info: world_info_rules.Options | None = None,
        random: Callable[[], float] | None = None,
        emotions: EmotionClassifier | None = None,
    ) -> None:
        """`emotions`: labels sentences the LLM left untagged; by default one on the
        retriever's embedder, once that is loaded."""
        self.characters = characters
        self.memory = memory
        self.retriever = retriever
        # A factory is called on first use (or by `warm_up`): building a LangChain model
        # imports langchain, which would otherwise delay the page by seconds at start-up.
        self._llm: ChatModel | None = None
        self._llm_factory: Callable[[], ChatModel] | None = None
        if callable(llm) and not hasattr(llm, "astream"):
            self._llm_factory = llm
        else:
            self._llm = llm
        self._llm_lock = threading.Lock()
        self.media = media
        self.max_message_chars = max_message_chars
        self.llm_help = llm_help
        self.world_info = world_info or world_info_rules.Options()
        self.random = random  # World Info's probability rolls; None: Python's random
        self.lorebooks = LorebookCache()
        self._emotions = emotions
        self._emotions_lock = threading.Lock()
        self.metrics = TurnMetrics()

    @property
    def llm_configured(self) -> bool:
        return self._llm is not None or self._llm_factory is not None

    @property
    def llm(self) -> ChatModel | None:
        """The chat model, built on first use."""
        if self._llm is None and self._llm_factory is not None:
            with self._llm_lock:
                if self._llm is None:
                    self._llm = self._llm_factory()
        return self._llm

    def warm_up(self) -> None:
        """Build the chat model now (in the background), so the first turn does not wait; the
        knowledge loads beside it (`chattr.run.assembly`)."""

        def build() -> None:
            started = time.perf_counter()
            try:
                if self.llm_configured:
                    self.llm  # noqa: B018 (the property builds it)
                    log.info("chat model ready in %.1f s", time.perf_counter() - started)
            except Exception:  # the turn that needs it says why; loading goes on
                log.exception("could not build the chat model")

        threading.Thread(target=build, name="chattr-llm", daemon=True).start()
        threading.Thread(target=self._prepare_emotions, name="chattr-emotions", daemon=True).start()

    def emotion_classifier(self) -> EmotionClassifier | None:
        """The classifier of untagged sentences; None while (or where) no embedder is loaded."""
        if self._emotions is None and self.retriever is not None:
            embedder = self.retriever.embedder
            if embedder is not None:
                with self._emotions_lock:
                    if self._emotions is None:
                        self._emotions = EmotionClassifier(embedder)
        return self._emotions

    def _prepare_emotions(self) -> None:
        """Embed the classifier's prototypes once knowledge has loaded, not in a turn."""
        if self.retriever is not None:
            with contextlib.suppress(RetrievalUnavailable):
                self.retriever.wait(STARTUP_WAIT_S)
        classifier = self.emotion_classifier()
        if classifier is not None:
            try:
                classifier.prepare()
            except Exception:  # a turn's sentences then hold their tags or neutral
                log.exception("could not prepare the emotion classifier")

    def add_character(self, character: Character) -> None:
        """A character installed while running (an imported card or folder): it can be talked
        to at once, and its knowledge is indexed now if retrieval is ready."""
        self.characters.characters[character.id] = character
        if self.retriever is not None and self.retriever.ready:
            self.retriever.index_character(character.id)

    def validate(
        self, message: str, character_id: str, session_id: str, greeting: int | None = None
    ) -> str:
        """Check a request before any work; return the cleaned message or raise TurnRejected."""
        for name, value in (
            ("message", message),
            ("character", character_id),
            ("session_id", session_id),
        ):
            check_text_argument(name, value)
        message = (message or "").strip()
        if not message:
            raise TurnRejected("The message is empty: type something to say to the character.")
        if len(message) > self.max_message_chars:
            raise TurnRejected(
                f"The message is {len(message)} characters long; the limit is "
                f"{self.max_message_chars} (CHATTR_MAX_MESSAGE_CHARS)."
            )
        if not session_id or len(session_id) > 128:
            raise TurnRejected("A session id (1–128 characters) is required.")
        try:
            character = self.characters.get(character_id)
        except CharacterNotFound as exc:
            raise TurnRejected(str(exc)) from exc
        count = len(character.greetings())
        if greeting is not None and not 0 <= greeting < count:
            raise TurnRejected(
                f"There is no greeting {greeting}: {character.name} has greetings 0 (the main "
                f"one) to {count - 1}."
            )
        if not self.llm_configured:
            raise TurnRejected(self.llm_help)
        return message

    async def run(
        self,
        message: str,
        character_id: str,
        session_id: str,
        *,
        media: bool = True,
        greeting: int | None = None,
        base_url: str | None = None,
    ) -> AsyncGenerator[TurnState, None]:
        """Stream a turn: yields the state after every change; the last one has done=True.

        `greeting` (an index into the character's greetings, 0 the main one) opens a new
        conversation with that greeting; a conversation already under way keeps its own.
        `base_url`: chattr's address as the caller reached it, for the reply's media URLs.
        """
        message = self.validate(message, character_id, session_id, greeting)
        llm = await anyio.to_thread.run_sync(lambda: self.llm)
        assert llm is not None
        character = self.characters.get(character_id)
        state = TurnState(session_id=session_id, character=character.id, message=message)
        started = time.perf_counter()

        with span("memory"):
            recent = await anyio.to_thread.run_sync(self._recent, state)
            if greeting is not None and not recent:
                recent = await anyio.to_thread.run_sync(self._open_with, state, character, greeting)
        state.timings["memory_s"] = time.perf_counter() - started
        with span("retrieval"):
            retrieving = time.perf_counter()
            context = await self._retrieve(state)
            state.timings["knowledge_s"] = time.perf_counter() - retrieving
        world = await anyio.to_thread.run_sync(self._world_info, state, character, recent)
        messages = build_messages(
            character,
            message,
            recent=recent,
            knowledge=context.knowledge,
            recalled=context.recalled,
            world=world,
        )
        state.timings["prepare_s"] = time.perf_counter() - started

        job = None
        if media and self.media is not None:
            # A character without a reference clip (an imported card) speaks in the default voice.
            voice = character.id if character.voice_path() is not None else DEFAULT_VOICE
            job = self.media.start(character.id, voice, character.voice.language, base_url=base_url)
            state.media = True
        media_done = job is None
        speech = SpeechFilter(character.voice.speak)
        try:
            async for _ in self.stream_reply(llm, messages, state, job, started, speech):
                if job is not None:
                    state.show_media(job.media)
                yield state
            if job is not None:
                async for _ in job.updates():
                    state.show_media(job.media)
                    yield state
                media_done = True
        finally:
            # The LLM failed, or the caller stopped listening: stop the media and drop its files.
            if job is not None and not media_done:
                await job.cancel()
        state.timings["total_s"] = time.perf_counter() - started
        with span("memory write"):
            writing = time.perf_counter()
            await anyio.to_thread.run_sync(self._remember, state, context)
            state.timings["memory_write_s"] = time.perf_counter() - writing
        state.done = True
        yield state

    async def stream_reply(
        self,
        llm: ChatModel,
        messages: list[BaseMessage],
        state: TurnState,
        job: MediaJob | None,
        started: float,
        speech: SpeechFilter,
    ) -> AsyncIterator[None]:
        """The LLM's answer into `state.text`, each complete sentence on to the media job.

        Only what the character's `voice.speak` lets through is spoken (no *actions*, stage
        directions or markdown by default); `state.text` keeps all of it for the page.
        """
        splitter = SentenceSplitter(first_clause=True)
        # Emotion tags leave the text here; each becomes a mark the sentences carry to speech.
        tags = TagReader()
        speaker = Speaker(job, self.emotion_classifier) if job is not None else None
        traced = LlmSpan.start()
        try:
            async for chunk in llm.astream(messages):
                delta = chunk.content if isinstance(chunk.content, str) else ""
                if not delta:
                    continue
                traced.chunk()
                if not state.text:
                    state.timings["first_text_s"] = time.perf_counter() - started
                marked = tags.feed(delta)
                state.text += without_marks(marked)
                if speaker is not None:
                    for sentence in splitter.feed(speech.feed(marked)):
                        speaker.say(sentence)
                yield
        except Exception as exc:
            log.warning("LLM call failed: %s", exc)
            traced.end(exc)
            raise TurnFailed(f"The language model failed: {type(exc).__name__}: {exc}") from exc
        finally:
            traced.end()  # also when the caller stopped listening mid-answer
        rest = tags.flush()
        state.text = (state.text + rest).strip()
        if speaker is not None:
            for sentence in splitter.feed(speech.feed(rest) + speech.flush()) + splitter.flush():
                speaker.say(sentence)
            speaker.close()

    def _recent(self, state: TurnState) -> list[Turn]:
        try:
            return self.memory.recent(state.session_id, state.character)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; answering without the conversation so far")
            return []

    def _open_with(self, state: TurnState, character: Character, greeting: int) -> list[Turn]:
        """Start the conversation with the chosen greeting, remembered as its first turn."""
        opening = Turn(user="", assistant=character.render(character.greetings()[greeting]))
        try:
            self.memory.append(state.session_id, state.character, opening)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; the chosen greeting was not saved")
        return [opening]

    def _world_info(
        self, state: TurnState, character: Character, recent: list[Turn]
    ) -> world_info_rules.Activation | None:
        """The lorebook's entries this turn activates, scanning the chat and the new message."""
        try:
            book = self.lorebooks.get(character.folder)
        except LorebookError as exc:
            state.add_error("lorebook", f"{exc}; answering without World Info")
            return None
        if book is None or not book.entries:
            return None
        chat: list[str] = []
        if not recent:
            chat.append(character.render(character.greeting, USER_NAME))
        for turn in recent:
            chat.extend(text for text in (turn.user, turn.assistant) if text)
        chat.append(state.message)
        return world_info_rules.activate(
            book,
            chat,
            self.world_info,
            random=self.random,
            render=lambda text: character.render(text, USER_NAME),
        )

    async def _retrieve(self, state: TurnState) -> Context:
        if self.retriever is None:
            return Context()
        retriever = self.retriever
        try:
            await anyio.to_thread.run_sync(retriever.wait_for, state.character, RETRIEVAL_WAIT_S)
            return await anyio.to_thread.run_sync(
                retriever.retrieve, state.character, state.session_id, state.message
            )
        except RetrievalUnavailable as exc:
            state.add_error("knowledge", f"{exc}; answering without the character's knowledge")
            return Context()

    def _remember(self, state: TurnState, context: Context) -> None:
        if not state.text:
            return
        media = tuple(url for url in (state.audio_url, state.video_url) if url)
        # One time for both memories: undo finds the long-term copy by it.
        turn = Turn(state.message, state.text, media=media)
        try:
            self.memory.append(state.session_id, state.character, turn)
        except MemoryUnavailable as exc:
            state.add_error("memory", f"{exc}; this turn was not saved")
        if self.retriever is not None and self.retriever.ready:
            try:
                self.retriever.remember(
                    state.character,
                    state.session_id,
                    state.message,
                    state.text,
                    context.vector,
                    at=turn.at,
                    media=media,
                )
            except Exception as exc:  # long-term memory is best effort; the reply stands
                log.warning("long-term memory write failed: %s", exc)

    def undo(self, session_id: str, character_id: str) -> Turn | None:
        """Drop the last turn from both memories (for regenerate / undo); the chosen greeting
        that opened the conversation stays. Its media stay listed for `forget`."""
        try:
            turns = self.memory.recent(session_id, character_id)
            if not turns or not turns[-1].user:
                return None
            turn = self.memory.pop_last(session_id, character_id)
        except MemoryUnavailable:
            return None
        if turn is None:
            return None
        # Written to long-term memory only once it was ready: nothing there to find before.
        if self.retriever is not None and self.retriever.ready:
            try:
                self.retriever.forget_turn(character_id, session_id, turn.at)
            except Exception as exc:  # said in the log; the undo itself stands
                log.warning("the undone turn stays in long-term memory: %s", exc)
        return turn

    def reset(self, session_id: str, character_id: str) -> None:
        """Start the conversation over."""
        with contextlib.suppress(MemoryUnavailable):
            self.memory.clear(session_id, character_id)
        if self.retriever is not None and self.retriever.ready:
            self.retriever.forget_session(session_id)
