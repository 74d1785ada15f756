"""What a scene message produces: each member's reply as it grows, and what failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chattr.reply import TurnIssue, TurnState, add_issue


@dataclass(frozen=True)
class Greeting:
    """A member's opening line, said when the scene began."""

    character: str
    text: str


@dataclass
class SceneState:
    """Everything known about one scene message so far; the last state is its result."""

    session_id: str
    members: tuple[str, ...]
    message: str
    replies: list[TurnState] = field(default_factory=list)
    # The members' greetings, when this message opened the scene.
    greetings: list[Greeting] = field(default_factory=list)
    errors: list[TurnIssue] = field(default_factory=list)
    done: bool = False

    def add_error(self, service: str, detail: str) -> None:
        add_issue(self.errors, service, detail)

    def all_errors(self) -> list[TurnIssue]:
        """The scene's own errors and each reply's, named by the member they belong to."""
        issues = list(self.errors)
        for reply in self.replies:
            issues.extend(
                TurnIssue(f"{reply.character}: {e.service}", e.detail) for e in reply.errors
            )
        return issues

    def to_api(self) -> dict[str, Any]:
        """The `scene` API's JSON result."""
        replies = []
        for reply in self.replies:
            one = reply.to_api()
            del one["session_id"]
            replies.append(one)
        return {
            "session_id": self.session_id,
            "characters": list(self.members),
            "greetings": [asdict(g) for g in self.greetings],
            "replies": replies,
            "errors": [asdict(e) for e in self.all_errors()],
        }


def as_one_turn(state: SceneState | None, label: str) -> TurnState | None:
    """A scene message seen as one turn, for the traces and the metrics a turn feeds: its
    replies' text, every error, the first reply's timings (the time the person waited)."""
    if state is None:
        return None
    first = state.replies[0] if state.replies else None
    return TurnState(
        session_id=state.session_id,
        character=label,
        message=state.message,
        text="\n".join(f"{r.character}: {r.text}" for r in state.replies if r.text),
        errors=state.all_errors(),
        done=state.done,
        timings=dict(first.timings) if first is not None else {},
    )
