"""Voice in the page: a microphone button for one spoken message, and a live, hands-free mode.

Push to talk: record, stop; the recording is transcribed by vocalizr and answered like a typed
message. Live mode: the microphone streams here in 100 ms chunks; voice activity and the turn
model end each turn (`chattr.voice.utterances`), which becomes the next turn; the reply's clips
play one after another as they are made; saying a few words over them stops them (barge-in,
`chattr.voice.live`). Every turn, typed or spoken, runs through the app's turn loop
(`chattr.turn.loop`); in a scene, a spoken message runs through the scene's (`chattr.scene.loop`,
by way of the page's scene handlers), its members' clips play one after another, and talking over
them stops them as it stops one character's.

Signals between the stream and the page go through hidden text boxes whose value changes
("speech started", "an utterance is ready", "words interrupt the reply"): a change runs a
handler. Speech starting runs JavaScript that says whether a clip plays; an interruption runs
JavaScript that pauses every clip and reports what had been played.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import anyio
import gradio as gr

from chattr.reply import TurnState, WordTime
from chattr.scene.loop import lines_remembered
from chattr.scene.state import SceneState
from chattr.turn.loop import TurnLoop
from chattr.turn.service import TurnRejected
from chattr.voice.live import (
    Listening,
    LiveConversation,
    LiveReply,
    PlayedClip,
    parse_played,
)
from chattr.voice.speech_in import transcribe_speech
from chattr.voice.utterances import Utterance

Message = dict[str, Any]
MediaMessages = Callable[[TurnState], list[str]]
SyncMedia = Callable[[list[Message], list[Message], list[str]], None]

MAX_RECORDING_BYTES = 20_000_000


class SceneVoice(Protocol):
    """A message said in a scene: how it runs and shows on the page (`chattr.web.scene_page`,
    a layer above this one), and what memory keeps of replies the person talked over."""

    def scene_session(self, stored: Any) -> str | None:
        """The scene's conversation id when the page shows a scene (`stored`: the page's scene
        as the browser keeps it), else None."""
        ...

    def say(
        self,
        stored: Any,
        history: list[Message],
        message: str,
        *,
        media: bool,
        strategy: Any,
        request: Any,
        stop: Callable[[], bool],
    ) -> AsyncGenerator[tuple[list[Message], SceneState], None]:
        """Run `message` in the scene: the chat and the scene's state after every change; once
        `stop()` says so, the replies stop and the last chat shows them stopped."""
        ...

    def keep_heard(
        self, session_id: str, said: str, heard: Sequence[tuple[str, str]], *, replaces: int
    ) -> None:
        """Memory keeps what was heard of each member's reply (`SceneLoop.keep_heard`)."""
        ...

    def mark_cut(self, history: list[Message], speaker: str) -> list[Message]:
        """The chat with `speaker`'s reply to the last message marked as interrupted (once)."""
        ...


def spoken_sentences(
    state: SceneState,
) -> tuple[list[str], list[list[str | None]], list[str], list[tuple[WordTime, ...]]]:
    """A scene message's sentences in the order spoken, every member's one after another: their
    texts, their clips' URLs, their speakers, their words' times (for `LiveReply.update`)."""
    segments = [(reply.character, s) for reply in state.replies for s in reply.segments]
    return (
        [s.text for _, s in segments],
        [[s.audio_url, s.video_url] for _, s in segments],
        [speaker for speaker, _ in segments],
        [s.words for _, s in segments],
    )


# Defines window.chattrLive once per page: sequential playback in live mode, and `stop`, which
# pauses every clip of the conversation and reports how far each had played.
PAGE_JS = """
() => {
  if (window.chattrLive) return;
  const clips = () => Array.from(
    document.querySelectorAll('#chattr-chat audio, #chattr-chat video'));
  // The clips in the order spoken, with a mark where a reply's next clip is still being made
  // (in a scene, a later member's clips wait for it) and the person's messages (a mark left
  // behind by a message they talked over holds back nothing said after it).
  const queue = () => Array.from(document.querySelectorAll(
    '#chattr-chat [data-testid="user"], #chattr-chat audio, #chattr-chat video, ' +
    '#chattr-chat .chattr-pending'));
  // A scene always plays its clips one after another (its stage is on the page).
  const inScene = () => document.querySelector('#chattr-scene-stage') !== null;
  const isWhole = (el) => {
    const caption = el.closest('figure')?.querySelector('figcaption')?.textContent || '';
    return caption.startsWith('The whole reply');
  };
  const said = () => Array.from(document.querySelectorAll('#chattr-chat [data-testid="user"]'));
  const live = {
    on: false,
    // The person's last message when they talked over the reply to it: a clip of that reply
    // that reaches the page after it was stopped is never played.
    fence: null,
    playing() { return clips().some((el) => !el.paused && !el.ended); },
    retire() { clips().forEach((el) => { el.dataset.chattrDone = '1'; }); },
    playNext() {
      if (!(live.on || inScene()) || live.playing()) return;
      if (live.fence && !live.fence.isConnected) live.fence = null;  // another conversation
      let waiting = false;
      let fenced = false;
      for (const next of queue()) {
        if (next.matches('[data-testid="user"]')) {
          waiting = false;
          fenced = next === live.fence;
          continue;
        }
        if (next.classList.contains('chattr-pending')) { waiting = true; continue; }
        if (next.dataset.chattrDone || isWhole(next)) continue;
        if (fenced) { next.dataset.chattrDone = '1'; continue; }
        if (waiting) return;
        next.dataset.chattrDone = '1';
        next.addEventListener('ended', () => live.playNext(), {once: true});
        next.play().catch(() => live.playNext());
        return;
      }
    },
    stop() {
      const playing = live.playing();
      const report = [];
      clips().forEach((el) => {
        if (el.currentTime > 0 || el.ended) {
          report.push({src: el.currentSrc || el.src, t: el.currentTime, d: el.duration || 0,
                       ended: el.ended});
        }
        el.pause();
        el.dataset.chattrDone = '1';
      });
      live.fence = said().pop() || null;
      return JSON.stringify({playing: playing, clips: report});
    },
  };
  window.chattrLive = live;
  const watch = () => {
    const chat = document.querySelector('#chattr-chat');
    if (!chat) { setTimeout(watch, 200); return; }
    new MutationObserver(() => live.playNext()).observe(chat, {childList: true, subtree: true});
  };
  watch();
}
"""

# The live switch: before the first utterance, earlier clips are never replayed.
LIVE_ON_JS = (
    "(on) => { const l = window.chattrLive; if (l) { l.on = on; if (on) l.retire(); } return on; }"
)
STOP_JS = "(signal, chat) => [window.chattrLive ? window.chattrLive.stop() : '', chat]"
PLAYING_JS = "(signal) => (window.chattrLive && window.chattrLive.playing()) ? 'playing' : ''"
INTERRUPTED = " ⏹ (interrupted)"
# How long a turn heard over a reply waits for the page to stop that reply before it starts.
STOP_WAIT_S = 2.0
# How long a scene message heard over the last one waits for that one to stop and keep what was
# heard of it (its transcript is what the next message reads).
SETTLE_WAIT_S = 5.0

CSS = ".chattr-signal { display: none !important; }"


class LiveRegistry:
    """One LiveConversation per page load (Gradio's session hash)."""

    def __init__(self, factory: Callable[[], LiveConversation] = LiveConversation) -> None:
        """`factory` makes each page's conversation (`Listening.conversation`, from settings)."""
        self._factory = factory
        self._live: dict[str, LiveConversation] = {}

    def get(self, request: gr.Request) -> LiveConversation:
        key = request.session_hash or "anonymous"
        if key not in self._live:
            self._live[key] = self._factory()
        return self._live[key]

    def drop(self, request: gr.Request) -> None:
        self._live.pop(request.session_hash or "anonymous", None)


def _retrieve_failure(task: asyncio.Task[str]) -> None:
    """A guess nobody awaits (the person went on talking): its failure is not an error."""
    if not task.cancelled():
        task.exception()


def parse_stop_report(report: str) -> tuple[list[PlayedClip], bool]:
    """The page's report from STOP_JS: (the clips it stopped, whether one was playing); junk
    counts as nothing played."""
    try:
        parsed = json.loads(report) if report else {}
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        return [], False
    return parse_played(parsed.get("clips")), bool(parsed.get("playing"))


def mark_interrupted(history: list[Message], marker: str | None = None) -> list[Message]:
    """The chat with its last reply's text marked as interrupted (once); with `marker`, the last
    reply whose text holds it (in a scene, a member's). The page sends messages back as lists of
    parts; the reply's clips are messages of their own (HTML figures)."""
    for message in reversed(history):
        if message.get("role") == "user":
            break
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for index in range(len(parts) - 1, -1, -1):
            part = parts[index]
            text = part.get("text") if isinstance(part, dict) else part
            if not isinstance(text, str) or text.lstrip().startswith("<figure"):
                continue
            if marker is not None and marker not in text:
                continue
            if not text.endswith(INTERRUPTED):
                marked = text + INTERRUPTED
                parts[index] = {**part, "text": marked} if isinstance(part, dict) else marked
                message["content"] = parts if isinstance(content, list) else parts[0]
            return history
    return history


class VoiceControls:
    """The page's voice handlers, over one app's turn loop: a spoken turn passes the same gate,
    is recorded the same way and is refused in the same words as a typed one. `lay_out` adds the
    controls to the page being built and wires them to these handlers.

    `media_messages` and `sync_media` show a turn's media in the chat as the page does
    (`chattr.web.handlers`, a layer above this one); `scenes` runs a message said while the page
    shows a scene.
    """

    def __init__(
        self,
        loop: TurnLoop,
        *,
        media_messages: MediaMessages,
        sync_media: SyncMedia,
        registry: LiveRegistry | None = None,
        listening: Listening | None = None,
        scenes: SceneVoice | None = None,
    ) -> None:
        self.loop = loop
        self.service = loop.service
        self.media_messages = media_messages
        self.sync_media = sync_media
        self.scenes = scenes
        self.listening = listening or Listening()
        self.registry = registry or LiveRegistry(self.listening.conversation)
        self._warming: set[asyncio.Task[None]] = (
            set()
        )  # kept until done (the loop holds tasks weakly)

    def lay_out(
        self,
        *,
        chatbot: gr.Chatbot,
        character: gr.State | gr.BrowserState,
        session: gr.State | gr.BrowserState,
        media_on: gr.Checkbox,
        scene: gr.State | gr.BrowserState | None = None,
        strategy: gr.Component | None = None,
    ) -> None:
        """Add the microphone button and the live mode to the page being built; with `scene`
        (the page's scene, as `scenes` reads it) and `strategy` (who answers in it), a message
        said while the page shows a scene is the scene's."""
        with gr.Row():
            recorder = gr.Audio(
                sources=["microphone"],
                type="filepath",
                label="Speak a message",
                elem_id="chattr-mic",
                scale=2,
            )
            with gr.Column(scale=3):
                live_on = gr.Checkbox(
                    value=False,
                    label="Live conversation (hands-free: talk, pause, listen; speak to interrupt)",
                    elem_id="chattr-live-on",
                )
                live_mic = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    label="Live microphone",
                    elem_id="chattr-live-mic",
                    visible=False,
                )
        live_status = gr.Markdown("", elem_id="chattr-live-status")
        speech_signal = gr.Textbox(elem_classes=["chattr-signal"], elem_id="chattr-speech-signal")
        utterance_signal = gr.Textbox(elem_classes=["chattr-signal"], elem_id="chattr-utterance")
        interrupt_signal = gr.Textbox(elem_classes=["chattr-signal"], elem_id="chattr-interrupt")

        private: dict[str, Any] = {"api_visibility": "private"}
        in_scene: list[Any] = [c for c in (scene, strategy) if c is not None]
        recorder.start_recording(self.start_recording, None, None, queue=False, **private)
        recorder.stop_recording(
            self.speak_message,
            [recorder, chatbot, character, session, media_on, *in_scene],
            [chatbot, recorder],
            **private,
        )
        live_on.change(self.toggle_live, live_on, live_mic, js=LIVE_ON_JS, queue=False, **private)
        live_mic.stream(
            self.hear,
            [live_mic, character, session],
            [speech_signal, utterance_signal, interrupt_signal],
            stream_every=0.1,
            time_limit=3600,
            concurrency_limit=None,
            **private,
        )
        live_mic.stop_recording(self.flush, None, utterance_signal, **private)
        speech_signal.change(
            self.speech_started, speech_signal, None, js=PLAYING_JS, queue=False, **private
        )
        interrupt_signal.change(
            self.barge_in,
            [interrupt_signal, chatbot],
            [chatbot, live_status],
            js=STOP_JS,
            queue=False,
            **private,
        )
        utterance_signal.change(
            self.live_turn,
            [chatbot, character, session, media_on, *in_scene],
            [chatbot, interrupt_signal, live_status, utterance_signal],
            trigger_mode="multiple",
            **private,
        )

    # --- a spoken turn ---

    async def answer(
        self,
        text: str,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        live: LiveConversation | None,
        request: gr.Request,
        scene: Any = None,
        strategy: Any = None,
    ) -> AsyncIterator[list[Message]]:
        """One turn for a spoken message (in the scene, when the page shows one); in live mode
        it stops when the person barges in, and memory keeps only what they heard of it."""
        scene_session = self.scenes.scene_session(scene) if self.scenes is not None else None
        if scene_session is not None:
            async for shown in self.answer_in_scene(
                text, history, scene, scene_session, with_media, strategy, live, request
            ):
                yield shown
            return
        reply_message: Message = {"role": "assistant", "content": ""}
        reply: LiveReply | None = None
        async with self.loop.turn(request, text, cid, session_id, media=with_media) as turn:
            history.append({"role": "user", "content": text})
            history.append(reply_message)
            media: list[Message] = []
            yield history
            if live is not None:
                reply = live.begin_reply(text)
                live.session_id, live.character_id = session_id, cid
            async for state in turn:
                if live is not None and live.interrupt_requested:
                    break  # leaving the turn stops it and its media
                reply_message["content"] = state.text or "…"
                if live is None or not live.stop_asked:
                    # Once the page is asked to stop, a clip added would play after the stop.
                    self.sync_media(history, media, self.media_messages(state))
                if reply is not None:
                    reply.update(
                        [s.text for s in state.segments],
                        [(s.audio_url, s.video_url) for s in state.segments],
                        words=[s.words for s in state.segments],
                    )
                yield history
        if live is not None and reply is not None and live.finish(reply, remembered=turn.done):
            # The person spoke over it while it was still being made: keep only what was heard.
            self.keep_heard(session_id, cid, reply)
            reply_message["content"] += INTERRUPTED
            yield history

    async def answer_in_scene(
        self,
        text: str,
        history: list[Message],
        scene: Any,
        scene_session: str,
        with_media: bool,
        strategy: Any,
        live: LiveConversation | None,
        request: gr.Request,
    ) -> AsyncIterator[list[Message]]:
        """A spoken message in the scene: every member who answers, one after another; in live
        mode talking over them stops them all, and memory keeps what was heard of each."""
        reply: LiveReply | None = None
        state: SceneState | None = None
        shown = history
        earlier = live.reply if live is not None else None
        if earlier is not None and earlier.interrupted and earlier.scene_session:
            if not earlier.finished:
                # The message talked over keeps what was heard of it before this one reads the
                # scene.
                await anyio.to_thread.run_sync(earlier.over.wait, SETTLE_WAIT_S)
            # This chat was the page's when the person stopped talking, maybe before the message
            # talked over was marked: marked here, so that this message's chat keeps the mark.
            history = self.mark_cut_in_scene(history, earlier)

        def stop() -> bool:
            # This reply's own mark: the next reply's start clears the conversation's.
            return reply is not None and reply.interrupted

        assert self.scenes is not None
        said = self.scenes.say(
            scene,
            history,
            text,
            media=with_media,
            strategy=strategy,
            request=request,
            stop=stop,
        )
        async with contextlib.aclosing(said):
            async for shown, state in said:
                if live is not None and reply is None:  # admitted: this reply can be talked over
                    reply = live.begin_reply(text)
                    reply.scene_session = scene_session
                if reply is not None:
                    reply.update(*spoken_sentences(state))
                yield shown
        if live is None or reply is None or state is None:
            return
        if state.done:
            reply.scene_lines = lines_remembered(state)
        if live.finish(reply, remembered=state.done):
            # The person spoke over it while it was still being made: keep only what was heard.
            yield self.keep_heard_in_scene(shown, reply)

    def keep_heard(self, session_id: str, cid: str, reply: LiveReply) -> None:
        self.loop.keep_heard(
            session_id, cid, reply.user, reply.heard, replaces_reply=reply.remembered
        )

    def keep_heard_in_scene(self, history: list[Message], reply: LiveReply) -> list[Message]:
        """A scene message talked over: memory keeps what was heard of it; the chat marks it."""
        assert self.scenes is not None
        self.scenes.keep_heard(
            reply.scene_session,
            reply.user,
            reply.heard_by_speaker,
            replaces=reply.scene_lines if reply.remembered else 0,
        )
        return self.mark_cut_in_scene(history, reply)

    def mark_cut_in_scene(self, history: list[Message], reply: LiveReply) -> list[Message]:
        if self.scenes is None or not reply.heard_by_speaker:
            return history
        return self.scenes.mark_cut(history, reply.heard_by_speaker[-1][0])

    # --- push to talk ---

    async def speak_message(
        self,
        path: str | None,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        scene: Any = None,
        strategy: Any = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        if not path:
            yield gr.skip(), gr.skip()
            return
        assert request is not None  # Gradio's to fill in
        with self.loop.refusals_shown():
            text = await self.recording_transcript(path, cid)
        async for updated in self.answer(
            text,
            list(history or []),
            cid,
            session_id,
            with_media,
            None,
            request,
            scene,
            strategy,
        ):
            yield updated, None

    async def recording_transcript(self, path: str, cid: str) -> str:
        """What the person said in a recording from the microphone button."""
        data = await anyio.Path(path).read_bytes()
        if len(data) > MAX_RECORDING_BYTES:
            raise TurnRejected("The recording is too long; speak one message at a time.")
        language = self.service.characters.get(cid).voice.language
        text = await transcribe_speech(self.service, data, language)
        if not text:
            raise TurnRejected(
                "Nothing was heard in the recording; speak closer to the microphone."
            )
        return text

    async def start_recording(self) -> None:
        self.warm_transcription()

    def warm_transcription(self) -> None:
        """Someone is about to speak: vocalizr loads its speech-to-text now, in the background."""
        vocalizr = self.service.media.vocalizr if self.service.media is not None else None
        if vocalizr is not None:
            task = asyncio.create_task(vocalizr.warm_transcription())
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    # --- live mode ---

    async def toggle_live(self, on: bool, request: gr.Request) -> Any:
        if on:
            self.warm_transcription()
            await anyio.to_thread.run_sync(self.listening.model)  # loaded once, here
        else:
            self.registry.drop(request)
        return gr.update(visible=on)

    async def hear(
        self, chunk: Any, cid: str, session_id: str, request: gr.Request
    ) -> tuple[Any, Any, Any]:
        """One chunk of the live microphone: signals the page when speech starts (is a clip
        playing?), when an utterance is ready (a turn, once no other runs) and when words
        interrupt the reply."""
        live = self.registry.get(request)
        live.session_id, live.character_id = session_id, cid
        if chunk is None:
            return gr.skip(), gr.skip(), gr.skip()
        sample_rate, samples = chunk
        # The turn model may run on this chunk: off the event loop.
        started, _ = await anyio.to_thread.run_sync(live.hear, int(sample_rate), samples)
        ready = live.turn_to_tell()
        self.guess_ahead(live, cid)
        interrupt = self.check_words(live, cid)
        if interrupt:
            live.asking_to_stop()
        live.signals += int(started) + int(ready) + int(interrupt)
        return (
            str(live.signals) if started else gr.skip(),
            str(live.signals) if ready else gr.skip(),
            str(live.signals) if interrupt else gr.skip(),
        )

    def check_words(self, live: LiveConversation, cid: str) -> bool:
        """Speech over the reply: transcribe it as it grows, one check at a time; True once a
        finished check finds words that interrupt."""
        check = live.word_check
        interrupt = False
        if check is not None and check.done():
            live.word_check = None
            if not check.cancelled() and check.exception() is None:
                interrupt = live.words_checked(str(check.result()))
        so_far = None if interrupt else live.words_to_check()
        if so_far is not None and cid in self.service.characters.characters:
            language = self.service.characters.get(cid).voice.language
            task = asyncio.create_task(transcribe_speech(self.service, so_far.wav(), language))
            task.add_done_callback(_retrieve_failure)
            live.word_check = task
        return interrupt

    def speech_started(self, playing: str, request: gr.Request) -> None:
        """The page says whether a clip was playing when the person began to speak: if so,
        their words are checked before it stops."""
        self.registry.get(request).speech_over_reply(playing=playing == "playing")

    def guess_ahead(self, live: LiveConversation, cid: str) -> None:
        """Transcribe the words so far while the pause that may end them is waited out; used if
        the pause does end the utterance."""
        guess = live.pause_to_guess_on()
        if guess is None or cid not in self.service.characters.characters:
            return
        language = self.service.characters.get(cid).voice.language
        task = asyncio.create_task(transcribe_speech(self.service, guess.wav(), language))
        task.add_done_callback(_retrieve_failure)
        replaced = live.keep_guess(guess, task)
        if replaced is not None:
            replaced.cancel()

    def flush(self, request: gr.Request) -> Any:
        live = self.registry.get(request)
        live.flush()
        if not live.turn_to_tell():
            return gr.skip()  # nothing was being said, or the turn running tells it as it ends
        live.signals += 1
        return str(live.signals)

    def barge_in(self, report: str, history: list[Message], request: gr.Request) -> tuple[Any, Any]:
        live = self.registry.get(request)
        clips, playing = parse_stop_report(report)
        stopped = live.barge_in(clips, playing=playing)
        if stopped is None:
            return gr.skip(), gr.skip()
        said = f": “{live.overheard}”" if live.overheard else ""
        status = f"⏹ Heard you interrupt{said}. Stopped to listen."
        if not stopped.finished:
            return gr.skip(), status  # the running turn marks its own reply
        # The turn had ended already (its clips were still playing): fix its memory and its
        # message here.
        if stopped.scene_session:
            return self.keep_heard_in_scene(list(history or []), stopped), status
        self.keep_heard(live.session_id, live.character_id, stopped)
        return mark_interrupted(list(history or [])), status

    async def live_turn(
        self,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        scene: Any = None,
        strategy: Any = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[tuple[Any, Any, Any, Any]]:
        """The next utterance's turn. Turns run one at a time, each started by the page with the
        chat as it is then: an utterance that ended while this one ran is told as it ends.
        `scene`, `strategy`: the page's scene, when one is open."""
        assert request is not None  # Gradio's to fill in
        live = self.registry.get(request)
        utterance = live.start_turn()
        try:
            if utterance is not None:
                async for update in self.spoken_turn(
                    live, utterance, history, cid, session_id, with_media, request, scene, strategy
                ):
                    yield *update, gr.skip()
        finally:
            live.end_turn()
        if live.turn_to_tell():
            live.signals += 1
            yield gr.skip(), gr.skip(), gr.skip(), str(live.signals)
        else:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()

    async def spoken_turn(
        self,
        live: LiveConversation,
        utterance: Utterance,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        request: gr.Request,
        scene: Any = None,
        strategy: Any = None,
    ) -> AsyncIterator[tuple[Any, Any, Any]]:
        """One utterance's turn: (the chat, the interrupt signal, the live status) as it goes."""
        with self.loop.refusals_shown():
            text = await self.utterance_transcript(live, utterance, cid)
        if not text:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        reply = live.reply
        if live.over_reply(utterance) and reply is not None:
            if not reply.interrupted:
                if not live.interrupts(text):
                    # A backchannel, a cough or the reply's echo: the character goes on.
                    yield gr.skip(), gr.skip(), f"(heard “{text.strip()}” and kept talking)"
                    return
                # Words enough, ended before a check caught them: stop the reply first.
                live.asking_to_stop()
                live.signals += 1
                yield gr.skip(), str(live.signals), gr.skip()
                await anyio.to_thread.run_sync(live.wait_stopped, STOP_WAIT_S)
            if reply.interrupted:
                # The page may have sent this chat before `barge_in` marked that reply in it.
                history = mark_interrupted(list(history or []))
        async for updated in self.answer(
            text,
            list(history or []),
            cid,
            session_id,
            with_media,
            live,
            request,
            scene,
            strategy,
        ):
            yield updated, gr.skip(), gr.skip()

    async def utterance_transcript(
        self, live: LiveConversation, utterance: Utterance, cid: str
    ) -> str:
        """What was said: the guess made during the pause, when it was of this utterance; else
        transcribed now."""
        guessed, stale = live.take_guess(utterance)
        if stale is not None:
            stale.cancel()
        if guessed is not None:
            return str(await guessed)
        language = self.service.characters.get(cid).voice.language
        return await transcribe_speech(self.service, utterance.wav(), language)
