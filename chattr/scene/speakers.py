"""Who answers a message in a scene, by SillyTavern's group rules, so card authors and their users
find what they know.

- natural: members named in the message first, in the order named (whole words of a name or the
  nickname); then each other member with the chance of its talkativeness, in a shuffled order; if
  nobody was chosen, one member with talkativeness above 0. A member never answers its own line.
- list: every member, in the scene's order.
- pooled: one member who has not spoken since the person last did.
- manual: nobody, unless the person picks who speaks.

A named `speaker` overrides the strategy: that member alone speaks (muted or not). Muted members
are otherwise never chosen. At most `limit` members answer one message.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)


class Strategy(enum.StrEnum):
    NATURAL = "natural"
    LIST = "list"
    POOLED = "pooled"
    MANUAL = "manual"


@dataclass(frozen=True)
class Member:
    """A scene member as the rules see it."""

    id: str
    name: str
    nickname: str = ""
    talkativeness: float = 0.5
    muted: bool = False

    def words(self) -> set[str]:
        """The words a message may name this member by: each word of the name and nickname."""
        return {word.casefold() for word in _WORD.findall(f"{self.name} {self.nickname}")}


def named_in(message: str, members: Sequence[Member]) -> list[str]:
    """The members a message names, in the order it names them (each once)."""
    named: list[str] = []
    for word in _WORD.findall(message):
        folded = word.casefold()
        for member in members:
            if member.id not in named and folded in member.words():
                named.append(member.id)
    return named


def shuffled(items: Sequence[Member], random: Callable[[], float]) -> list[Member]:
    """A Fisher–Yates shuffle on the given random source (so a seeded one repeats)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = int(random() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def choose_speakers(
    members: Sequence[Member],
    message: str,
    strategy: Strategy,
    *,
    random: Callable[[], float],
    limit: int,
    last_speaker: str | None = None,
    spoken_since_person: Sequence[str] = (),
    speaker: str | None = None,
) -> list[str]:
    """The ids of the members who answer `message`, in the order they speak.

    `last_speaker`: who said the scene's last line, when it was a member (a member never answers
    its own line under natural); `spoken_since_person`: who spoke after the person's last
    message (for pooled).
    """
    if speaker is not None:
        return [speaker]
    voices = [m for m in members if not m.muted]
    if strategy is Strategy.MANUAL or not voices or limit < 1:
        return []
    if strategy is Strategy.LIST:
        return [m.id for m in voices][:limit]
    if strategy is Strategy.POOLED:
        fresh = [m for m in voices if m.id not in spoken_since_person]
        pool = fresh or [m for m in voices if m.id != last_speaker] or voices
        return [pool[int(random() * len(pool))].id]
    return _natural(voices, message, random, limit, last_speaker)


def _natural(
    voices: list[Member],
    message: str,
    random: Callable[[], float],
    limit: int,
    last_speaker: str | None,
) -> list[str]:
    eligible = [m for m in voices if m.id != last_speaker]
    chosen = named_in(message, eligible)
    for member in shuffled([m for m in eligible if m.id not in chosen], random):
        # `<`: a talkativeness of 0 never speaks up unnamed, 1 always does.
        if random() < member.talkativeness:
            chosen.append(member.id)
    if not chosen:
        chatty = [m for m in eligible if m.talkativeness > 0]
        if chatty:
            chosen.append(chatty[int(random() * len(chatty))].id)
    return chosen[:limit]
