"""Reading zips from strangers: the guards every zip import shares (folders and CHARX cards).

No member may be a link or climb out of its folder, there are at most MAX_ZIP_MEMBERS, and the
bytes actually unpacked, whatever the headers claim, stop at MAX_ZIP_BYTES all together.
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_ZIP_BYTES = 50_000_000  # uncompressed, all members together
MAX_ZIP_MEMBERS = 500
COPY_CHUNK = 1024 * 1024


class ZipRefused(ValueError):
    """A zip, or one member of it, that is not unpacked; the message says why (no paths)."""


def reason(exc: BaseException) -> str:
    """Why, in words, without the server paths an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip at `path` (data before it, as in a JPEG with a zip appended, is allowed)."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise ZipRefused(f"not a readable zip file ({reason(exc)})") from None


def checked_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The zip's files with their paths, once every guard has passed; ZipRefused otherwise."""
    members = [member for member in archive.infolist() if not member.is_dir()]
    for member in members:
        if stat.S_ISLNK(member.external_attr >> 16):
            raise ZipRefused(
                f"'{member.filename}' is a symbolic link; a character folder holds plain files only"
            )
    if len(members) > MAX_ZIP_MEMBERS:
        raise ZipRefused(f"{len(members)} files; the limit is {MAX_ZIP_MEMBERS}")
    if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
        raise ZipRefused(f"unpacks to more than {MAX_ZIP_BYTES // 1_000_000} MB")
    named = []
    for member in members:
        name = PurePosixPath(member.filename)
        # Zip-slip: no absolute paths, no climbing out of the character's folder.
        if name.is_absolute() or ".." in name.parts or "\\" in str(name):
            raise ZipRefused(f"unsafe path inside the zip: {name}")
        named.append((member, name))
    return named


class Budget:
    """The bytes still allowed out of one zip: a running cap over every member unpacked."""

    def __init__(self, limit: int = MAX_ZIP_BYTES) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise ZipRefused(f"unpacks to more than {self.limit // 1_000_000} MB")


def copy_member(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    out: BinaryIO,
    budget: Budget,
    limit: int | None = None,
    too_big: str = "",
) -> int:
    """Copy one member into `out`, counting every byte against `budget` (and `limit`, when
    given, for this member alone: then ZipRefused(too_big)); returns the bytes copied."""
    copied = 0
    try:
        with archive.open(member) as source:
            while chunk := source.read(COPY_CHUNK):
                copied += len(chunk)
                if limit is not None and copied > limit:
                    raise ZipRefused(too_big)
                budget.take(len(chunk))
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # A lying size header, a bad CRC, a cut-off member, encryption, an unknown method.
        raise ZipRefused(f"'{member.filename}' is damaged or unreadable ({reason(exc)})") from None
    return copied
