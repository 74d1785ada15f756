"""The Gradio page and the named API endpoints (`chat`, `characters`) scripts call."""

from __future__ import annotations

import contextlib
import html
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import gradio as gr
from gradio.data_classes import FileData

from chattr.access import Gate
from chattr.characters import Character
from chattr.personal_data import BadSession, PersonalData
from chattr.portraits import PortraitShelf, portraits_dir
from chattr.public_url import request_base_url
from chattr.ratelimit import Refused
from chattr.reply import TurnState
from chattr.settings import Settings
from chattr.turn import ChatService, TurnFailed, TurnRejected
from chattr.uploads import UploadError, import_upload
from chattr.voice.page import CSS as VOICE_CSS
from chattr.voice.page import PAGE_JS as VOICE_JS
from chattr.voice.page import add_voice_controls
from chattr.voice.speech_in import transcribe_recording

log = logging.getLogger(__name__)

Message = dict[str, Any]

CSS = """
#chattr-gallery { min-height: 140px; }
#chattr-chat figure { margin: 0.4em 0; }
#chattr-chat figcaption { font-size: 0.8em; opacity: 0.7; }
/* On a phone the conversation comes first, the character picker below it. */
@media (max-width: 640px) {
  #chattr-side { min-width: 100% !important; order: 2; }
  #chattr-main { order: 1; }
}
"""


def new_session_id() -> str:
    return uuid.uuid4().hex


def _player(kind: str, url: str, caption: str, *, autoplay: bool = False) -> str:
    # A figure with a visible caption: Gradio's sanitizer drops aria-label, captions stay.
    src = html.escape(url)
    extra = ' playsinline style="max-width:100%"' if kind == "video" else ""
    if autoplay:
        extra += " autoplay"
    return (
        f"<figure><figcaption>{html.escape(caption)}</figcaption>"
        f'<{kind} src="{src}" controls preload="auto"{extra}></{kind}></figure>'
    )


def media_messages(state: TurnState) -> list[str]:
    """The chat messages (HTML) that carry a turn's media, in order.

    One message per sentence, added once its media is ready and then left alone, so a clip that
    is playing is not re-rendered when the next one arrives; the first sentence plays by itself.
    Then the whole reply's clip once joined, and a line of progress or of what failed.
    """
    if not state.media:
        return []
    video_off = any(e.service == "visualizr" for e in state.errors)
    messages: list[str] = []
    for index, segment in enumerate(state.segments):
        caption = f"Sentence {index + 1}"
        if segment.video_url:
            messages.append(_player("video", segment.video_url, caption, autoplay=index == 0))
        elif segment.audio_url and (video_off or state.done):
            messages.append(_player("audio", segment.audio_url, f"{caption} (speech)"))
        else:
            break  # keep the order: later sentences wait for this one
    if state.done and state.video_url:
        messages.append(_player("video", state.video_url, "The whole reply"))
    elif state.done and state.audio_url:
        messages.append(_player("audio", state.audio_url, "The whole reply (speech)"))
    notes = []
    if not state.done:
        made = sum(1 for s in state.segments if s.video_url)
        notes.append(
            f"<em>Making speech and video… {made} of {len(state.segments)} sentences ready</em>"
        )
    if state.errors:
        details = "; ".join(f"{e.service}: {e.detail}" for e in state.errors)
        notes.append(f"<small>⚠ {html.escape(details)}</small>")
    if notes:
        messages.append("<p>" + "<br>".join(notes) + "</p>")
    return messages


def sync_media(history: list[Message], shown: list[Message], wanted: list[str]) -> None:
    """Make the turn's media messages (the tail of `history`) read `wanted`, touching only the
    ones that changed."""
    for message, content in zip(shown, wanted, strict=False):
        if message["content"] != content:
            message["content"] = content
    for content in wanted[len(shown) :]:
        shown.append({"role": "assistant", "content": content})
        history.append(shown[-1])
    while len(shown) > len(wanted):
        gone = shown.pop()
        history[:] = [m for m in history if m is not gone]


def history_for(
    service: ChatService, character: Character, session_id: str, greeting: int = 0
) -> list[Message]:
    """The chat as the page shows it: the greeting (the one the conversation opened with, else
    the chosen one), then the remembered turns."""
    try:
        turns = service.memory.recent(session_id, character.id)
    except Exception:  # a memory outage must not blank the page
        turns = []
    greetings = character.greetings()
    opening = character.render(greetings[greeting if 0 <= greeting < len(greetings) else 0])
    if turns and not turns[0].user:  # the greeting the conversation opened with
        opening = turns.pop(0).assistant
    messages: list[Message] = [{"role": "assistant", "content": opening}]
    for turn in turns:
        if turn.user:
            messages.append({"role": "user", "content": turn.user})
        suffix = " ⏹ (interrupted)" if turn.interrupted else ""
        messages.append({"role": "assistant", "content": turn.assistant + suffix})
    return messages


def greeting_choices(character: Character | None) -> list[tuple[str, int]]:
    """The greetings to choose from: a short label each, the index as value (0: the main one)."""
    if character is None:
        return []
    choices = []
    for index, text in enumerate(character.greetings()):
        line = " ".join(character.render(text).split())
        label = line if len(line) <= 60 else line[:57].rstrip() + "…"
        choices.append((f"{index}. {label}" if index else f"Main: {label}", index))
    return choices


class StatusSource(Protocol):
    """Something else starting up beside the page (the local media services)."""

    @property
    def settled(self) -> bool: ...

    def status_lines(self) -> list[str]: ...


def build_blocks(
    service: ChatService, settings: Settings, *, status: StatusSource | None = None
) -> gr.Blocks:
    """The whole page, plus the API endpoints, as one Blocks."""
    characters = service.characters
    ids = sorted(characters.characters)
    gate = Gate.from_settings(settings)
    personal = PersonalData(service, settings.data_dir)
    first = ids[0] if ids else None

    # The gallery shows copies of the portraits from a folder that holds nothing else (the only
    # one Gradio may serve), so no other file of a character is reachable by path.
    shelf = PortraitShelf(portraits_dir(settings.data_dir))

    def gallery_portraits() -> list[tuple[str, Path]]:
        """The characters shown in the gallery, in its order (those with a portrait)."""
        shown = ((i, shelf.path_for(characters.characters[i])) for i in ids)
        return [(i, path) for i, path in shown if path is not None]

    def gallery_ids() -> list[str]:
        return [i for i, _ in gallery_portraits()]

    def gallery_items() -> list[tuple[str, str]]:
        items = []
        for cid, path in gallery_portraits():
            c = characters.characters[cid]
            items.append((str(path), f"{c.name} — {c.description}"))
        return items

    def base_url(request: gr.Request | None) -> str | None:
        """chattr's address for a reply's media: fixed by the settings, else the request's."""
        return settings.fixed_public_url or request_base_url(request)

    def status_text() -> str:
        lines = []
        if not service.llm_configured:
            lines.append(f"**⚠ {service.llm_help}**")
        if service.retriever is not None and not service.retriever.ready:
            lines.append(f"Knowledge: {service.retriever.status}")
        if characters.errors:
            lines.append(
                "Some characters could not be loaded: "
                + "; ".join(str(e) for e in characters.errors)
            )
        if status is not None:
            lines.extend(status.status_lines())
        return "\n\n".join(lines)

    def character_card(cid: str | None) -> str:
        if not cid or cid not in characters.characters:
            return "No character selected."
        c = characters.characters[cid]
        docs = sorted(c.knowledge_documents())
        files = "\n".join(f"- `{name}`" for name in docs) or "- (none)"
        return f"### {c.name}\n{c.description}\n\n**Knowledge files**\n{files}"

    with gr.Blocks(title="Chatacter") as demo:
        session = gr.State("")
        character = gr.State(first)
        gr.Markdown("# Chatacter\nPick a character and talk to them: text, voice and video.")
        status_md = gr.Markdown(status_text(), elem_id="chattr-status")
        timer = gr.Timer(1.0)

        def refresh_status() -> tuple[str, gr.Timer]:
            # Poll while something is still loading; stop once everything has settled.
            loading = service.retriever is not None and service.retriever.loading
            if status is not None and not status.settled:
                loading = True
            return status_text(), gr.Timer(active=loading)

        timer.tick(
            refresh_status, outputs=[status_md, timer], queue=False, api_visibility="private"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260, elem_id="chattr-side"):
                gallery = gr.Gallery(
                    value=gallery_items(),
                    label="Characters",
                    columns=2,
                    allow_preview=False,
                    elem_id="chattr-gallery",
                    height="auto",
                )
                picker = gr.Dropdown(
                    choices=[(characters.characters[i].name, i) for i in ids],
                    value=first,
                    label="Character",
                    elem_id="chattr-character",
                )
                greeting = gr.Dropdown(
                    choices=greeting_choices(characters.get(first) if first else None),  # type: ignore[arg-type]
                    value=0,
                    label="Greeting (choosing one starts a new conversation)",
                    elem_id="chattr-greeting",
                )
                card = gr.Markdown(character_card(first), elem_id="chattr-card")
                upload = gr.File(
                    label="Import a character: SillyTavern card (.json, .png) or folder (.zip)",
                    file_types=[".json", ".png", ".zip"],
                    type="filepath",
                    elem_id="chattr-import",
                )
                upload_note = gr.Markdown(elem_id="chattr-import-note")
            with gr.Column(scale=3, min_width=320, elem_id="chattr-main"):
                chatbot = gr.Chatbot(
                    value=history_for(service, characters.get(first), "") if first else None,  # type: ignore[arg-type]
                    label="Conversation",
                    height=520,
                    elem_id="chattr-chat",
                    sanitize_html=True,
                    feedback_options=None,
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Say something…",
                        label="Your message",
                        scale=5,
                        max_length=settings.max_message_chars,
                        elem_id="chattr-message",
                        submit_btn=True,
                    )
                with gr.Row():
                    media_on = gr.Checkbox(
                        value=service.media is not None,
                        label="Speech and video",
                        interactive=service.media is not None,
                        elem_id="chattr-media",
                    )
                    regenerate = gr.Button("Regenerate", size="sm")
                    undo = gr.Button("Undo last turn", size="sm")
                    new_chat = gr.Button("New conversation", size="sm")
                add_voice_controls(
                    service,
                    chatbot=chatbot,
                    character=character,
                    session=session,
                    media_on=media_on,
                    media_messages=media_messages,
                    sync_media=sync_media,
                    gate=gate,
                    base_url=base_url,
                )
                with gr.Row():
                    download = gr.Button(
                        "Download my conversation", size="sm", elem_id="chattr-download"
                    )
                    forget_me = gr.Button(
                        "Forget me", size="sm", variant="stop", elem_id="chattr-forget"
                    )
                my_data = gr.File(label="Your conversation", visible=False, elem_id="chattr-export")

        def select_from_gallery(evt: gr.SelectData) -> str | None:
            shown = gallery_ids()
            return shown[evt.index] if 0 <= evt.index < len(shown) else None

        def choose(cid: str | None, session_id: str) -> tuple[Any, ...]:
            if not cid or cid not in characters.characters:
                return cid, [], character_card(cid), gr.update(choices=[], value=None)
            c = characters.get(cid)
            choices = gr.update(choices=greeting_choices(c), value=0)
            return cid, history_for(service, c, session_id), character_card(cid), choices

        def import_character(
            path: str | None, session_id: str, request: gr.Request
        ) -> tuple[Any, ...]:
            if not path:
                return gr.update(), gr.update(), ""
            try:
                gate.check_import(request, session_id)
            except Refused as exc:
                raise gr.Error(str(exc)) from exc
            try:
                character = import_upload(Path(path), settings.characters_dir)
            except UploadError as exc:
                raise gr.Error(f"Import failed: {exc}") from exc
            characters.characters[character.id] = character
            if service.retriever is not None and service.retriever.ready:
                service.retriever.index_character(character.id)
            ids[:] = sorted(characters.characters)
            choices = [(characters.characters[i].name, i) for i in ids]
            note = f"Imported **{character.name}**."
            if character.voice_path() is None:
                note += " It has no voice clip, so it speaks in the default voice."
            return gr.update(choices=choices, value=character.id), gallery_items(), note

        upload.upload(
            import_character,
            [upload, session],
            [picker, gallery, upload_note],
            api_visibility="private",
        )
        gallery.select(select_from_gallery, None, picker, api_visibility="private")
        picker.change(
            choose,
            [picker, session],
            [character, chatbot, card, greeting],
            api_visibility="private",
        )

        async def respond(
            message: str,
            history: list[Message],
            cid: str,
            session_id: str,
            with_media: bool,
            chosen: int | None = None,
            request: gr.Request | None = None,
        ) -> AsyncIterator[tuple[Any, ...]]:
            history = list(history or [])
            chosen = chosen if isinstance(chosen, int) else None
            try:
                service.validate(message, cid, session_id, chosen)
            except TurnRejected as exc:
                raise gr.Error(str(exc)) from exc
            history.append({"role": "user", "content": message.strip()})
            reply: Message = {"role": "assistant", "content": ""}
            history.append(reply)
            media: list[Message] = []
            try:
                async with gate.turn(request, session_id):
                    yield history, ""
                    # Closed however this ends (stop pressed, page gone): its media stop too.
                    async with contextlib.aclosing(
                        service.run(
                            message,
                            cid,
                            session_id,
                            media=with_media,
                            greeting=chosen,
                            base_url=base_url(request),
                        )
                    ) as turns:
                        async for state in turns:
                            reply["content"] = state.text or "…"
                            sync_media(history, media, media_messages(state))
                            yield history, ""
                    personal.record_turn(state)
            except Refused as exc:
                raise gr.Error(str(exc)) from exc
            except TurnFailed as exc:
                history.pop()
                raise gr.Error(str(exc)) from exc

        send_inputs = [box, chatbot, character, session, media_on, greeting]
        # Turns take their slot in the gate (fairly shared), not in Gradio's first-come queue.
        box.submit(
            respond,
            send_inputs,
            [chatbot, box],
            api_visibility="private",
            concurrency_limit=None,
        )

        def drop_last_turn(
            history: list[Message], cid: str, session_id: str
        ) -> tuple[list[Message], str]:
            turn = service.undo(session_id, cid)
            history = list(history or [])
            # Remove the assistant message(s) and the user message of the last turn.
            while history and history[-1]["role"] == "assistant" and len(history) > 1:
                history.pop()
            last_user = (
                history.pop()["content"] if history and history[-1]["role"] == "user" else ""
            )
            return history, (turn.user if turn else str(last_user))

        undo.click(
            drop_last_turn, [chatbot, character, session], [chatbot, box], api_visibility="private"
        )

        async def regenerate_last(
            history: list[Message],
            cid: str,
            session_id: str,
            with_media: bool,
            chosen: int,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            history, message = drop_last_turn(history, cid, session_id)
            if not message:
                raise gr.Error("There is no turn to regenerate yet.")
            async for update in respond(
                message, history, cid, session_id, with_media, chosen, request
            ):
                yield update

        regenerate.click(
            regenerate_last,
            [chatbot, character, session, media_on, greeting],
            [chatbot, box],
            api_visibility="private",
            concurrency_limit=None,
        )

        def start_over(
            cid: str, session_id: str, chosen: int | None = 0
        ) -> tuple[str, list[Message]]:
            service.reset(session_id, cid)
            fresh = new_session_id()
            if not cid or cid not in characters.characters:
                return fresh, []
            return fresh, history_for(service, characters.get(cid), fresh, chosen or 0)

        new_chat.click(
            start_over,
            [character, session, greeting],
            [session, chatbot],
            api_visibility="private",
        )
        # Another greeting opens another conversation, as a card's alternate first messages do.
        greeting.input(
            start_over,
            [character, session, greeting],
            [session, chatbot],
            api_visibility="private",
        )

        # --- the API scripts use (gradio_client): named endpoints with named parameters ---

        async def chat(
            message: str = "",
            character: str = "",
            session_id: str = "",
            media: bool = True,
            audio: FileData | None = None,
            greeting: int | None = None,
            request: gr.Request | None = None,
        ) -> AsyncIterator[dict[str, Any]]:
            """One chat turn. Streams partial results; the last one is complete.

            Args:
                message: what the person says to the character.
                character: the character's id (see the `characters` endpoint).
                session_id: the conversation's id; empty starts a new conversation.
                media: make speech and video of the reply (when the services are available).
                audio: a recording (handle_file) said in place of `message`; vocalizr
                    transcribes it and the result adds `transcript`.
                greeting: for a new conversation, which of the character's greetings opens it
                    (0: the main one, 1...: the alternate greetings); ignored once it is under way.
            Returns:
                {text, session_id, character, audio_url, video_url, segments, errors}
            """
            # `request` is Gradio's to fill in: the reply's media URLs start where it came from.
            if session_id in ("", None):
                session_id = new_session_id()
            if not isinstance(media, bool):
                raise gr.Error(f"'media' must be true or false, not {type(media).__name__}.")
            try:
                transcript = None
                if audio is not None:
                    if isinstance(message, str) and message.strip():
                        raise TurnRejected("Send `message` or `audio`, not both.")
                    message = transcript = await transcribe_recording(service, audio, character)
                service.validate(message, character, session_id, greeting)
                async with gate.turn(request, session_id):
                    # Closed however this ends (a client that hangs up): its media stop too.
                    async with contextlib.aclosing(
                        service.run(
                            message,
                            character,
                            session_id,
                            media=media,
                            greeting=greeting,
                            base_url=base_url(request),
                        )
                    ) as turns:
                        async for state in turns:
                            result = state.to_api()
                            yield (
                                result
                                if transcript is None
                                else {**result, "transcript": transcript}
                            )
                    personal.record_turn(state)
            except (TurnRejected, TurnFailed, Refused) as exc:
                raise gr.Error(str(exc)) from exc

        def export_conversation(session_id: str) -> dict[str, Any]:
            """A conversation as JSON, to keep or to read.

            Args:
                session_id: the conversation's id (from `chat`).
            Returns:
                {session_id, exported_at, turns: [{character, character_name, user, assistant,
                at, at_utc}], media}
            """
            try:
                return personal.export(session_id)
            except BadSession as exc:
                raise gr.Error(str(exc)) from exc

        def forget(session_id: str) -> dict[str, Any]:
            """Delete a conversation: its recent turns, its long-term memory and its media.

            Args:
                session_id: the conversation's id (from `chat`).
            Returns:
                {session_id, deleted: {turns, long_term_memory, media_files}, not_deleted}
            """
            try:
                return personal.forget(session_id).to_api()
            except BadSession as exc:
                raise gr.Error(str(exc)) from exc

        def download_conversation(session_id: str) -> Any:
            try:
                return gr.File(value=str(personal.export_file(session_id)), visible=True)
            except BadSession as exc:
                raise gr.Error(str(exc)) from exc

        def forget_page(cid: str, session_id: str) -> tuple[Any, ...]:
            report = forget(session_id)
            fresh = new_session_id()
            chat_shown = history_for(service, characters.get(cid), fresh) if cid else []
            if report["not_deleted"]:
                gr.Warning("Not deleted: " + "; ".join(report["not_deleted"]))
            gr.Info("Forgotten: this conversation, its memory and its media are deleted.")
            return fresh, chat_shown, gr.File(value=None, visible=False)

        download.click(download_conversation, session, my_data, api_visibility="private")
        forget_me.click(
            forget_page, [character, session], [session, chatbot, my_data], api_visibility="private"
        )

        def list_characters() -> list[dict[str, Any]]:
            """The characters: [{id, name, description, greeting, greetings}]."""
            return [
                {
                    "id": c.id,
                    "name": c.name,
                    "description": c.description,
                    "greeting": c.render(c.greeting),
                    "greetings": [c.render(text) for text in c.greetings()],
                }
                for c in (characters.characters[i] for i in sorted(characters.characters))
            ]

        # Each browser session (page load) is its own conversation.
        demo.load(new_session_id, None, session, api_visibility="private")
        demo.load(None, js=VOICE_JS)

        gr.api(chat, api_name="chat", concurrency_limit=None)
        gr.api(list_characters, api_name="characters")
        gr.api(export_conversation, api_name="export")
        gr.api(forget, api_name="forget")

    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=settings.queue_size)
    demo.css = CSS + VOICE_CSS  # type: ignore[attr-defined]
    return demo
