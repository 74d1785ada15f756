"""chattr's settings: environment variables (prefix ``CHATTR_``) or a ``.env`` file, read once."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatacter_common.logs import LogFormat
from chatacter_common.storage import MediaStoreLocation

DEFAULT_GROQ_MODEL = "llama-3.3-70b-versatile"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(text: str) -> tuple[Network, ...] | None:
    """Addresses and networks from a comma-separated list; None for `*` (trust every peer)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if "*" in items:
        return None
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(
            f"CHATTR_TRUSTED_PROXIES: {exc}; give addresses or networks (10.0.0.0/8), or *"
        ) from exc


class Settings(BaseSettings):
    """Everything chattr can be told from outside; documented in the README's settings table."""

    # An empty variable is unset: `GROQ_API_KEY=` from `.env.example`, not filled in, is no key
    # (the page then says what to set), not an empty one every turn fails with.
    model_config = SettingsConfigDict(
        env_prefix="CHATTR_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
    )

    groq_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GROQ_API_KEY", "CHATTR_GROQ_API_KEY"),
        description="Key for Groq (or for the OpenAI-compatible server when provider is openai).",
    )
    llm_provider: Literal["groq", "openai"] = Field(
        default="groq", description="`groq` (Groq's API) or `openai` (an OpenAI-compatible server)."
    )
    llm_client: Literal["http", "langchain"] = Field(
        default="http",
        description=(
            "`http`: chattr's own streaming client (starts at once); `langchain`: LangChain's "
            "ChatGroq or ChatOpenAI (LangChain's callbacks and tracing; 1-2 s to load)."
        ),
    )
    llm_model: str = Field(default=DEFAULT_GROQ_MODEL, description="LLM model name.")
    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of the LLM API (Groq-compatible for `groq`); unset: the provider's.",
    )
    llm_temperature: float = Field(default=0.7, description="Sampling temperature.")
    llm_max_tokens: int = Field(default=400, description="Upper bound on a reply's tokens.")
    llm_timeout_s: float = Field(default=60.0, description="Timeout of one LLM call, seconds.")

    redis_url: str | None = Field(
        default=None, description="Redis for short-term memory; unset: an in-process store."
    )
    memory_turns: int = Field(default=8, description="Recent turns kept and sent with each prompt.")
    memory_ttl_s: int = Field(
        default=7 * 24 * 3600, description="How long a session's short-term memory lives, seconds."
    )
    redis_prefix: str = Field(default="chattr", description="Key prefix in Redis.")
    browser_secret: SecretStr | None = Field(
        default=None,
        description="What the page's conversation id is encrypted with in the browser "
        "(Gradio's BrowserState), the same on every replica, so a page reloaded onto another "
        "replica continues its conversation; unset: made once and kept in Redis (shared by the "
        "replicas using it), or made at each start without Redis.",
    )

    qdrant_url: str | None = Field(
        default=None,
        description="Qdrant server URL; unset: Qdrant Edge embedded on disk in CHATTR_DATA_DIR.",
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="Qdrant server API key.")
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("chattr")),
        description="Where chattr keeps its data (embedded Qdrant, joined media, logs); "
        "default: the user data folder, ~/.local/share/chattr on Linux.",
    )
    characters_dir: Path = Field(
        default=Path("characters"), description="Where characters are loaded from."
    )
    knowledge_hits: int = Field(default=4, description="Knowledge chunks retrieved per turn.")
    memory_hits: int = Field(default=3, description="Older turns recalled from long-term memory.")

    max_message_chars: int = Field(default=2000, description="Longest accepted user message.")
    scene_max_replies: int = Field(
        default=4,
        ge=1,
        le=16,
        description="In a scene, the most members who answer one message (the `list` strategy "
        "included).",
    )
    scene_first_sentence_hold_s: float = Field(
        default=0.5,
        ge=0.0,
        description="In a scene, how long the earlier speakers' media start no new speech or "
        "video call while the next speaker's first sentence is still to come (its LLM "
        "streaming); once it comes they wait until it is spoken. 0: only from when it comes.",
    )
    max_upload_mb: int = Field(
        default=64,
        gt=0,
        description="Largest file the page accepts (a card or a zipped character), MB; "
        "bigger uploads are refused while they stream in.",
    )

    worldinfo_scan_depth: int = Field(
        default=2,
        ge=0,
        description="Recent messages a lorebook's keys are looked for in (World Info scan "
        "depth), unless the book or the entry sets its own.",
    )
    worldinfo_budget_tokens: int = Field(
        default=1024,
        gt=0,
        description="Most (approximate) tokens of World Info in one prompt, unless the book "
        "sets its own token_budget.",
    )
    worldinfo_max_recursion: int = Field(
        default=5,
        ge=0,
        description="Passes in which activated World Info entries may activate further ones; "
        "0: no recursion.",
    )

    vocalizr_url: str | None = Field(
        default=None, description="vocalizr service URL; unset: started locally (CPU engine)."
    )
    visualizr_url: str | None = Field(
        default=None, description="visualizr service URL; unset: started locally (CPU engine)."
    )
    vocalizr_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CHATTR_VOCALIZR_API_KEY", "VOCALIZR_API_KEY"),
        description="Bearer key sent to vocalizr (its VOCALIZR_API_KEY); services chattr starts "
        "itself get a random key each start.",
    )
    visualizr_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CHATTR_VISUALIZR_API_KEY", "VISUALIZR_API_KEY"),
        description="Bearer key sent to visualizr (its VISUALIZR_API_KEY); services chattr starts "
        "itself get a random key each start.",
    )

    media_connect_timeout_s: float = Field(
        default=2.0, description="Connect timeout for the media services, seconds."
    )
    vocalizr_timeout_s: float = Field(
        default=20.0, description="Read timeout of one speech request, seconds."
    )
    visualizr_timeout_s: float = Field(
        default=60.0, description="Read timeout of one video request, seconds."
    )
    media_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a media call that failed safely: a refused or reset connection "
        "(a dead replica), 502, or 503 (a full queue, an engine loading), after the "
        "service's Retry-After (at most 5 s).",
    )
    media_retry_deadline_s: float = Field(
        default=10.0,
        ge=0,
        description="No media call is retried (nor waits to be) later than this many seconds "
        "after its first try.",
    )
    breaker_threshold: int = Field(
        default=3, description="Consecutive failures that open a service's circuit."
    )
    breaker_reset_s: float = Field(
        default=30.0, description="How long an open circuit skips its service, seconds."
    )
    speech_concurrency: int = Field(
        default=2, description="Speech requests in flight at once, across all turns."
    )
    video_concurrency: int = Field(
        default=2, description="Video requests in flight at once, across all turns."
    )
    video_fps: int = Field(default=25, description="Frames per second of the videos.")
    media_retention_s: float = Field(
        default=3600.0,
        gt=0,
        description="Joined replies (audio, video) are deleted this many seconds after they "
        "are made, like the services' own files.",
    )
    media_store: MediaStoreLocation = Field(
        default=None,
        description="Where joined replies are kept: unset or `local`: CHATTR_DATA_DIR/media; "
        "`s3://BUCKET[/PREFIX]`: an S3-compatible store (endpoint and keys from "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), so every "
        "replica serves every reply's media. Checked at start-up.",
    )
    trace_text: bool = Field(
        default=False,
        description="Put the message, the reply and each spoken sentence in the turn's trace "
        "spans (tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set); off: only ids, sizes "
        "and timings.",
    )
    log_format: LogFormat = Field(
        default="text",
        description="`text`: lines for people; `json`: one JSON object a line (time, level, "
        "program, logger, message, trace and span ids, the conversation id), for log stores.",
    )
    metrics_key: SecretStr | None = Field(
        default=None,
        description="Bearer key(s) for `/metrics` (comma-separated, one per scraper), the "
        "scheme the services use; unset: `/metrics` is open, as the services' are without a key.",
    )
    media_startup_timeout_s: float = Field(
        default=120.0, description="How long to wait for locally started services to be healthy."
    )
    public_url: str | None = Field(
        default=None,
        description="chattr's address as browsers and scripts reach it (for joined media URLs); "
        "unset: built from each request (see CHATTR_TRUSTED_PROXIES), https://SPACE_HOST on a "
        "Space.",
    )
    trusted_proxies: str | None = Field(
        default=None,
        description="Reverse proxies whose X-Forwarded-Proto/-Host/-Prefix/-For headers are "
        "honoured (comma-separated addresses or networks, or *); unset: 127.0.0.1 and ::1, and "
        "* on a Space.",
    )
    space_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPACE_HOST", "CHATTR_SPACE_HOST"),
        description="Set by Hugging Face on a Space: media URLs then start with https://SPACE_HOST.",
    )
    relay_service_files: bool | None = Field(
        default=None,
        description="Serve the services' files at chattr's address (/vocalizr/files/…, "
        "/visualizr/files/…), so a browser reaches chattr only; unset: for the services chattr "
        "runs itself, not for CHATTR_VOCALIZR_URL / CHATTR_VISUALIZR_URL.",
    )

    host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("CHATTR_HOST", "GRADIO_SERVER_NAME"),
        description="Address the page listens on (a Space sets GRADIO_SERVER_NAME).",
    )
    port: int = Field(
        default=7860,
        validation_alias=AliasChoices("CHATTR_PORT", "GRADIO_SERVER_PORT"),
        description="Port the page listens on (a Space sets GRADIO_SERVER_PORT).",
    )
    concurrency_limit: int = Field(
        default=16, description="Chat turns processed at once (Gradio default_concurrency_limit)."
    )
    queue_size: int = Field(
        default=64, description="Requests waiting beyond that (Gradio max_size)."
    )

    # --- running in public (chattr/access/gate.py, chattr/access/rate_limits.py) ---
    auth: SecretStr | None = Field(
        default=None,
        description="Sign-in for the page and its API: comma-separated `user:password` pairs; "
        "unset: open to all.",
    )
    hf_signin: bool = Field(
        default=False,
        description="On a Hugging Face Space: only people signed in with Hugging Face may chat, "
        "import characters or upload files (the page's button; scripts pass a token, "
        "`Client(url, token=...)`). Needs `hf_oauth: true` in the Space's README front matter.",
    )
    hf_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias=AliasChoices("HF_ENDPOINT", "CHATTR_HF_ENDPOINT"),
        description="The Hugging Face Hub asked whose a script's token is (CHATTR_HF_SIGNIN).",
    )
    turn_model: str | None = Field(
        default=None,
        description="The Smart Turn v3.2 model (.onnx) that hears when a spoken turn is complete; "
        "unset: the one `make setup` copies into the virtual environment (without it, a pause "
        "alone ends a turn); `off`: a pause of 0.55 s alone ends a turn.",
    )
    turn_pause_s: float = Field(
        default=0.1,
        gt=0,
        le=2,
        description="Silence after the end of speech (voice activity's, which trails the voice "
        "by about 0.15 s) before the turn model is asked whether the turn is complete, seconds.",
    )
    turn_fallback_s: float = Field(
        default=2.0,
        gt=0,
        le=10,
        description="Silence that ends a turn the turn model heard as unfinished, seconds.",
    )
    barge_in_words: int = Field(
        default=2,
        ge=1,
        description="Words the person must say over the character's reply to stop it "
        "(backchannels such as 'mm-hm', coughs and the reply's own echo do not count).",
    )
    turns_per_minute: int = Field(
        default=20, ge=0, description="Turns one client may start per minute (0: no limit)."
    )
    imports_per_hour: int = Field(
        default=10,
        ge=0,
        description="Character imports one client may make per hour (0: no limit).",
    )
    upload_mb_per_minute: int = Field(
        default=200,
        ge=0,
        description="MB of file uploads (recordings, the live microphone's chunks, cards, voice "
        "clips) one client may send per minute (0: no limit).",
    )
    signin_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins (CHATTR_AUTH passwords, Hugging Face tokens) one address "
        "may make within CHATTR_SIGNIN_WINDOW_S before it must wait to try again.",
    )
    signin_user_failures: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins as one user name, from any address, within "
        "CHATTR_SIGNIN_WINDOW_S before that name must wait, except on devices it signed in "
        "from before.",
    )
    signin_window_s: float = Field(
        default=900.0, gt=0, description="The window failed sign-ins are counted in (seconds)."
    )
    signin_lock_s: float = Field(
        default=30.0,
        gt=0,
        description="The first wait after too many failed sign-ins; each further failure "
        "doubles it, up to an hour.",
    )
    turns_per_client: int = Field(
        default=2,
        ge=0,
        description="Turns one client may have running or waiting at once, so it cannot hold "
        "every turn slot while others wait (0: no cap).",
    )

    @property
    def own_url(self) -> str:
        """Where chattr is reached: CHATTR_PUBLIC_URL, else the address it listens on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @field_validator("turn_model")
    @classmethod
    def _check_turn_model(cls, value: str | None) -> str | None:
        if value is not None and value != "off" and not Path(value).is_file():
            raise ValueError(
                f"CHATTR_TURN_MODEL={value} is not a file: point it at smart-turn-v3.2-cpu.onnx, "
                "leave it unset for the one `make setup` installs, or write `off`"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str | None) -> str | None:
        if value is not None:
            parse_trusted(value)  # fail at start-up, with what to write instead
        return value

    @property
    def local_url(self) -> str:
        """Where this process reaches itself (its in-process services, on a Space)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def fixed_public_url(self) -> str | None:
        """The public address when it does not depend on the request: CHATTR_PUBLIC_URL, else
        https://SPACE_HOST on a Space; None elsewhere."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.space_host:
            return f"https://{self.space_host}"
        return None

    def trusted_proxy_networks(self) -> tuple[Network, ...] | None:
        """CHATTR_TRUSTED_PROXIES parsed; None trusts every peer (a Space's own proxy)."""
        if self.trusted_proxies is not None:
            return parse_trusted(self.trusted_proxies)
        return parse_trusted("*" if self.space_host else "127.0.0.1,::1")

    @property
    def llm_configured(self) -> bool:
        """True when an LLM can be reached: a key, or a base URL of a server that needs none."""
        return self.groq_api_key is not None or self.llm_base_url is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
