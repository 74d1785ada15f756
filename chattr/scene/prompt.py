"""The prompt of one member's reply in a scene: that member's persona, who else is there, the
whole exchange with every line's speaker named, and the member's cue to speak."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from chattr.characters.character_set import Character
from chattr.characters.world_info import Activation
from chattr.knowledge.store import Hit
from chattr.memory import Turn
from chattr.turn.prompt import USER_NAME, context_block, insert_at_depth, persona, spoken_part


def scene_note(speaker: Character, others: Sequence[Character]) -> str:
    """Who is in the scene, and that the reply is the speaker's line alone."""
    present = "; ".join(f"{c.name} ({c.description})" for c in others)
    return (
        f"This is a conversation between {USER_NAME} and several characters: you, {speaker.name}, "
        f"and {present}. Lines spoken by others are shown with their speaker's name. Write only "
        f"{speaker.name}'s next line: never write the others' lines, and do not start it with "
        "your own name."
    )


def line_of(turn: Turn, names: Mapping[str, str]) -> str:
    """A member's past line as the others see it: named."""
    return f"{names.get(turn.speaker, turn.speaker)}: {spoken_part(turn)}"


def build_scene_messages(
    speaker: Character,
    members: Sequence[Character],
    transcript: Sequence[Turn],
    *,
    knowledge: Sequence[Hit] = (),
    recalled: Sequence[Hit] = (),
    world: Activation | None = None,
) -> list[BaseMessage]:
    """The LLM's messages for `speaker`'s next line. `transcript` is the whole scene so far,
    oldest first, ending with what was just said (the person's message, or another member's
    line); the speaker's own lines are its turns, everyone else's are shown by name."""
    others = [c for c in members if c.id != speaker.id]
    names = {c.id: c.name for c in members}
    messages: list[BaseMessage] = [
        SystemMessage(persona(speaker, world)),
        SystemMessage(scene_note(speaker, others)),
    ]
    context = context_block(speaker, knowledge, recalled)
    if context:
        messages.append(SystemMessage(context))
    chat: list[BaseMessage] = []
    for turn in transcript:
        if turn.user:
            chat.append(HumanMessage(f"{USER_NAME}: {turn.user}"))
        if not turn.assistant:
            continue
        if turn.speaker == speaker.id:
            chat.append(AIMessage(spoken_part(turn)))
        else:
            chat.append(HumanMessage(line_of(turn, names)))
    messages.extend(insert_at_depth(chat, world))
    if speaker.post_history_instructions.strip():
        messages.append(SystemMessage(speaker.render(speaker.post_history_instructions, USER_NAME)))
    messages.append(SystemMessage(f"[Write {speaker.name}'s next line.]"))
    return messages
