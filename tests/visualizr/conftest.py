"""Fixtures for visualizr: character folders, an audio host, live servers."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from .visualizr_testkit import (
    AUDIO_HOST_PORT,
    PAINTING,
    PHOTO,
    AudioHost,
    drawing_without_face,
    make_settings,
    running_server,
    speech_between_silences,
)


@pytest.fixture(scope="session")
def characters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """einstein (photo), napoleon (painting as PNG), smiley (a drawing with declared geometry),
    and a broken folder that must be skipped."""
    root = tmp_path_factory.mktemp("characters")
    (root / "einstein").mkdir()
    (root / "einstein" / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    (root / "napoleon").mkdir()
    Image.open(PAINTING).save(root / "napoleon" / "portrait.png")
    (root / "smiley").mkdir()
    drawing_without_face().save(root / "smiley" / "drawing.png")
    (root / "smiley" / "character.yaml").write_text(
        "name: Smiley\nportrait:\n  file: drawing.png\n  face_box: [80, 80, 240, 240]\n"
        "  mouth_box: [150, 235, 100, 30]\n"
    )
    (root / "broken").mkdir()
    (root / "broken" / "portrait.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="session")
def audio_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AudioHost]:
    folder = tmp_path_factory.mktemp("audio_host")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", AUDIO_HOST_PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield AudioHost(folder, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, characters_dir: Path) -> Iterator[str]:
    """The default (warp) engine with the Gradio tab mounted."""
    settings = make_settings(tmp_path_factory.mktemp("visualizr"), characters_dir, ui=True)
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="session")
def spoken_wav() -> bytes:
    return speech_between_silences()
