"""The Gradio page and the named API endpoints (`chat`, `characters`) scripts call."""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import gradio as gr

from chattr.access import Gate
from chattr.characters import Character
from chattr.personal_data import BadSession, PersonalData
from chattr.ratelimit import Refused
from chattr.settings import Settings
from chattr.turn import ChatService, TurnFailed, TurnRejected, TurnState
from chattr.uploads import UploadError, import_upload

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


def history_for(service: ChatService, character: Character, session_id: str) -> list[Message]:
    """The chat as the page shows it: the greeting, then the remembered turns."""
    messages: list[Message] = [
        {"role": "assistant", "content": character.render(character.greeting)}
    ]
    try:
        turns = service.memory.recent(session_id, character.id)
    except Exception:  # a memory outage must not blank the page
        turns = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.user})
        messages.append({"role": "assistant", "content": turn.assistant})
    return messages


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

    def gallery_ids() -> list[str]:
        """The characters shown in the gallery, in its order (those with a portrait)."""
        return [i for i in ids if characters.characters[i].portrait_path() is not None]

    def gallery_items() -> list[tuple[str, str]]:
        items = []
        for cid in gallery_ids():
            c = characters.characters[cid]
            items.append((str(c.portrait_path()), f"{c.name} — {c.description}"))
        return items

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
                return cid, [], character_card(cid)
            return cid, history_for(service, characters.get(cid), session_id), character_card(cid)

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
            choose, [picker, session], [character, chatbot, card], api_visibility="private"
        )

        async def respond(
            message: str,
            history: list[Message],
            cid: str,
            session_id: str,
            with_media: bool,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            history = list(history or [])
            try:
                service.validate(message, cid, session_id)
            except TurnRejected as exc:
                raise gr.Error(str(exc)) from exc
            history.append({"role": "user", "content": message.strip()})
            reply: Message = {"role": "assistant", "content": ""}
            history.append(reply)
            media: list[Message] = []
            try:
                async with gate.turn(request, session_id):
                    yield history, ""
                    async for state in service.run(message, cid, session_id, media=with_media):
                        reply["content"] = state.text or "…"
                        sync_media(history, media, media_messages(state))
                        yield history, ""
                    personal.record_turn(state)
            except Refused as exc:
                raise gr.Error(str(exc)) from exc
            except TurnFailed as exc:
                history.pop()
                raise gr.Error(str(exc)) from exc

        send_inputs = [box, chatbot, character, session, media_on]
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
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            history, message = drop_last_turn(history, cid, session_id)
            if not message:
                raise gr.Error("There is no turn to regenerate yet.")
            async for update in respond(message, history, cid, session_id, with_media, request):
                yield update

        regenerate.click(
            regenerate_last,
            [chatbot, character, session, media_on],
            [chatbot, box],
            api_visibility="private",
            concurrency_limit=None,
        )

        def start_over(cid: str, session_id: str) -> tuple[str, list[Message]]:
            service.reset(session_id, cid)
            fresh = new_session_id()
            return fresh, history_for(service, characters.get(cid), fresh) if cid else []

        new_chat.click(
            start_over, [character, session], [session, chatbot], api_visibility="private"
        )

        # --- the API scripts use (gradio_client): named endpoints with named parameters ---

        async def chat(
            request: gr.Request,
            message: str,
            character: str,
            session_id: str = "",
            media: bool = True,
        ) -> AsyncIterator[dict[str, Any]]:
            """One chat turn. Streams partial results; the last one is complete.

            Args:
                message: what the person says to the character.
                character: the character's id (see the `characters` endpoint).
                session_id: the conversation's id; empty starts a new conversation.
                media: make speech and video of the reply (when the services are available).
            Returns:
                {text, session_id, character, audio_url, video_url, segments, errors}
            """
            session_id = session_id or new_session_id()
            try:
                service.validate(message, character, session_id)
                async with gate.turn(request, session_id):
                    async for state in service.run(message, character, session_id, media=media):
                        yield state.to_api()
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

        def list_characters() -> list[dict[str, str]]:
            """The characters: [{id, name, description, greeting}]."""
            return [
                {
                    "id": c.id,
                    "name": c.name,
                    "description": c.description,
                    "greeting": c.render(c.greeting),
                }
                for c in (characters.characters[i] for i in sorted(characters.characters))
            ]

        # Each browser session (page load) is its own conversation.
        demo.load(new_session_id, None, session, api_visibility="private")

        gr.api(chat, api_name="chat", concurrency_limit=None)
        gr.api(list_characters, api_name="characters")
        gr.api(export_conversation, api_name="export")
        gr.api(forget, api_name="forget")

    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=settings.queue_size)
    demo.css = CSS  # type: ignore[attr-defined]
    return demo
