"""The store as a bucket of an S3-compatible service (AWS S3, SeaweedFS, MinIO, R2, ...), through
obstore (Rust `object_store`): one client per process, path-style addressing, bounded retries."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import S3Store
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatacter_common.storage.base import (
    ObjectMissing,
    S3Location,
    StorageError,
    StoredObject,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

log = logging.getLogger(__name__)

# A turn waits on the store: a failing store must fail in seconds, not after object_store's
# default of ten retries over three minutes.
RETRIES: RetryConfig = {
    "max_retries": 2,
    "retry_timeout": timedelta(seconds=10),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1)},
}
CONNECT_TIMEOUT = "5s"
# One request, whole: a reply's video is a few MB; slower than this is a broken store.
REQUEST_TIMEOUT = "60s"
STREAM_CHUNK = 256 * 1024

_CODE = re.compile(r"<Code>(\w+)</Code>")
_STATUS = re.compile(r"status code: (\d{3} [A-Za-z ]+)")
_REFUSED_KEYS = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403 Forbidden")


class S3Environment(BaseSettings):
    """The standard AWS variables (no program prefix): read when a bucket store is opened.
    obstore reads the rest of the AWS_* family (session token, web identity) itself."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    aws_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint; unset: AWS's own for the region."
    )
    aws_access_key_id: str | None = Field(default=None, description="Access key id.")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Secret key.")
    aws_region: str | None = Field(default=None, description="Region; unset: us-east-1.")

    def config(self) -> S3Config:
        config: S3Config = {}
        if self.aws_endpoint_url:
            config["endpoint"] = self.aws_endpoint_url.rstrip("/")
        if self.aws_access_key_id:
            config["access_key_id"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            config["secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        config["region"] = self.aws_region or "us-east-1"
        return config


def reason(error: Exception) -> str:
    """What went wrong, in a few words (object_store's messages run to dozens of lines)."""
    text = str(error)
    code = _CODE.search(text)
    status = _STATUS.search(text)
    if code:
        return f"{code.group(1)} ({status.group(1).strip()})" if status else code.group(1)
    if status:
        return status.group(1).strip()
    if "error sending request" in text or "Connect" in text:
        return "cannot connect"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(error).__name__


class S3Storage:
    """Objects under `<prefix>/<namespace>/` of one bucket; files are written to `staging` (a
    local folder) first and stored whole."""

    def __init__(
        self,
        location: S3Location,
        environment: S3Environment,
        *,
        staging: Path,
        namespace: str,
    ) -> None:
        self.location = location
        self.endpoint = environment.aws_endpoint_url or "AWS S3"
        self.staging = staging
        self.key_prefix = "/".join(part for part in (location.prefix, namespace) if part)
        config = environment.config()
        client: ClientConfig = {"connect_timeout": CONNECT_TIMEOUT, "timeout": REQUEST_TIMEOUT}
        if config.get("endpoint", "").startswith("http://"):
            client["allow_http"] = True
        self.store = S3Store(
            location.bucket,
            prefix=self.key_prefix,
            config=config,
            client_options=client,
            retry_config=RETRIES,
        )

    @property
    def where(self) -> str:
        return f"s3://{self.location.bucket}/{self.key_prefix}".rstrip("/")

    def _failed(self, action: str, error: Exception) -> StorageError:
        return StorageError(f"{self.where}: could not {action}: {reason(error)}")

    def check(self, setting: str) -> None:
        """Write, list and delete a probe object: StoreUnavailable naming `setting` (and what to
        fix) unless the bucket exists, the keys are accepted and the endpoint answers."""
        probe = f".probe-{secrets.token_hex(8)}"
        try:
            # Listing first: some stores (SeaweedFS) create a missing bucket on the first write.
            next(iter(obstore.list(self.store, chunk_size=1)), None)
            obstore.put(self.store, probe, b"")
            obstore.delete(self.store, probe)
        except Exception as error:
            raise StoreUnavailable(f"{setting}={self.location}: {self._diagnose(error)}") from None

    def _diagnose(self, error: Exception) -> str:
        why = reason(error)
        if "NoSuchBucket" in why or ("404" in why and "NoSuchKey" not in why):
            return f"no bucket '{self.location.bucket}' at {self.endpoint} ({why})"
        if any(refusal in why for refusal in _REFUSED_KEYS):
            return (
                f"{self.endpoint} refused the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                f"for bucket '{self.location.bucket}' ({why})"
            )
        if why in ("cannot connect", "timed out"):
            return f"cannot reach the store at {self.endpoint} (AWS_ENDPOINT_URL): {why}"
        return f"the store at {self.endpoint} does not work: {why}"

    def put(self, name: str, data: bytes) -> None:
        try:
            obstore.put(self.store, name, data)
        except Exception as error:
            raise self._failed(f"store {name}", error) from None

    def staging_path(self, name: str) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / name

    def put_file(self, name: str, path: Path) -> None:
        try:
            obstore.put(self.store, name, path)
        except Exception as error:
            raise self._failed(f"store {name}", error) from None
        finally:
            path.unlink(missing_ok=True)

    def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            return bytes(obstore.get(self.store, name, options=options).bytes())  # type: ignore[arg-type]
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except Exception as error:
            raise self._failed(f"read {name}", error) from None

    def stat(self, name: str) -> StoredObject | None:
        try:
            meta = obstore.head(self.store, name)
        except FileNotFoundError:
            return None
        except Exception as error:
            raise self._failed(f"look up {name}", error) from None
        return StoredObject(name, meta["size"], meta["last_modified"].timestamp(), meta["e_tag"])

    def delete(self, name: str) -> bool:
        if self.stat(name) is None:  # S3 answers a delete of nothing as a success
            return False
        try:
            obstore.delete(self.store, name)
        except FileNotFoundError:
            return False
        except Exception as error:
            raise self._failed(f"delete {name}", error) from None
        return True

    def older_than(self, names: re.Pattern[str], older_than_s: float) -> list[str]:
        cutoff = time.time() - older_than_s
        try:
            return [
                meta["path"]
                for chunk in obstore.list(self.store, chunk_size=1000)
                for meta in chunk
                if names.fullmatch(meta["path"]) and meta["last_modified"].timestamp() < cutoff
            ]
        except Exception as error:
            raise self._failed("list the stored files", error) from None

    def purge(self, names: re.Pattern[str], older_than_s: float, what: str) -> int:
        expired = self.older_than(names, older_than_s)
        if expired:
            try:
                obstore.delete(self.store, expired)
            except Exception as error:
                raise self._failed(f"delete {len(expired)} expired {what}", error) from None
            log.info("deleted %d expired %s from %s", len(expired), what, self.where)
        return len(expired)

    def local_path(self, name: str) -> Path | None:
        return None

    async def stream(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(self.store, name, options={"range": (start, end)})
            async for chunk in result.stream(min_chunk_size=STREAM_CHUNK):
                yield bytes(chunk)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except Exception as error:
            raise self._failed(f"read {name}", error) from None
