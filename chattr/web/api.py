"""The named API endpoints scripts call with gradio_client: `chat`, `characters`, `export`,
`forget`. The page runs its turns through the same `turns`.

Gradio reads an endpoint's parameters, their defaults and its result from the function's
signature and docstring, so each endpoint is a method of `ChatApi` (bound to one app's service)
whose signature is exactly the endpoint's.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

# gradio leaves `api` out of its __all__, so strict typing refuses `gr.api`: from where it lives.
from gradio.events import api as gradio_api

from chattr.access.gate import Gate
from chattr.access.public_url import request_base_url
from chattr.access.rate_limits import Refused
from chattr.reply import TurnState
from chattr.settings import Settings
from chattr.turn.personal_data import BadSession, PersonalData
from chattr.turn.service import ChatService, TurnFailed, TurnRejected
from chattr.voice.speech_in import transcribe_recording


def new_session_id() -> str:
    return uuid.uuid4().hex


class ChatApi:
    """The public API of one app: its service, its gate (sign-in, rate limits, fair turns) and
    the person's data (export, forget)."""

    def __init__(
        self, service: ChatService, settings: Settings, *, gate: Gate, personal: PersonalData
    ) -> None:
        self.service = service
        self.settings = settings
        self.gate = gate
        self.personal = personal

    def base_url(self, request: gr.Request | None) -> str | None:
        """chattr's address for a reply's media: fixed by the settings, else the request's."""
        return self.settings.fixed_public_url or request_base_url(request)

    async def turns(
        self,
        message: str,
        character: str,
        session_id: str,
        *,
        media: bool,
        greeting: int | None,
        request: gr.Request | None,
    ) -> AsyncGenerator[TurnState, None]:
        """One turn, to run in its slot of the gate: its states as they come; once finished,
        its media are noted so `forget` finds them. Close it (contextlib.aclosing) to stop the
        turn and its media."""
        # Closed however this ends (stop pressed, a client that hangs up): its media stop too.
        async with contextlib.aclosing(
            self.service.run(
                message,
                character,
                session_id,
                media=media,
                greeting=greeting,
                base_url=self.base_url(request),
            )
        ) as states:
            async for state in states:
                yield state
        self.personal.record_turn(state)

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
        if not isinstance(media, bool):
            raise gr.Error(f"'media' must be true or false, not {type(media).__name__}.")
        try:
            transcript = None
            if audio is not None:
                if isinstance(message, str) and message.strip():
                    raise TurnRejected("Send `message` or `audio`, not both.")
                message = transcript = await transcribe_recording(self.service, audio, character)
            self.service.validate(message, character, session_id, greeting)
            async with (
                self.gate.turn(request, session_id),
                contextlib.aclosing(
                    self.turns(
                        message,
                        character,
                        session_id,
                        media=media,
                        greeting=greeting,
                        request=request,
                    )
                ) as states,
            ):
                async for state in states:
                    result = state.to_api()
                    yield result if transcript is None else {**result, "transcript": transcript}
        except (TurnRejected, TurnFailed, Refused) as exc:
            raise gr.Error(str(exc)) from exc

    def characters(self) -> list[dict[str, Any]]:
        """The characters: [{id, name, description, greeting, greetings}]."""
        known = self.service.characters.characters
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
        """A conversation as JSON, to keep or to read.

        Args:
            session_id: the conversation's id (from `chat`).
        Returns:
            {session_id, exported_at, turns: [{character, character_name, user, assistant,
            at, at_utc}], media}
        """
        try:
            return self.personal.export(session_id)
        except BadSession as exc:
            raise gr.Error(str(exc)) from exc

    def forget(self, session_id: str) -> dict[str, Any]:
        """Delete a conversation: its recent turns, its long-term memory and its media.

        Args:
            session_id: the conversation's id (from `chat`).
        Returns:
            {session_id, deleted: {turns, long_term_memory, media_files}, not_deleted}
        """
        try:
            return self.personal.forget(session_id).to_api()
        except BadSession as exc:
            raise gr.Error(str(exc)) from exc

    def register(self) -> None:
        """Add the endpoints to the Blocks being built."""
        gradio_api(self.chat, api_name="chat", concurrency_limit=None)
        gradio_api(self.characters, api_name="characters")
        gradio_api(self.export, api_name="export")
        gradio_api(self.forget, api_name="forget")
