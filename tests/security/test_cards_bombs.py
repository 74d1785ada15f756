"""Decompression and decode bombs, and malformed files, against the real card, zip and character
readers: memory stays bounded (measured in a fresh process), every error is clear, and
`chattr import-card` says `error: ...` and exits 2 without a traceback or a server path."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from chattr.characters.cards import CardError, import_card, read_card
from chattr.characters.character_set import CharacterError, load_character
from chattr.characters.uploads import UploadError, import_upload

from ..conftest import StartApp

BOMB_BYTES = 500 * 1024 * 1024
MAX_GROWTH_MB = 100
CARD = {"spec": "chara_card_v2", "data": {"name": "Ada Lovelace", "first_mes": "Hello."}}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I4s", len(data), kind) + data + struct.pack(">I", zlib.crc32(kind + data))


def small_png(*text_chunks: bytes) -> bytes:
    """A real 8x8 picture with the given chunks (already framed) before its IEND."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    raw = buffer.getvalue()
    end = raw.rindex(b"IEND") - 4
    return raw[:end] + b"".join(text_chunks) + raw[end:]


def compressed_zeros(size: int, fill: bytes = b"A") -> bytes:
    """zlib of `size` bytes of `fill`, made a MB at a time (the test never holds the bomb)."""
    compressor = zlib.compressobj(9)
    block = fill * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + compressor.flush()


def ztxt_bomb() -> bytes:
    return small_png(png_chunk(b"zTXt", b"chara\0\0" + compressed_zeros(BOMB_BYTES)))


def itxt_bomb() -> bytes:
    return small_png(png_chunk(b"iTXt", b"chara\0\x01\0\0\0" + compressed_zeros(BOMB_BYTES)))


def card_chunk(document: object) -> bytes:
    return png_chunk(b"tEXt", b"chara\0" + base64.b64encode(json.dumps(document).encode()))


def bomb_in_another_chunk() -> bytes:
    # A comment that inflates to 500 MB beside an honest card: the comment is never inflated.
    comment = png_chunk(b"zTXt", b"Comment\0\0" + compressed_zeros(BOMB_BYTES))
    return small_png(comment, card_chunk(CARD))


RSS_PROBE = textwrap.dedent(
    """
    import json, sys
    import psutil
    from chattr.characters.cards import CardError, read_card

    def high_water():
        # VmHWM: this process's peak resident size (ru_maxrss would include the parent's,
        # which survives exec).
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    process = psutil.Process()
    before = process.memory_info().rss
    try:
        card = read_card(sys.argv[1])
        outcome = "read " + card.name
    except CardError as error:
        outcome = "error: " + str(error)
    after = process.memory_info().rss
    # The peak, less the size before the read: an upper bound on what the read took at worst.
    print(json.dumps({"outcome": outcome, "kept": after - before, "peak": high_water() - before}))
    """
)


def measure(path: Path) -> dict[str, object]:
    """read_card in a fresh process: its outcome, and how much it grew (kept and at peak)."""
    run = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (ztxt_bomb, "zTXt chunk inflates to more than 24 MB"),
        (itxt_bomb, "iTXt chunk inflates to more than 24 MB"),
        (bomb_in_another_chunk, "read Ada Lovelace"),
    ],
)
def test_a_500_mb_text_chunk_bomb_grows_the_process_by_under_100_mb(
    tmp_path: Path, make: Callable[[], bytes], words: str
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(make())
    assert path.stat().st_size < 1024 * 1024  # about 500 KB on disk
    result = measure(path)
    assert words in str(result["outcome"])
    peak_mb = int(result["peak"]) / 2**20  # type: ignore[call-overload]
    kept_mb = int(result["kept"]) / 2**20  # type: ignore[call-overload]
    print(f"{make.__name__}: peak +{peak_mb:.0f} MB, kept +{kept_mb:.0f} MB")
    assert peak_mb < MAX_GROWTH_MB and kept_mb < MAX_GROWTH_MB


@pytest.mark.slow  # measured in a process of its own
def test_a_pixel_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")  # 64 M pixels, 256 MB as RGBA
    raw = buffer.getvalue()
    end = raw.rindex(b"IEND") - 4
    path = tmp_path / "huge.png"
    path.write_bytes(raw[:end] + card_chunk(CARD) + raw[end:])
    result = measure(path)
    assert "8000 x 8000 pixels" in str(result["outcome"])
    assert int(result["peak"]) / 2**20 < MAX_GROWTH_MB  # type: ignore[call-overload]


# --- malformed cards: a clear CardError, never an IndexError or RecursionError -----------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_CARDS: dict[str, tuple[Callable[[Path], Path], str | None, str]] = {
    "truncated iTXt": (
        lambda d: write(d, "card.png", small_png(png_chunk(b"iTXt", b"chara\0"))),
        "chara",
        "iTXt chunk is truncated",
    ),
    "truncated iTXt after its flag": (
        lambda d: write(d, "card.png", small_png(png_chunk(b"iTXt", b"chara\0\x01\0en"))),
        "chara",
        "iTXt chunk is truncated",
    ),
    "cut-off compressed iTXt": (
        lambda d: write(
            d,
            "card.png",
            small_png(
                png_chunk(
                    b"iTXt", b"chara\0\x01\0\0\0" + zlib.compress(bytes(range(256)) * 40)[:40]
                )
            ),
        ),
        "chara",
        "iTXt chunk is truncated",
    ),
    "zTXt that is not zlib": (
        lambda d: write(d, "card.png", small_png(png_chunk(b"zTXt", b"chara\0\0not zlib"))),
        "chara",
        "zTXt chunk cannot be inflated",
    ),
    "zTXt bomb": (lambda d: write(d, "card.png", ztxt_bomb()), "chara", "inflates to more than"),
    "deeply nested JSON": (
        lambda d: write(
            d, "card.json", b'{"spec": "chara_card_v2", "data": ' + nested(100_000).encode() + b"}"
        ),
        None,
        "nested too deeply",
    ),
    "deeply nested JSON in a PNG": (
        lambda d: write(
            d,
            "card.png",
            small_png(png_chunk(b"tEXt", b"chara\0" + base64.b64encode(nested(100_000).encode()))),
        ),
        "chara",
        "nested too deeply",
    ),
    "a description over the field cap": (
        lambda d: write(
            d,
            "card.json",
            json.dumps(
                {"spec": "chara_card_v2", "data": {"name": "X", "description": "word " * 60_000}}
            ).encode(),
        ),
        "data.description",
        "is 300,000 characters long; the most a field may hold is 200,000",
    ),
    "fields over the total cap": (
        lambda d: write(
            d,
            "card.json",
            json.dumps(
                {
                    "spec": "chara_card_v2",
                    "data": {
                        "name": "X",
                        **{f: "w" * 150_000 for f in ("description", "scenario", "personality")},
                    },
                }
            ).encode(),
        ),
        "data",
        "the text fields hold 450,001 characters together; the most is 400,000",
    ),
    "a 44 MB description": (
        lambda d: write(
            d,
            "card.json",
            b'{"spec": "chara_card_v2", "data": {"name": "X", "description": "'
            + b"w" * (44 * 2**20)
            + b'"}}',
        ),
        None,
        "card text is 44 MB; the most is 24 MB",
    ),
    "a lorebook entry over the field cap": (
        lambda d: write(
            d,
            "card.json",
            json.dumps(
                {
                    "spec": "chara_card_v2",
                    "data": {
                        "name": "X",
                        "character_book": {"entries": [{"keys": ["k"], "content": "w" * 250_000}]},
                    },
                }
            ).encode(),
        ),
        "data.character_book.entries.0.content",
        "the most a field may hold is 200,000",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_CARDS))
def test_bad_cards_get_a_clear_card_error(tmp_path: Path, kind: str) -> None:
    make, field, words = BAD_CARDS[kind]
    path = make(tmp_path)
    started = time.perf_counter()
    with pytest.raises(CardError) as caught:
        read_card(path)
    assert time.perf_counter() - started < 10
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path.name}: ")
    assert str(tmp_path) not in str(caught.value)
    characters = tmp_path / "characters"
    characters.mkdir()
    with pytest.raises(CardError):
        import_card(path, characters)
    assert list(characters.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_CARDS))
def test_the_import_card_command_says_error_and_exits_2(tmp_path: Path, kind: str) -> None:
    make, _, words = BAD_CARDS[kind]
    path = make(tmp_path)
    env = {**os.environ, "CHATTR_CHARACTERS_DIR": str(tmp_path / "chars")}
    run = subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    error = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and words in error[0]
    assert str(tmp_path) not in error[0]
    assert not (tmp_path / "chars").exists() or list((tmp_path / "chars").iterdir()) == []


# --- character.yaml and zipped folders ---------------------------------------------------------

YAML = "name: Grace Hopper\ndescription: Computer pioneer.\ngreeting: Hello, sailor.\n"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (YAML + "tags: " + nested(50_000) + "\n", None, "nested too deeply"),
        (YAML + "background: " + "w" * 250_000 + "\n", "background", "most a field may hold"),
        (YAML + "background: " + "w" * (3 * 2**20) + "\n", None, "the most a character.yaml"),
    ],
)
def test_bad_character_yaml_gets_a_clear_error(
    tmp_path: Path, text: str, field: str | None, words: str
) -> None:
    folder = tmp_path / "hopper"
    folder.mkdir()
    (folder / "character.yaml").write_text(text)
    with pytest.raises(CharacterError) as caught:
        load_character(folder)
    assert caught.value.field == field and words in str(caught.value)
    assert str(tmp_path) not in str(caught.value)


def lying_zip(path: Path) -> Path:
    """A zip whose member says it unpacks to 12 bytes; it unpacks to 20 MB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("hopper/character.yaml", YAML)
        archive.writestr("hopper/knowledge/big.md", b"w" * (20 * 2**20))
    raw = bytearray(path.read_bytes())
    real = struct.pack("<I", 20 * 2**20)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            name_length = struct.unpack_from(
                "<H", raw, start + (26 if signature == b"PK\x03\x04" else 28)
            )[0]
            header = 30 if signature == b"PK\x03\x04" else 46
            name = bytes(raw[start + header : start + header + name_length])
            if name == b"hopper/knowledge/big.md":
                assert raw[start + offset : start + offset + 4] == real
                raw[start + offset : start + offset + 4] = struct.pack("<I", 12)
            start += 4
    path.write_bytes(bytes(raw))
    return path


def test_a_zip_with_a_lying_size_header_gets_a_clear_upload_error(tmp_path: Path) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    upload = lying_zip(tmp_path / "upload.zip")
    assert zipfile.ZipFile(upload).getinfo("hopper/knowledge/big.md").file_size == 12
    with pytest.raises(UploadError) as caught:
        import_upload(upload, characters)
    message = str(caught.value)
    assert message.startswith("upload.zip: 'hopper/knowledge/big.md' is damaged or unreadable")
    assert "BadZipFile" in message and str(tmp_path) not in message
    assert list(characters.iterdir()) == []


def test_a_zip_that_is_not_a_zip_inside_gets_a_clear_upload_error(tmp_path: Path) -> None:
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("hopper/character.yaml", YAML)
    raw = upload.read_bytes()
    upload.write_bytes(raw[: len(raw) // 2] + b"\0" * 40 + raw[len(raw) // 2 :])  # a broken middle
    with pytest.raises(UploadError) as caught:
        import_upload(upload, tmp_path)
    assert str(caught.value).startswith("upload.zip: ")


# --- the page refuses uploads over CHATTR_MAX_UPLOAD_MB ----------------------------------------


def test_page_uploads_over_the_size_limit_are_refused(start_app: StartApp) -> None:
    app = start_app(max_upload_mb=1)
    small = httpx.post(
        f"{app.url}/gradio_api/upload",
        files={"files": ("card.json", json.dumps(CARD).encode(), "application/json")},
        timeout=60,
    )
    assert small.status_code == 200, small.text
    big = httpx.post(
        f"{app.url}/gradio_api/upload",
        files={"files": ("card.json", b"w" * (2 * 2**20), "application/json")},
        timeout=60,
    )
    assert big.status_code == 413, big.text
