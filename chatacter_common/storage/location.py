"""The setting that picks a store (`CHATTR_MEDIA_STORE`, `VOCALIZR_MEDIA_STORE`,
`VISUALIZR_MEDIA_STORE`) and opening the store it names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatacter_common.storage.base import S3Location, Storage, StoreUnavailable
from chatacter_common.storage.disk import DiskStorage
from chatacter_common.storage.s3 import S3Environment, S3Storage

_S3_URL = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/([^\s]*))?")

DESCRIPTION = (
    "Where produced media are kept: unset or `local`: a folder in the data folder; "
    "`s3://BUCKET[/PREFIX]`: an S3-compatible store (endpoint and keys from AWS_ENDPOINT_URL, "
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), so every replica serves every file. "
    "Checked at start-up."
)


def parse_location(value: str | None) -> S3Location | None:
    """None for a store on disk (unset, empty, `local`); the bucket and prefix of an s3:// URL;
    ValueError for anything else."""
    if value is None or value.strip() in ("", "local"):
        return None
    match = _S3_URL.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"{value[:80]!r} is not a media store: use `local` or `s3://BUCKET[/PREFIX]` "
            "(a bucket name of 3-63 lower-case letters, digits, dots and hyphens)"
        )
    return S3Location(match.group(1), (match.group(2) or "").strip("/"))


def _checked(value: str | None) -> str | None:
    parse_location(value)
    return value


# A settings field type: checked when the settings are read, so a typo stops start-up there.
MediaStoreLocation = Annotated[str | None, AfterValidator(_checked)]


class MediaStoreSettings(BaseSettings):
    """The store fields both services' settings inherit (their prefix gives the variable names:
    VOCALIZR_MEDIA_STORE, VISUALIZR_MEDIA_STORE)."""

    model_config = SettingsConfigDict(env_ignore_empty=True)

    media_store: MediaStoreLocation = Field(default=None, description=DESCRIPTION)


def open_storage(
    value: str | None, *, setting: str, directory: Path, namespace: str, check: bool = True
) -> Storage:
    """The store `value` names: `directory` on disk, or `<prefix>/<namespace>/` in a bucket
    (checked now unless `check` is off: StoreUnavailable naming `setting` when it does not work).

    On S3, `directory` still holds what is being written before it is stored."""
    try:
        location = parse_location(value)
    except ValueError as error:
        raise StoreUnavailable(f"{setting}: {error}") from None
    if location is None:
        return DiskStorage(directory)
    storage = S3Storage(location, S3Environment(), staging=directory, namespace=namespace)
    if check:
        storage.check(setting)
    return storage
