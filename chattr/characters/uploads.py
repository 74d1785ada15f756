"""Characters uploaded from the page: a SillyTavern card (JSON or PNG) or a zipped folder."""

from __future__ import annotations

import logging
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from chattr.characters.cards import CharacterExistsError, import_card
from chattr.characters.character_set import ID_PATTERN, Character, FileFieldError, load_character

log = logging.getLogger(__name__)

MAX_ZIP_BYTES = 50_000_000  # uncompressed, all members together
MAX_ZIP_MEMBERS = 500
COPY_CHUNK = 1024 * 1024


class UploadError(ValueError):
    """An upload that cannot become a character; the message says why and what to send."""


def import_upload(path: Path, characters_dir: Path, *, overwrite: bool = False) -> Character:
    """Install an uploaded card or zipped character folder; return the loaded character."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            return import_folder_zip(path, characters_dir, overwrite=overwrite)
        return import_card(path, characters_dir, overwrite=overwrite)
    except FileFieldError as exc:
        raise UploadError(str(exc)) from exc


def import_folder_zip(path: Path, characters_dir: Path, *, overwrite: bool = False) -> Character:
    """Unpack a zipped character folder (character.yaml at its top or in one folder) safely."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise UploadError(f"{path.name}: not a readable zip file ({_reason(exc)})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for member in members:
            if stat.S_ISLNK(member.external_attr >> 16):
                raise UploadError(
                    f"{path.name}: '{member.filename}' is a symbolic link; a character folder "
                    "holds plain files only"
                )
        if len(members) > MAX_ZIP_MEMBERS:
            raise UploadError(f"{path.name}: {len(members)} files; the limit is {MAX_ZIP_MEMBERS}")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise UploadError(f"{path.name}: unpacks to more than {MAX_ZIP_BYTES // 1_000_000} MB")
        names = [PurePosixPath(m.filename) for m in members]
        for name in names:
            # Zip-slip: no absolute paths, no climbing out of the character's folder.
            if name.is_absolute() or ".." in name.parts or "\\" in str(name):
                raise UploadError(f"{path.name}: unsafe path inside the zip: {name}")
        roots = {n.parts[0] for n in names if len(n.parts) > 1}
        if any(n == PurePosixPath("character.yaml") for n in names):
            prefix: PurePosixPath | None = None
            character_id = path.stem.lower()
        elif len(roots) == 1 and PurePosixPath(next(iter(roots)), "character.yaml") in names:
            prefix = PurePosixPath(next(iter(roots)))
            character_id = prefix.name.lower()
        else:
            raise UploadError(
                f"{path.name}: no character.yaml at the top of the zip or in its one folder"
            )
        if not ID_PATTERN.fullmatch(character_id):
            raise UploadError(
                f"{path.name}: '{character_id}' is not a valid character id (lowercase letters, "
                "digits, '-' and '_'); rename the folder"
            )
        target = Path(characters_dir) / character_id
        if target.exists() and not overwrite:
            raise UploadError(f"a character '{character_id}' already exists")
        staging = Path(tempfile.mkdtemp(prefix=f".upload-{character_id}-", dir=characters_dir))
        try:
            folder = staging / character_id
            unpacked = 0
            for member, name in zip(members, names, strict=True):
                relative = name.relative_to(prefix) if prefix else name
                destination = folder.joinpath(*relative.parts)
                try:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    unpacked = _unpack(archive, member, destination, unpacked, path.name)
                except OSError as exc:
                    raise UploadError(
                        f"{path.name}: cannot unpack '{member.filename}' ({_reason(exc)})"
                    ) from None
            load_character(folder)  # validate before installing (paths confined, fields valid)
            if target.exists():
                shutil.rmtree(target)
            folder.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("installed character '%s' from %s", character_id, path.name)
    return load_character(target)


def _unpack(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    destination: Path,
    unpacked: int,
    zip_name: str,
) -> int:
    """Copy one member out with a running cap on all bytes written, whatever its header says."""
    try:
        with archive.open(member) as source, destination.open("wb") as out:
            while chunk := source.read(COPY_CHUNK):
                unpacked += len(chunk)
                if unpacked > MAX_ZIP_BYTES:
                    raise UploadError(
                        f"{zip_name}: unpacks to more than {MAX_ZIP_BYTES // 1_000_000} MB"
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # A lying size header, a bad CRC, a cut-off member, encryption, an unknown method.
        raise UploadError(
            f"{zip_name}: '{member.filename}' is damaged or unreadable ({_reason(exc)})"
        ) from None
    return unpacked


def _reason(exc: BaseException) -> str:
    """Why, in words, without the server paths an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["CharacterExistsError", "UploadError", "import_folder_zip", "import_upload"]
