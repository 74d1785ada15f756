"""A chat model for scenes: it answers as whoever the prompt cues ("[Write X's next line.]"),
streams word by word, and keeps every prompt it was given, so tests can read who saw what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

_CUE = re.compile(r"\[Write (.+)'s next line\.\]")


class CuedModel(BaseChatModel):
    """Answers "<Name> speaks. I heard: <the last line>." for the member the prompt cues; a name
    in `fail_for` makes its stream fail before the first word."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    fail_for: set[str] = Field(default_factory=set)

    @property
    def _llm_type(self) -> str:
        return "cued"

    def answer(self, messages: list[BaseMessage]) -> str:
        cue = next((m.content for m in reversed(messages) if isinstance(m, SystemMessage)), "")
        match = _CUE.search(str(cue))
        name = match.group(1) if match else "Nobody"
        last = next((str(m.content) for m in reversed(messages) if m.type == "human"), "")
        return f"{name} speaks. I heard: {last[:60].rstrip('.')}."

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        text = "".join(c.message.content for c in self._stream(messages))  # type: ignore[misc]
        return ChatResult(generations=[ChatGeneration(message=AIMessageChunk(content=text))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        self.prompts.append(list(messages))
        text = self.answer(messages)
        if any(text.startswith(f"{name} ") for name in self.fail_for):
            raise ConnectionError("the model server went away")
        for word in re.findall(r"\S+\s*", text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
