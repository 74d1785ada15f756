"""The chat model a turn streams from, built from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from chattr.llm.completions import ChatCompletions
from chattr.settings import Settings

if TYPE_CHECKING:  # langchain takes seconds to import: only when a LangChain model is built
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage


class Chunk(Protocol):
    """A piece of a streamed reply; text where `content` is a string."""

    @property
    def content(self) -> Any: ...


class ChatModel(Protocol):
    """What a turn needs of a chat model: the reply streamed in pieces. chattr's
    `ChatCompletions` and every LangChain chat model are such models."""

    def astream(self, input: Sequence[BaseMessage], /) -> AsyncIterator[Chunk]: ...


class LLMNotConfigured(RuntimeError):
    """No key and no base URL: there is no LLM to talk to."""


NOT_CONFIGURED_HELP = (
    "No language model is configured. Set GROQ_API_KEY (a Groq key), or CHATTR_LLM_BASE_URL "
    "with CHATTR_LLM_PROVIDER=openai for an OpenAI-compatible server such as Ollama or vLLM, "
    "then restart chattr."
)


def make_chat_model(settings: Settings) -> ChatModel:
    """Build the streaming chat model the settings describe: chattr's own client
    (`CHATTR_LLM_CLIENT=http`, the default), or LangChain's ChatGroq or ChatOpenAI."""
    if not settings.llm_configured:
        raise LLMNotConfigured(NOT_CONFIGURED_HELP)
    key = settings.groq_api_key.get_secret_value() if settings.groq_api_key else None
    if settings.llm_client == "http":
        return ChatCompletions(
            provider=settings.llm_provider,
            model=settings.llm_model,
            api_key=key,
            base_url=settings.llm_base_url,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            timeout_s=settings.llm_timeout_s,
            max_retries=1,
        )
    return make_langchain_model(settings)


def make_langchain_model(settings: Settings) -> BaseChatModel:
    """LangChain's client for the provider (imports LangChain and the vendor's SDK)."""
    common: dict[str, Any] = {
        "model": settings.llm_model,
        # A local server needs no key, but the client libraries insist on one.
        "api_key": settings.groq_api_key or SecretStr("not-needed"),
        "base_url": settings.llm_base_url,
        "temperature": settings.llm_temperature,
        "timeout": settings.llm_timeout_s,
        "max_retries": 1,
        "streaming": True,
    }
    if settings.llm_provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(max_completion_tokens=settings.llm_max_tokens, **common)
    from langchain_groq import ChatGroq

    return ChatGroq(max_tokens=settings.llm_max_tokens, **common)
