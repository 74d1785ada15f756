"""The chat model: chattr's own streaming client for Groq and OpenAI-compatible servers, or a
LangChain chat model (`CHATTR_LLM_CLIENT`)."""

from chattr.llm.completions import ChatCompletions, LLMRefused, LLMUnreachable
from chattr.llm.model import (
    NOT_CONFIGURED_HELP,
    ChatModel,
    LLMNotConfigured,
    make_chat_model,
)

__all__ = [
    "NOT_CONFIGURED_HELP",
    "ChatCompletions",
    "ChatModel",
    "LLMNotConfigured",
    "LLMRefused",
    "LLMUnreachable",
    "make_chat_model",
]
