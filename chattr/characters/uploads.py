"""Characters uploaded from the page: a SillyTavern card (JSON, PNG, CHARX) or a zipped folder."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from chattr.characters.cards import CharacterExistsError, import_card
from chattr.characters.character_set import ID_PATTERN, Character, FileFieldError, load_character
from chattr.characters.charx import is_charx
from chattr.characters.zips import (
    Budget,
    ZipRefused,
    checked_members,
    copy_member,
    open_zip,
    reason,
)

log = logging.getLogger(__name__)


class UploadError(ValueError):
    """An upload that cannot become a character; the message says why and what to send."""


def import_upload(
    path: Path,
    characters_dir: Path,
    *,
    overwrite: bool = False,
    notes: list[str] | None = None,
) -> Character:
    """Install an uploaded card (JSON, PNG, CHARX) or zipped character folder; return it.

    What a CHARX brings that was left out, and why, is appended to `notes`."""
    path = Path(path)
    try:
        if is_charx(path):
            return import_card(path, characters_dir, overwrite=overwrite, notes=notes)
        if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            return import_folder_zip(path, characters_dir, overwrite=overwrite)
        return import_card(path, characters_dir, overwrite=overwrite, notes=notes)
    except FileFieldError as exc:
        raise UploadError(str(exc)) from exc


def import_folder_zip(path: Path, characters_dir: Path, *, overwrite: bool = False) -> Character:
    """Unpack a zipped character folder (character.yaml at its top or in one folder) safely."""
    try:
        return _import_folder_zip(path, characters_dir, overwrite=overwrite)
    except ZipRefused as exc:
        raise UploadError(f"{path.name}: {exc}") from None


def _import_folder_zip(path: Path, characters_dir: Path, *, overwrite: bool) -> Character:
    with open_zip(path) as archive:
        members = checked_members(archive)
        names = [name for _, name in members]
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
            budget = Budget()
            for member, name in members:
                relative = name.relative_to(prefix) if prefix else name
                destination = folder.joinpath(*relative.parts)
                try:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with destination.open("wb") as out:
                        copy_member(archive, member, out, budget)
                except OSError as exc:
                    raise UploadError(
                        f"{path.name}: cannot unpack '{member.filename}' ({reason(exc)})"
                    ) from None
            load_character(folder)  # validate before installing (paths confined, fields valid)
            if target.exists():
                shutil.rmtree(target)
            folder.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("installed character '%s' from %s", character_id, path.name)
    return load_character(target)


__all__ = ["CharacterExistsError", "UploadError", "import_folder_zip", "import_upload"]
