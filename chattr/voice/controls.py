"""Voice in the page: a microphone button for one spoken message, and a live, hands-free mode.

Push to talk: record, stop; the recording is transcribed by vocalizr and answered like a typed
message. Live mode: the microphone streams here in 100 ms chunks; voice activity ends each
utterance (`chattr.listening`), which becomes the next turn; the reply's clips play one after
another as they are made; speaking over them stops them at once (barge-in, `chattr.live`).

Signals between the stream and the page go through two hidden text boxes whose value changes
("speech started", "an utterance is ready"): a change runs a handler, and the barge-in handler
runs JavaScript first, which pauses every clip and reports what had been played.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import gradio as gr

from chattr.access.gate import Gate
from chattr.access.rate_limits import Refused
from chattr.media.clients import ServiceError
from chattr.memory import MemoryUnavailable, Turn
from chattr.reply import TurnState
from chattr.turn.service import ChatService, TurnFailed, TurnRejected
from chattr.voice.live import LiveConversation, LiveReply, parse_played

log = logging.getLogger(__name__)

Message = dict[str, Any]
MediaMessages = Callable[[TurnState], list[str]]
SyncMedia = Callable[[list[Message], list[Message], list[str]], None]

MAX_RECORDING_BYTES = 20_000_000

# Defines window.chattrLive once per page: sequential playback in live mode, and `stop`, which
# pauses every clip of the conversation and reports how far each had played.
PAGE_JS = """
() => {
  if (window.chattrLive) return;
  const clips = () => Array.from(
    document.querySelectorAll('#chattr-chat audio, #chattr-chat video'));
  const isWhole = (el) => {
    const caption = el.closest('figure')?.querySelector('figcaption')?.textContent || '';
    return caption.startsWith('The whole reply');
  };
  const live = {
    on: false,
    playing() { return clips().some((el) => !el.paused && !el.ended); },
    retire() { clips().forEach((el) => { el.dataset.chattrDone = '1'; }); },
    playNext() {
      if (!live.on || live.playing()) return;
      const next = clips().find((el) => !el.dataset.chattrDone && !isWhole(el));
      if (!next) return;
      next.dataset.chattrDone = '1';
      next.addEventListener('ended', () => live.playNext(), {once: true});
      next.play().catch(() => live.playNext());
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
INTERRUPTED = " ⏹ (interrupted)"

CSS = ".chattr-signal { display: none !important; }"


class LiveRegistry:
    """One LiveConversation per page load (Gradio's session hash)."""

    def __init__(self, factory: Callable[[], LiveConversation] = LiveConversation) -> None:
        self._factory = factory
        self._live: dict[str, LiveConversation] = {}

    def get(self, request: gr.Request) -> LiveConversation:
        key = request.session_hash or "anonymous"
        if key not in self._live:
            self._live[key] = self._factory()
        return self._live[key]

    def drop(self, request: gr.Request) -> None:
        self._live.pop(request.session_hash or "anonymous", None)


async def transcribe(service: ChatService, audio: bytes, language: str) -> str:
    """What the person said, by vocalizr's transcription route; a page error says why not."""
    vocalizr = service.media.vocalizr if service.media is not None else None
    if vocalizr is None:
        raise gr.Error("Speech input needs vocalizr, which is not configured or not running.")
    try:
        return (await vocalizr.transcribe(audio, "speech.wav", language)).strip()
    except ServiceError as exc:
        raise gr.Error(f"Could not transcribe what you said: {exc.detail}") from exc


def remember_heard(service: ChatService, session_id: str, cid: str, reply: LiveReply) -> None:
    """Memory keeps what the person heard of an interrupted reply, marked as interrupted."""
    try:
        if reply.remembered:
            service.memory.pop_last(session_id, cid)
        service.memory.append(
            session_id, cid, Turn(reply.user, reply.heard or "…", interrupted=True)
        )
    except MemoryUnavailable as exc:
        log.warning("could not record the interrupted turn: %s", exc)


def _retrieve_failure(task: asyncio.Task[str]) -> None:
    """A guess nobody awaits (the person went on talking): its failure is not an error."""
    if not task.cancelled():
        task.exception()


def mark_interrupted(history: list[Message]) -> list[Message]:
    """The chat with its last reply's text marked as interrupted (once). The page sends messages
    back as lists of parts; the reply's clips are messages of their own (HTML figures)."""
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
            if not text.endswith(INTERRUPTED):
                marked = text + INTERRUPTED
                parts[index] = {**part, "text": marked} if isinstance(part, dict) else marked
                message["content"] = parts if isinstance(content, list) else parts[0]
            return history
    return history


def add_voice_controls(
    service: ChatService,
    *,
    chatbot: gr.Chatbot,
    character: gr.State,
    session: gr.State,
    media_on: gr.Checkbox,
    media_messages: MediaMessages,
    sync_media: SyncMedia,
    gate: Gate,
    base_url: Callable[[gr.Request | None], str | None],
    record_turn: Callable[[TurnState], None],
) -> LiveRegistry:
    """Add the microphone button and the live mode to the page being built; spoken turns pass
    the same fair-use gate as typed ones, and their media URLs start where the page is."""
    registry = LiveRegistry()
    warming: set[asyncio.Task[None]] = set()  # kept until done (the loop holds tasks weakly)
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
    speech_signal = gr.Textbox(elem_classes=["chattr-signal"], elem_id="chattr-speech-signal")
    utterance_signal = gr.Textbox(elem_classes=["chattr-signal"], elem_id="chattr-utterance")

    async def answer(
        text: str,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        live: LiveConversation | None,
        request: gr.Request,
    ) -> AsyncIterator[list[Message]]:
        """One turn for a spoken message; in live mode it stops when the person barges in."""
        try:
            service.validate(text, cid, session_id)
        except TurnRejected as exc:
            raise gr.Error(str(exc)) from exc
        history.append({"role": "user", "content": text})
        reply_message: Message = {"role": "assistant", "content": ""}
        history.append(reply_message)
        media: list[Message] = []
        yield history
        reply = live.begin_reply(text) if live is not None else None
        if live is not None:
            live.session_id, live.character_id = session_id, cid
        turn = service.run(text, cid, session_id, media=with_media, base_url=base_url(request))
        state: TurnState | None = None
        try:
            async with gate.turn(request, session_id):
                async for state in turn:
                    reply_message["content"] = state.text or "…"
                    sync_media(history, media, media_messages(state))
                    if reply is not None:
                        reply.update(
                            [s.text for s in state.segments],
                            [(s.audio_url, s.video_url) for s in state.segments],
                        )
                    yield history
                    if live is not None and live.interrupt_requested:
                        break
        except Refused as exc:
            history.pop()
            raise gr.Error(str(exc)) from exc
        except TurnFailed as exc:
            history.pop()
            raise gr.Error(str(exc)) from exc
        finally:
            await turn.aclose()  # an interrupted turn cancels its media here
            if state is not None:
                record_turn(state)  # so `forget` finds its media, interrupted or not
        if reply is None or live is None:
            return
        done = state is not None and state.done
        if live.finish(reply, remembered=done):
            # The person spoke over it while it was still being made: keep only what was heard.
            remember_heard(service, session_id, cid, reply)
            reply_message["content"] += INTERRUPTED
            yield history

    async def speak_message(
        path: str | None,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        if not path:
            yield gr.skip(), gr.skip()
            return
        data = await anyio.Path(path).read_bytes()
        if len(data) > MAX_RECORDING_BYTES:
            raise gr.Error("The recording is too long; speak one message at a time.")
        character_obj = service.characters.get(cid)
        text = await transcribe(service, data, character_obj.voice.language)
        if not text:
            raise gr.Error("Nothing was heard in the recording; speak closer to the microphone.")
        async for updated in answer(
            text, list(history or []), cid, session_id, with_media, None, request
        ):
            yield updated, None

    recorder.stop_recording(
        speak_message,
        [recorder, chatbot, character, session, media_on],
        [chatbot, recorder],
        api_visibility="private",
    )

    def warm_transcription() -> None:
        """Someone is about to speak: vocalizr loads its speech-to-text now, in the background."""
        vocalizr = service.media.vocalizr if service.media is not None else None
        if vocalizr is not None:
            task = asyncio.create_task(vocalizr.warm_transcription())
            warming.add(task)
            task.add_done_callback(warming.discard)

    async def toggle_live(on: bool, request: gr.Request) -> Any:
        if on:
            warm_transcription()
        else:
            registry.drop(request)
        return gr.update(visible=on)

    async def start_recording() -> None:
        warm_transcription()

    recorder.start_recording(start_recording, None, None, queue=False, api_visibility="private")

    live_on.change(
        toggle_live, live_on, live_mic, js=LIVE_ON_JS, queue=False, api_visibility="private"
    )

    async def hear(chunk: Any, cid: str, session_id: str, request: gr.Request) -> tuple[Any, Any]:
        live = registry.get(request)
        live.session_id, live.character_id = session_id, cid
        if chunk is None:
            return gr.skip(), gr.skip()
        sample_rate, samples = chunk
        started, ready = live.hear(int(sample_rate), samples)
        guess = live.pause_to_guess_on()
        if guess is not None and cid in service.characters.characters:
            # Transcribed ahead while the pause is waited out; used if the pause ends it.
            language = service.characters.get(cid).voice.language
            task = asyncio.create_task(transcribe(service, guess.wav(), language))
            task.add_done_callback(_retrieve_failure)
            replaced = live.keep_guess(guess, task)
            if replaced is not None:
                replaced.cancel()
        live.signals += int(started) + int(ready)
        return (
            str(live.signals) if started else gr.skip(),
            str(live.signals) if ready else gr.skip(),
        )

    live_mic.stream(
        hear,
        [live_mic, character, session],
        [speech_signal, utterance_signal],
        stream_every=0.1,
        time_limit=3600,
        concurrency_limit=None,
        api_visibility="private",
    )

    def flush(request: gr.Request) -> Any:
        live = registry.get(request)
        if not live.flush():
            return gr.skip()
        live.signals += 1
        return str(live.signals)

    live_mic.stop_recording(flush, None, utterance_signal, api_visibility="private")

    def barge_in(report: str, history: list[Message], request: gr.Request) -> Any:
        live = registry.get(request)
        try:
            parsed = json.loads(report) if report else {}
        except ValueError:
            parsed = {}
        playing = bool(parsed.get("playing")) if isinstance(parsed, dict) else False
        clips = parse_played(parsed.get("clips") if isinstance(parsed, dict) else None)
        stopped = live.barge_in(clips, playing=playing)
        if stopped is None or not stopped.finished:
            return gr.skip()  # nothing stopped, or the running turn marks its own reply
        # The turn had ended already (its clips were still playing): fix its memory and its
        # message here.
        remember_heard(service, live.session_id, live.character_id, stopped)
        return mark_interrupted(list(history or []))

    speech_signal.change(
        barge_in,
        [speech_signal, chatbot],
        chatbot,
        js=STOP_JS,
        queue=False,
        api_visibility="private",
    )

    async def live_turn(
        history: list[Message], cid: str, session_id: str, with_media: bool, request: gr.Request
    ) -> AsyncIterator[list[Message]]:
        live = registry.get(request)
        utterance = live.next_utterance()
        if utterance is None:
            yield gr.skip()
            return
        character_obj = service.characters.get(cid)
        guessed, stale = live.take_guess(utterance)
        if stale is not None:
            stale.cancel()
        if guessed is not None:
            text = await guessed
        else:
            text = await transcribe(service, utterance.wav(), character_obj.voice.language)
        if not text:
            yield gr.skip()
            return
        async for updated in answer(
            text, list(history or []), cid, session_id, with_media, live, request
        ):
            yield updated

    utterance_signal.change(
        live_turn,
        [chatbot, character, session, media_on],
        chatbot,
        trigger_mode="multiple",
        api_visibility="private",
    )
    return registry
