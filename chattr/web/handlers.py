"""What the page shows and does: the conversation as chat messages, a turn's media as players,
and the handlers of its controls (pick a character, import one, send, undo, regenerate, start
over, download, forget). The layout that wires them is `chattr.web.layout`; turns go through the
app's turn loop (`chattr.turn.loop`), the person's data through the public API's own methods
(`chattr.web.api`)."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import gradio as gr

from chattr.characters.character_set import Character
from chattr.characters.portraits import PortraitShelf, portraits_dir
from chattr.characters.uploads import UploadError, import_upload
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn.personal_data import MediaIndexUnavailable, TurnMedia
from chattr.web.api import ChatApi, new_session_id
from chattr.web.browser_state import stored_session

Message = dict[str, Any]


class StatusSource(Protocol):
    """Something else starting up beside the page (the local media services)."""

    @property
    def settled(self) -> bool: ...

    def status_lines(self) -> list[str]: ...


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


def whole_reply_player(made: TurnMedia) -> str:
    """An earlier turn's whole reply, as a page loaded later shows it (not playing)."""
    if made.video_url:
        return _player("video", made.video_url, "The whole reply")
    return _player("audio", made.audio_url or "", "The whole reply (speech)")


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
        if segment.emotion != "neutral":  # the face it is said with
            caption += f" · {segment.emotion}"
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


def current_emotion(state: TurnState) -> str:
    """The feeling of the sentence the turn has reached (its latest), "neutral" before one."""
    return state.segments[-1].emotion if state.segments else "neutral"


def served_url(path: Path) -> str:
    """The page's URL of a file Gradio serves (one of the shelf's copies), relative to the page
    so that it holds under a proxy's path prefix too; percent-encoded, so that it is safe
    inside an attribute and inside CSS alike."""
    return "gradio_api/file=" + quote(str(path))


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


def drop_last_exchange(history: list[Message]) -> tuple[list[Message], str]:
    """The chat without its last turn (the reply's messages and the person's), and what the
    person had said in it ("" if the chat has no turn of theirs)."""
    history = list(history or [])
    while history and history[-1]["role"] == "assistant" and len(history) > 1:
        history.pop()
    said = history.pop()["content"] if history and history[-1]["role"] == "user" else ""
    return history, str(said)


class ChatPage:
    """The page's handlers, over one app's API and its turn loop; each is a Gradio event's
    function."""

    def __init__(self, api: ChatApi, *, status: StatusSource | None = None) -> None:
        self.api = api
        self.loop = api.loop
        self.service = api.loop.service
        self.characters = api.loop.service.characters
        self.status = status
        # The gallery shows copies of the portraits from a folder that holds nothing else (the
        # only one Gradio may serve), so no other file of a character is reachable by path.
        self.shelf = PortraitShelf(portraits_dir(api.settings.data_dir))

    def ids(self) -> list[str]:
        return sorted(self.characters.characters)

    def picker_choices(self) -> list[tuple[str, str]]:
        return [(self.characters.characters[i].name, i) for i in self.ids()]

    def history_for(
        self, character: Character, session_id: str, greeting: int = 0
    ) -> list[Message]:
        """The chat as the page shows it: the greeting (the one the conversation opened with,
        else the chosen one), then the remembered turns."""
        try:
            turns = self.service.memory.recent(session_id, character.id)
        except Exception:  # a memory outage must not blank the page
            turns = []
        greetings = character.greetings()
        opening = character.render(greetings[greeting if 0 <= greeting < len(greetings) else 0])
        if turns and not turns[0].user:  # the greeting the conversation opened with
            opening = turns.pop(0).assistant
        messages: list[Message] = [{"role": "assistant", "content": opening}]
        kept = self.kept_media(character.id, session_id)
        for turn in turns:
            if turn.user:
                messages.append({"role": "user", "content": turn.user})
            suffix = " ⏹ (interrupted)" if turn.interrupted else ""
            messages.append({"role": "assistant", "content": turn.assistant + suffix})
            made = kept.get((turn.user, turn.assistant))
            if made:
                messages.append({"role": "assistant", "content": whole_reply_player(made.pop(0))})
        return messages

    def kept_media(self, cid: str, session_id: str) -> dict[tuple[str, str], list[TurnMedia]]:
        """The whole-reply media of the conversation's turns (any replica's: the index and the
        store are shared), by what was said and answered, oldest first."""
        if not session_id:
            return {}
        try:
            made = self.loop.personal.turn_media(session_id)
        except MediaIndexUnavailable:  # the page shows the text; the media wait for a reload
            return {}
        kept: dict[tuple[str, str], list[TurnMedia]] = {}
        for turn in made:
            if turn.character == cid and (turn.audio_url or turn.video_url):
                kept.setdefault((turn.user, turn.assistant), []).append(turn)
        return kept

    def first_history(self, cid: str | None) -> list[Message] | None:
        return self.history_for(self.characters.get(cid), "") if cid else None

    # --- the status line ---

    def status_text(self) -> str:
        lines = []
        if not self.service.llm_configured:
            lines.append(f"**⚠ {self.service.llm_help}**")
        retriever = self.service.retriever
        if retriever is not None and not retriever.ready:
            lines.append(f"Knowledge: {retriever.status}")
        if self.characters.errors:
            lines.append(
                "Some characters could not be loaded: "
                + "; ".join(str(e) for e in self.characters.errors)
            )
        if self.status is not None:
            lines.extend(self.status.status_lines())
        return "\n\n".join(lines)

    def refresh_status(self) -> tuple[str, gr.Timer]:
        # Poll while something is still loading; stop once everything has settled.
        loading = self.service.retriever is not None and self.service.retriever.loading
        if self.status is not None and not self.status.settled:
            loading = True
        return self.status_text(), gr.Timer(active=loading)

    # --- choosing a character ---

    def character_card(self, cid: str | None) -> str:
        if not cid or cid not in self.characters.characters:
            return "No character selected."
        c = self.characters.characters[cid]
        docs = sorted(c.knowledge_documents())
        files = "\n".join(f"- `{name}`" for name in docs) or "- (none)"
        return f"### {c.name}\n{c.description}\n\n**Knowledge files**\n{files}"

    def stage(self, cid: str | None, emotion: str = "neutral") -> str:
        """Beside the chat, the character's face for the emotion (its sprite for it, else the
        portrait), and behind the chat its background, where it has one; as HTML."""
        if not cid or cid not in self.characters.characters:
            return ""
        character = self.characters.characters[cid]
        parts = []
        background = self.shelf.background_for(character)
        if background is not None:
            parts.append(
                f'<style>#chattr-chat {{ background: url("{served_url(background)}") '
                "center / cover no-repeat; }</style>"
            )
        sprite = self.shelf.sprite_for(character, emotion)
        face = sprite or self.shelf.path_for(character)
        if face is not None:
            shown = f"{character.name}, {emotion}" if emotion != "neutral" else character.name
            source = "sprite" if sprite is not None else "portrait"
            parts.append(
                f'<figure id="chattr-face" data-emotion="{html.escape(emotion)}" '
                f'data-source="{source}"><img src="{served_url(face)}" alt="{html.escape(shown)}">'
                f"<figcaption>{html.escape(shown)}</figcaption></figure>"
            )
        return "".join(parts)

    def gallery_portraits(self) -> list[tuple[str, Path]]:
        """The characters shown in the gallery, in its order (those with a portrait)."""
        shown = ((i, self.shelf.path_for(self.characters.characters[i])) for i in self.ids())
        return [(i, path) for i, path in shown if path is not None]

    def gallery_items(self) -> list[tuple[str, str]]:
        items = []
        for cid, path in self.gallery_portraits():
            c = self.characters.characters[cid]
            items.append((str(path), f"{c.name} — {c.description}"))
        return items

    def select_from_gallery(self, evt: gr.SelectData) -> str | None:
        shown = [i for i, _ in self.gallery_portraits()]
        return shown[evt.index] if 0 <= evt.index < len(shown) else None

    def choose(self, cid: str | None, session_id: str) -> tuple[Any, ...]:
        if not cid or cid not in self.characters.characters:
            return cid, [], self.character_card(cid), gr.update(choices=[], value=None)
        c = self.characters.get(cid)
        choices = gr.update(choices=greeting_choices(c), value=0)
        return cid, self.history_for(c, session_id), self.character_card(cid), choices

    def import_character(
        self, path: str | None, session_id: str, request: gr.Request
    ) -> tuple[Any, ...]:
        """Install an uploaded card or folder; it can be chosen at once."""
        if not path:
            return gr.update(), gr.update(), ""
        with self.loop.refusals_shown():
            self.loop.gate.check_import(request, session_id)
            left_out: list[str] = []
            try:
                character = import_upload(
                    Path(path), self.api.settings.characters_dir, notes=left_out
                )
            except UploadError as exc:
                raise Refusal(f"Import failed: {exc}") from exc
        self.service.add_character(character)
        note = f"Imported **{character.name}**."
        if character.voice_path() is None:
            note += " It has no voice clip, so it speaks in the default voice."
        if left_out:  # a CHARX's assets that were not kept, each with why
            note += "\n\nLeft out:\n" + "\n".join(f"- {html.escape(n)}" for n in left_out)
        return (
            gr.update(choices=self.picker_choices(), value=character.id),
            self.gallery_items(),
            note,
        )

    def resume(self, stored: Any, stored_cid: Any) -> tuple[Any, ...]:
        """On page load: the conversation the browser kept (its id and character; a new id
        when it kept none) and what it shows, read from memory, which every replica shares."""
        session_id = stored_session(stored) or new_session_id()
        known = self.ids()
        cid = stored_cid if stored_cid in known else (known[0] if known else None)
        if cid is None:
            return session_id, None, gr.update(), [], self.character_card(None), gr.update()
        character = self.characters.get(cid)
        return (
            session_id,
            cid,
            gr.update(value=cid),
            self.history_for(character, session_id),
            self.character_card(cid),
            gr.update(choices=greeting_choices(character), value=0),
        )

    # --- the conversation ---

    async def respond(
        self,
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
        async with self.loop.turn(
            request, message, cid, session_id, media=with_media, greeting=chosen
        ) as turn:
            # Shown once admitted: a refused message leaves the chat as it was.
            history.append({"role": "user", "content": message.strip()})
            reply: Message = {"role": "assistant", "content": ""}
            history.append(reply)
            media: list[Message] = []
            feeling = "neutral"
            face = self.stage(cid, feeling)
            yield history, "", face
            async for state in turn:
                reply["content"] = state.text or "…"
                sync_media(history, media, media_messages(state))
                if current_emotion(state) != feeling:  # the files are looked at on a change only
                    feeling = current_emotion(state)
                    face = self.stage(cid, feeling)
                yield history, "", face

    def drop_last_turn(
        self, history: list[Message], cid: str, session_id: str
    ) -> tuple[list[Message], str]:
        """Undo: the last turn leaves memory and the chat; what the person said goes back in
        the message box."""
        turn = self.service.undo(session_id, cid)
        history, said = drop_last_exchange(history)
        return history, (turn.user if turn else said)

    async def regenerate_last(
        self,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        chosen: int,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        history, message = self.drop_last_turn(history, cid, session_id)
        if not message:
            raise gr.Error("There is no turn to regenerate yet.")
        async for update in self.respond(
            message, history, cid, session_id, with_media, chosen, request
        ):
            yield update

    def start_over(
        self, cid: str, session_id: str, chosen: int | None = 0
    ) -> tuple[str, list[Message]]:
        self.service.reset(session_id, cid)
        fresh = new_session_id()
        if not cid or cid not in self.characters.characters:
            return fresh, []
        return fresh, self.history_for(self.characters.get(cid), fresh, chosen or 0)

    # --- the person's data ---

    def download_conversation(self, session_id: str) -> Any:
        with self.loop.refusals_shown():
            files = self.loop.personal.export_files(session_id)  # JSON, and Markdown to read
            return gr.File(value=[str(path) for path in files], visible=True)

    def forget_page(self, cid: str, session_id: str) -> tuple[Any, ...]:
        report = self.api.forget(session_id)
        fresh = new_session_id()
        chat_shown = self.history_for(self.characters.get(cid), fresh) if cid else []
        if report["not_deleted"]:
            gr.Warning("Not deleted: " + "; ".join(report["not_deleted"]))
        gr.Info("Forgotten: this conversation, its memory and its media are deleted.")
        return fresh, chat_shown, gr.File(value=None, visible=False)
