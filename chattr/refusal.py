"""What chattr says no to: one kind of error whose message is written for the person.

A leaf like `chattr.reply`: every layer raises its refusals (a limit reached, sign-in missing, a
message that cannot be answered, the model failing, a session id that is not one), and the turn
loop shows them to the person the one way their edge shows errors
(`chattr.turn.loop.TurnLoop.refusals_shown`).
"""

from __future__ import annotations


class Refusal(Exception):
    """A request chattr will not or cannot carry out; the message says why and what to do."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # when trying again could succeed, if known
