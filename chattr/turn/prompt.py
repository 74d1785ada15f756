"""The prompt of one turn: persona, knowledge, recalled older turns, recent turns, message."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from chatacter_common.emotions import EMOTION_LABELS, NEUTRAL
from chattr.characters.character_set import Character
from chattr.characters.world_info import Activation
from chattr.knowledge.store import Hit
from chattr.memory import Turn

USER_NAME = "User"

SPOKEN_STYLE = (
    "Stay in character at all times. Your words are spoken aloud and shown as a talking portrait, "
    "so answer in plain spoken sentences: no lists, no markdown, no stage directions, and keep it "
    "to a few sentences unless asked for more."
)

EMOTION_TAGS = (
    "Your face and voice show your feelings. When your feeling changes, begin that sentence with "
    "one of these tags in square brackets: "
    + ", ".join(f"[{label}]" for label in EMOTION_LABELS)
    + f". A feeling holds until the next tag; [{NEUTRAL}] is the default. Use no other tags, "
    "and never explain them."
)


def persona(character: Character, world: Activation | None = None) -> str:
    """The system text that makes the model this character, in a spoken style; World Info
    entries placed before and after the character definition."""
    world = world or Activation()
    parts = [character.persona_prompt(USER_NAME, before=world.before, after=world.after)]
    if character.language and character.language != "en":
        parts.append(f"Answer in the language with code '{character.language}'.")
    parts.append(SPOKEN_STYLE)
    parts.append(EMOTION_TAGS)
    return "\n\n".join(parts)


def context_block(character: Character, knowledge: Sequence[Hit], recalled: Sequence[Hit]) -> str:
    """Retrieved facts and older turns, as one system message (empty when there are none)."""
    parts = []
    if knowledge:
        # Lorebook entries from cards carry {{char}}/{{user}} macros too.
        facts = "\n\n".join(
            f"[{hit.source}]\n{character.render(hit.text, USER_NAME)}" for hit in knowledge
        )
        parts.append(
            "Facts you know (use them when relevant; never invent facts beyond them and your "
            f"own knowledge):\n{facts}"
        )
    if recalled:
        older = "\n\n".join(hit.text for hit in recalled)
        parts.append(f"Earlier in this conversation (older than the recent turns below):\n{older}")
    return "\n\n".join(parts)


INTERRUPTED_MARK = "… [interrupted: the user spoke over you here]"


def spoken_part(turn: Turn) -> str:
    """The assistant's side of a past turn as the person heard it."""
    return turn.assistant + INTERRUPTED_MARK if turn.interrupted else turn.assistant


def build_messages(
    character: Character,
    message: str,
    *,
    recent: Sequence[Turn] = (),
    knowledge: Sequence[Hit] = (),
    recalled: Sequence[Hit] = (),
    world: Activation | None = None,
) -> list[BaseMessage]:
    """Assemble the chat messages for the LLM, in the order the design gives.

    A remembered turn without a user part is the conversation's chosen greeting. World Info
    entries at a depth go that many messages from the end of the chat (0: after the message).
    """
    messages: list[BaseMessage] = [SystemMessage(persona(character, world))]
    context = context_block(character, knowledge, recalled)
    if context:
        messages.append(SystemMessage(context))
    chat: list[BaseMessage] = []
    if not recent and character.greeting:
        chat.append(AIMessage(character.render(character.greeting, USER_NAME)))
    for turn in recent:
        if turn.user:
            chat.append(HumanMessage(turn.user))
        chat.append(AIMessage(spoken_part(turn)))
    chat.append(HumanMessage(message))
    messages.extend(insert_at_depth(chat, world))
    if character.post_history_instructions.strip():
        messages.append(
            SystemMessage(character.render(character.post_history_instructions, USER_NAME))
        )
    return messages


_ROLE_MESSAGES: dict[str, type[BaseMessage]] = {
    "system": SystemMessage,
    "user": HumanMessage,
    "assistant": AIMessage,
}


def insert_at_depth(chat: list[BaseMessage], world: Activation | None) -> list[BaseMessage]:
    """The chat with each at-depth World Info insert placed `depth` messages from its end."""
    if world is None or not world.at_depth:
        return chat
    placed: dict[int, list[BaseMessage]] = {}
    for insert in world.at_depth:
        index = max(0, len(chat) - insert.depth)
        placed.setdefault(index, []).append(_ROLE_MESSAGES[insert.role](insert.content))
    out: list[BaseMessage] = []
    for index in range(len(chat) + 1):
        out.extend(placed.get(index, ()))
        if index < len(chat):
            out.append(chat[index])
    return out
