"""The settings both services share, and the one rule for where their file URLs point.

Each service's `Settings` subclasses `ServiceSettings` with its own prefix (`VOCALIZR_`,
`VISUALIZR_`), gives the fields whose default is its own (port, engine, data folder, queue and
upload bounds) and adds only its own. An empty variable counts as unset (`GROQ_API_KEY=` copied
from `.env.example` and not filled in is no key at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chatacter_common.logs import LogFormat
from chatacter_common.storage import MediaStoreSettings

Port = Annotated[int, Field(ge=0, le=65535)]
QueueBound = Annotated[int, Field(ge=1)]
ByteCount = Annotated[int, Field(gt=0)]

ALL_INTERFACES = ("0.0.0.0", "::", "")


class ServiceSettings(MediaStoreSettings):
    """What every service can be told; read once at start-up (the media store's field too)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: Port = Field(description="Port the HTTP server listens on.")
    public_url: str | None = Field(
        default=None,
        description="Base of the absolute file URLs in answers; unset: `http://{host}:{port}`, "
        "or the address the caller used when the host is all interfaces (`0.0.0.0`, `::`).",
    )
    engine: str = Field(description="The engine, by name.")
    data_dir: Path = Field(description="Where produced files and caches are kept.")
    characters_dir: Path = Field(
        default=Path("characters"),
        description="Folder of character folders: `<id>/` gives character `<id>`'s portrait "
        "and its voice (voice `<id>`: `voice.wav`, or the file `voice.reference` names); read at "
        "start-up, and a folder added later on its first request.",
    )
    retention_s: float = Field(
        default=3600.0,
        gt=0,
        description="Produced files are deleted this many seconds after they are made.",
    )
    max_queue: QueueBound = Field(
        description="Jobs queued or running at once; past it the answer is 503 `queue_full` with "
        "Retry-After."
    )
    workers: int = Field(default=1, ge=1, description="Jobs run at the same time (worker threads).")
    niceness: int = Field(
        default=0,
        ge=0,
        le=19,
        description="How far below other programs this service runs on a shared CPU (Unix "
        "nice, 0-19): all its threads and children, and its session where it leads one "
        "(Linux autogroups). 0: no lower. chattr starts its own visualizr at 10, so its renders "
        "make way for speech and text on the same cores.",
    )
    max_upload_bytes: ByteCount = Field(description="Largest upload accepted, in bytes.")
    ui: bool = Field(default=True, description="Mount the Gradio tab at `/ui`.")
    log_format: LogFormat = Field(
        default="text",
        description="`text`: lines for people; `json`: one JSON object a line (time, level, "
        "program, logger, message, trace and span ids), for log stores.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key(s), comma-separated: when set, every route but the probes "
        "(`/livez`, `/readyz`, `/healthz`) and `/files/<id>` needs `Authorization: Bearer <key>`.",
    )

    def files_base(self, request_base: str) -> str:
        """The base of the file URLs in an answer to a request that reached `request_base`.

        `public_url` when set. Bound to all interfaces, the address the caller used: the one
        address known to reach this server from where the caller is (another machine, a
        container, a proxy that forwards its host), where `127.0.0.1` would name the caller's
        own machine. Bound to one address, that address.
        """
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.host in ALL_INTERFACES:
            return request_base.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
