"""The one turn loop: the `chat` API, the page and live voice all run their turns through it.

Admission (sign-in, rate limits, a fair share of the turn slots), the turn itself, what a turn
leaves for `export` and `forget`, and, for a reply the person talked over, the part they heard.
A refusal anywhere reaches the person the one way their edge shows errors (`shown_as`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.trace import INVALID_SPAN, Span

from chatacter_common import logs
from chattr.access.gate import Gate
from chattr.access.public_url import request_base_url
from chattr.memory import MemoryUnavailable, Turn
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn import tracing
from chattr.turn.personal_data import PersonalData
from chattr.turn.service import ChatService

log = logging.getLogger(__name__)


class Finishing(Protocol):
    """A turn's state, or a scene message's: the last one is done."""

    @property
    def done(self) -> bool: ...


StateT = TypeVar("StateT", bound=Finishing)


class AdmittedTurn(Generic[StateT]):
    """A turn that passed the gate: iterate it for its states, the last one done (unless the
    caller stops early, which stops the turn and its media). A scene message is one too."""

    def __init__(
        self,
        states: AsyncGenerator[StateT, None],
        span: Span = INVALID_SPAN,
        conversation_id: str = "",
    ) -> None:
        self._states = states
        self.span = span  # the turn's trace
        self.conversation_id = conversation_id  # on the log lines the turn writes
        self.state: StateT | None = None  # the latest

    def __aiter__(self) -> AdmittedTurn[StateT]:
        return self

    async def __anext__(self) -> StateT:
        # No generator of its own: breaking out of the loop leaves nothing suspended here.
        # The turn's span is current for this step only: the next may run in another context.
        with tracing.in_turn(self.span), logs.conversation(self.conversation_id):
            self.state = await anext(self._states)
        return self.state

    @property
    def done(self) -> bool:
        return self.state is not None and self.state.done


class TurnLoop:
    """How every turn of one app runs: its service, its gate, the person's data.

    `shown_as` makes a refusal the edge's own error (the page's and the API's: `gr.Error`);
    without it refusals go up as they are.
    """

    def __init__(
        self,
        service: ChatService,
        *,
        gate: Gate,
        personal: PersonalData,
        public_url: str | None = None,
        shown_as: Callable[[str], Exception] | None = None,
    ) -> None:
        self.service = service
        self.gate = gate
        self.personal = personal
        self.public_url = public_url
        self.shown_as = shown_as

    @contextlib.contextmanager
    def refusals_shown(self) -> Iterator[None]:
        """Whatever is refused inside reaches the person as the edge's error, its words kept."""
        try:
            yield
        except Refusal as exc:
            if self.shown_as is None:
                raise
            raise self.shown_as(str(exc)) from exc

    def base_url(self, request: Any) -> str | None:
        """chattr's address for a reply's media: fixed by the settings, else the request's."""
        return self.public_url or request_base_url(request)

    @contextlib.asynccontextmanager
    async def turn(
        self,
        request: Any,
        message: str,
        character: str,
        session_id: str,
        *,
        media: bool,
        greeting: int | None = None,
    ) -> AsyncIterator[AdmittedTurn[TurnState]]:
        """Check the request, admit it (it holds its turn slot until the block ends), and give
        the turn to iterate. Leaving the block early stops the turn and its media; however it
        ends, the media it made are noted so `forget` finds them."""
        with self.refusals_shown():
            # Checked before the gate: a request that cannot be answered costs no rate-limit hit.
            self.service.validate(message, character, session_id, greeting)
            async with self.gate.turn(request, session_id):
                # In flight once admitted: a turn the gate refused never ran.
                with self.service.metrics.running():
                    states = self.service.run(
                        message,
                        character,
                        session_id,
                        media=media,
                        greeting=greeting,
                        base_url=self.base_url(request),
                    )
                    turn = AdmittedTurn(
                        states, tracing.start_turn(message, character, session_id), session_id
                    )
                    failure: BaseException | None = None
                    try:
                        async with contextlib.aclosing(states):
                            yield turn
                    except BaseException as exc:
                        failure = exc
                        raise
                    finally:
                        tracing.end_turn(turn.span, turn.state, failure)
                        outcome = tracing.turn_outcome(turn.state, failure)
                        self.service.metrics.count_turn(outcome, turn.state)
                        if turn.state is not None:
                            self.personal.record_turn(turn.state)

    def keep_heard(
        self, session_id: str, character: str, said: str, heard: str, *, replaces_reply: bool
    ) -> None:
        """Memory keeps what the person heard of a reply they talked over, marked as interrupted;
        with `replaces_reply` the whole reply, remembered already, gives way to it."""
        memory = self.service.memory
        try:
            replaced = memory.pop_last(session_id, character) if replaces_reply else None
            kept = Turn(said, heard or "…", interrupted=True)
            if replaced is not None:
                # The reply's time stays: undo still finds its long-term copy by it.
                kept = dataclasses.replace(kept, at=replaced.at, media=replaced.media)
            memory.append(session_id, character, kept)
        except MemoryUnavailable as exc:
            log.warning("could not record the interrupted turn: %s", exc)
