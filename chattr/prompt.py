"""The prompt of one turn: persona, knowledge, recalled older turns, recent turns, message."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from chattr.characters import Character
from chattr.knowledge.base import Hit
from chattr.memory import Turn

USER_NAME = "User"

SPOKEN_STYLE = (
    "Stay in character at all times. Your words are spoken aloud and shown as a talking portrait, "
    "so answer in plain spoken sentences: no lists, no markdown, no stage directions, and keep it "
    "to a few sentences unless asked for more."
)


def persona(character: Character) -> str:
    """The system text that makes the model this character, in a spoken style."""
    parts = [character.persona_prompt(USER_NAME)]
    if character.language and character.language != "en":
        parts.append(f"Answer in the language with code '{character.language}'.")
    parts.append(SPOKEN_STYLE)
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


def build_messages(
    character: Character,
    message: str,
    *,
    recent: Sequence[Turn] = (),
    knowledge: Sequence[Hit] = (),
    recalled: Sequence[Hit] = (),
) -> list[BaseMessage]:
    """Assemble the chat messages for the LLM, in the order the design gives."""
    messages: list[BaseMessage] = [SystemMessage(persona(character))]
    context = context_block(character, knowledge, recalled)
    if context:
        messages.append(SystemMessage(context))
    if not recent and character.greeting:
        messages.append(AIMessage(character.render(character.greeting, USER_NAME)))
    for turn in recent:
        messages.append(HumanMessage(turn.user))
        messages.append(AIMessage(turn.assistant))
    messages.append(HumanMessage(message))
    if character.post_history_instructions.strip():
        messages.append(
            SystemMessage(character.render(character.post_history_instructions, USER_NAME))
        )
    return messages
