"""Scene messages through the app's turn loop: the same admission (sign-in, rate limits, a fair
share of the turn slots: one slot for the whole message), traces, metrics and records for
`forget` as a one-character turn."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from chattr.memory import SCENE_KEY, MemoryUnavailable, Turn
from chattr.scene.runner import SceneRequest, SceneRunner
from chattr.scene.state import SceneState, as_one_turn
from chattr.turn import tracing
from chattr.turn.loop import AdmittedTurn, TurnLoop

log = logging.getLogger(__name__)


def lines_remembered(state: SceneState) -> int:
    """How many lines a finished scene message left in the scene's memory (`SceneRunner` keeps
    one per reply with words, else the message alone)."""
    answered = sum(1 for reply in state.replies if reply.text)
    return answered or (1 if state.message else 0)


class SceneLoop:
    """How every scene message of one app runs, beside its chats."""

    def __init__(self, turns: TurnLoop, runner: SceneRunner) -> None:
        self.turns = turns
        self.runner = runner

    @contextlib.asynccontextmanager
    async def scene(
        self, request: Any, checked: SceneRequest
    ) -> AsyncIterator[AdmittedTurn[SceneState]]:
        """Admit a checked scene message (`SceneRunner.validate`) and give it to iterate;
        leaving the block early stops every reply and its media."""
        loop = self.turns
        service = loop.service
        label = "+".join(checked.member_ids)
        with loop.refusals_shown():
            async with loop.gate.turn(request, checked.session_id):
                with service.metrics.running():
                    states = self.runner.run(checked, base_url=loop.base_url(request))
                    turn = AdmittedTurn(
                        states,
                        tracing.start_turn(checked.message, label, checked.session_id),
                        checked.session_id,
                    )
                    failure: BaseException | None = None
                    try:
                        async with contextlib.aclosing(states):
                            yield turn
                    except BaseException as exc:
                        failure = exc
                        raise
                    finally:
                        summary = as_one_turn(turn.state, label)
                        tracing.end_turn(turn.span, summary, failure)
                        service.metrics.count_turn(tracing.turn_outcome(summary, failure), summary)
                        if turn.state is not None:
                            for reply in turn.state.replies:
                                loop.personal.record_turn(reply)

    def keep_heard(
        self,
        session_id: str,
        said: str,
        heard: Sequence[tuple[str, str]],
        *,
        replaces: int = 0,
    ) -> None:
        """The scene keeps what the person heard of a message's replies they talked over: each
        member's part (speaker id, words heard) in the order spoken, the last one cut off and
        marked as interrupted; what they said rides on the first. `replaces`: how many lines of
        this message were remembered already (they give way to what was heard, keeping their
        times and media)."""
        memory = self.runner.service.memory
        try:
            replaced: list[Turn] = []
            for _ in range(replaces):
                line = memory.pop_last(session_id, SCENE_KEY)
                if line is None:
                    break
                replaced.insert(0, line)
            kept: list[Turn] = []
            for index, (speaker, words) in enumerate(heard):
                last = index == len(heard) - 1
                turn = Turn(
                    said if index == 0 else "", words or "…", interrupted=last, speaker=speaker
                )
                earlier = next((t for t in replaced if t.speaker == speaker), None)
                if earlier is not None:  # the line's time stays: long-term memory has it so
                    replaced.remove(earlier)
                    turn = dataclasses.replace(turn, at=earlier.at, media=earlier.media)
                kept.append(turn)
            if not kept and said:  # stopped before anyone spoke: the message is still said
                kept.append(Turn(said, ""))
            for turn in kept:
                memory.append(session_id, SCENE_KEY, turn)
        except MemoryUnavailable as exc:
            log.warning("could not record the interrupted scene message: %s", exc)
