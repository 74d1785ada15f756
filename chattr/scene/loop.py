"""Scene messages through the app's turn loop: the same admission (sign-in, rate limits, a fair
share of the turn slots: one slot for the whole message), traces, metrics and records for
`forget` as a one-character turn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from chattr.scene.runner import SceneRequest, SceneRunner
from chattr.scene.state import SceneState, as_one_turn
from chattr.turn import tracing
from chattr.turn.loop import AdmittedTurn, TurnLoop


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
