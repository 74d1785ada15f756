"""The chat model: ChatGroq, or any OpenAI-compatible server, streamed through LangChain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from chattr.settings import Settings

if TYPE_CHECKING:  # langchain takes seconds to import: only when the model is built
    from langchain_core.language_models.chat_models import BaseChatModel


class LLMNotConfigured(RuntimeError):
    """No key and no base URL: there is no LLM to talk to."""


NOT_CONFIGURED_HELP = (
    "No language model is configured. Set GROQ_API_KEY (a Groq key), or CHATTR_LLM_BASE_URL "
    "with CHATTR_LLM_PROVIDER=openai for an OpenAI-compatible server such as Ollama or vLLM, "
    "then restart chattr."
)


def make_chat_model(settings: Settings) -> BaseChatModel:
    """Build the streaming chat model the settings describe."""
    if not settings.llm_configured:
        raise LLMNotConfigured(NOT_CONFIGURED_HELP)
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
