"""The named API endpoints scripts call with gradio_client: `chat`, `scene`, `characters`,
`export`, `undo`, `forget`. Turns go through the app's turn loop (`chattr.turn.loop`), as the
page's do; scene messages too (`chattr.scene.loop`).

Gradio reads an endpoint's parameters, their defaults and its result from the function's
signature and docstring, so each endpoint is a method of `ChatApi` (bound to one app's loop)
whose signature is exactly the endpoint's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

# gradio leaves `api` out of its __all__, so strict typing refuses `gr.api`: from where it lives.
from gradio.events import api as gradio_api

from chattr.scene.loop import SceneLoop
from chattr.scene.runner import SceneRunner
from chattr.settings import Settings
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import check_session_id
from chattr.turn.service import TurnRejected, check_text_argument
from chattr.voice.speech_in import transcribe_recording


def new_session_id() -> str:
    return uuid.uuid4().hex


class ChatApi:
    """The public API of one app, over its turn loop (the service, the fair-use gate, the
    person's data)."""

    def __init__(self, loop: TurnLoop, settings: Settings, scenes: SceneLoop | None = None) -> None:
        self.loop = loop
        self.settings = settings
        self.scenes = scenes or SceneLoop(
            loop, SceneRunner(loop.service, max_replies=settings.scene_max_replies)
        )

    async def chat(
        self,
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
        transcript = None
        with self.loop.refusals_shown():
            if not isinstance(media, bool):
                raise TurnRejected(f"'media' must be true or false, not {type(media).__name__}.")
            if audio is not None:
                if isinstance(message, str) and message.strip():
                    raise TurnRejected("Send `message` or `audio`, not both.")
                message = transcript = await transcribe_recording(
                    self.loop.service, audio, character
                )
        async with self.loop.turn(
            request, message, character, session_id, media=media, greeting=greeting
        ) as turn:
            async for state in turn:
                result = state.to_api()
                yield result if transcript is None else {**result, "transcript": transcript}

    async def scene(
        self,
        message: str = "",
        characters: list[str] | None = None,
        session_id: str = "",
        media: bool = True,
        strategy: str = "natural",
        speaker: str = "",
        muted: list[str] | None = None,
        join_lorebooks: bool = False,
        request: gr.Request | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """One message in a scene: several characters, each answering in its own voice and face.
        Streams partial results; the last one is complete.

        Args:
            message: what the person says to the scene (empty: the members go on talking).
            characters: the members' ids, two or more, in the scene's order.
            session_id: the scene's id; empty starts a new scene (it opens with the members'
                greetings, in `greetings`).
            media: make speech and video of each reply (when the services are available).
            strategy: who answers: `natural` (those named, then each by its talkativeness),
                `list` (every member in order), `pooled` (one who has not spoken since the
                person last did), `manual` (only `speaker`).
            speaker: a member's id: that member alone answers (any strategy).
            muted: members who answer only when they are the `speaker`.
            join_lorebooks: each reply reads every member's World Info, not only its speaker's.
        Returns:
            {session_id, characters, greetings: [{character, text}], replies: [{character,
            text, message, audio_url, video_url, segments, errors}], errors}
        """
        if session_id in ("", None):
            session_id = new_session_id()
        with self.loop.refusals_shown():
            checked = self.scenes.runner.validate(
                message,
                characters,
                session_id,
                strategy=strategy,
                speaker=speaker,
                muted=muted,
                join_lorebooks=join_lorebooks,
                media=media,
            )
        async with self.scenes.scene(request, checked) as turn:
            async for state in turn:
                yield state.to_api()

    def characters(self) -> list[dict[str, Any]]:
        """The characters: [{id, name, description, greeting, greetings}]."""
        known = self.loop.service.characters.characters
        return [
            {
                "id": c.id,
                "name": c.name,
                "description": c.description,
                "greeting": c.render(c.greeting),
                "greetings": [c.render(text) for text in c.greetings()],
            }
            for c in (known[i] for i in sorted(known))
        ]

    def export(self, session_id: str) -> dict[str, Any]:
        """A whole conversation as JSON, oldest turn first, from both memories.

        Args:
            session_id: the conversation's id (from `chat`).
        Returns:
            {session_id, exported_at, turns: [{character, character_name, user, assistant,
            interrupted, at, at_utc, media}], media, not_exported}
        """
        with self.loop.refusals_shown():
            return self.loop.personal.export(session_id)

    def undo(self, session_id: str, character: str) -> dict[str, Any]:
        """Take back the last turn with a character: it leaves both memories (the page's "Undo
        last turn").

        Args:
            session_id: the conversation's id (from `chat`).
            character: the character's id.
        Returns:
            {session_id, character, undone: {user, assistant} or null when there was none}
        """
        with self.loop.refusals_shown():
            session_id = check_session_id(session_id)
            check_text_argument("character", character)
            turn = self.loop.service.undo(session_id, character)
        undone = None if turn is None else {"user": turn.user, "assistant": turn.assistant}
        return {"session_id": session_id, "character": character, "undone": undone}

    def forget(self, session_id: str) -> dict[str, Any]:
        """Delete a conversation: its recent turns, its long-term memory and its media.

        Args:
            session_id: the conversation's id (from `chat`).
        Returns:
            {session_id, deleted: {turns, long_term_memory, media_files}, not_deleted}
        """
        with self.loop.refusals_shown():
            return self.loop.personal.forget(session_id).to_api()

    def register(self) -> None:
        """Add the endpoints to the Blocks being built."""
        gradio_api(self.chat, api_name="chat", concurrency_limit=None)
        gradio_api(self.scene, api_name="scene", concurrency_limit=None)
        gradio_api(self.characters, api_name="characters")
        gradio_api(self.export, api_name="export")
        gradio_api(self.undo, api_name="undo")
        gradio_api(self.forget, api_name="forget")
