"""The joined-media store: its own names only, never a caller's path; retention deletes exactly
what it writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chattr.media.store import JOINED_NAME, STORED_NAME, MediaStore


def test_a_published_reply_is_found_by_its_name_and_by_its_url(tmp_path: Path) -> None:
    store = MediaStore.under(tmp_path).create()
    name = store.publish(b"RIFF", "wav")
    assert JOINED_NAME.fullmatch(name)
    assert store.path(name) == tmp_path / "media" / name
    assert store.name_in_url(f"http://page.test/media/{name}") == name
    assert store.name_in_url(f"http://vocalizr.test/files/{name}") is None  # a service's file
    assert store.delete(name) and not store.delete(name)  # the second time: already gone


@pytest.mark.parametrize(
    "name", ["../secret.wav", "notes.txt", f".{'a' * 32}-0.mp4", f"{'A' * 32}.wav", ""]
)
def test_only_joined_replies_names_are_served(tmp_path: Path, name: str) -> None:
    store = MediaStore(tmp_path).create()
    (tmp_path / "notes.txt").write_text("not ours")
    assert store.path(name) is None


def test_retention_deletes_every_name_the_store_writes_and_nothing_else(tmp_path: Path) -> None:
    store = MediaStore(tmp_path).create()
    reply = store.new_id()
    ours = [
        tmp_path / store.publish(b"x", "wav"),
        store.joined_path(reply, "mp4"),
        store.piece_path(reply, 3),
        store.unfinished_path(reply),
    ]
    theirs = tmp_path / "notes.txt"
    for path in [*ours, theirs]:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 100, time.time() - 100))
    assert all(STORED_NAME.fullmatch(path.name) for path in ours)
    assert store.purge(older_than_s=50) == len(ours)
    assert list(tmp_path.iterdir()) == [theirs]
