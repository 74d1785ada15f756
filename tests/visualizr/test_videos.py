"""End to end on real media: the warp engine behind real HTTP, checked by decoding the MP4s."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from fractions import Fraction

import av
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from visualizr.geometry import FaceLocator

from .visualizr_testkit import (
    PAINTING,
    PHOTO,
    SILENCE_S,
    SPEECH_S,
    AudioHost,
    image_bytes,
)


@dataclass
class Decoded:
    frames: list[npt.NDArray[np.uint8]]
    fps: Fraction
    width: int
    height: int
    pix_fmt: str
    profile: str | None
    extradata: bytes | None
    audio_codec: str
    audio_rate: int
    audio_channels: int
    audio_s: float
    raw: bytes


def decode(data: bytes) -> Decoded:
    with av.open(io.BytesIO(data), mode="r") as container:
        video = container.streams.video[0]
        sound = container.streams.audio[0]
        info = (
            video.average_rate,
            video.codec_context.width,
            video.codec_context.height,
            video.codec_context.pix_fmt,
            video.codec_context.profile,
            video.codec_context.extradata,
            sound.codec_context.name,
            sound.codec_context.sample_rate,
            sound.codec_context.channels,
        )
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    with av.open(io.BytesIO(data), mode="r") as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    return Decoded(frames, *info, audio_s=samples / info[7], raw=data)  # type: ignore[arg-type]


def post_json(url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}/v1/videos", json=body, timeout=120)


def fetch_video(result: dict[str, object]) -> Decoded:
    response = httpx.get(str(result["url"]), timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    return decode(response.content)


def mouth_box(frame: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    geometry = FaceLocator().locate(frame, key="test")
    points = np.concatenate([geometry.upper_lip, geometry.lower_lip, geometry.outer_lower_lip])
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    pad = 0.3 * (x1 - x0)
    return int(x0 - pad), int(y0 - pad), int(x1 + pad), int(y1 + pad)


def motion(
    frames: list[npt.NDArray[np.uint8]], box: tuple[int, int, int, int], first: int, last: int
) -> float:
    """Mean absolute change between consecutive frames inside `box`, over frames first..last."""
    x0, y0, x1, y1 = box
    crops = [f[y0:y1, x0:x1].astype(np.float32) for f in frames[first : last + 1]]
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(crops)]))


def test_health_and_metrics(server: str) -> None:
    health = httpx.get(f"{server}/healthz").json()
    assert health == {"status": "ok", "engine": "warp", "device": "cpu"}
    metrics = httpx.get(f"{server}/metrics")
    assert metrics.status_code == 200
    assert "visualizr_requests" in metrics.text
    characters = httpx.get(f"{server}/v1/characters").json()["characters"]
    assert characters == ["einstein", "napoleon", "smiley"]  # "broken" was skipped


def test_json_request_lip_syncs_the_character(
    server: str, audio_host: AudioHost, spoken_wav: bytes
) -> None:
    audio_url = audio_host.publish("sentence.wav", spoken_wav)
    response = post_json(server, {"audio_url": audio_url, "portrait": "einstein", "fps": 25})
    assert response.status_code == 200, response.text
    result = response.json()
    duration = 2 * SILENCE_S + SPEECH_S
    assert result["engine"] == "warp"
    assert abs(result["duration_s"] - duration) < 0.01
    assert abs(result["frames"] - duration * 25) <= 1
    assert result["url"].startswith(server + "/files/")

    video = fetch_video(result)
    assert abs(len(video.frames) - duration * 25) <= 1
    assert len(video.frames) == result["frames"]
    assert abs(video.audio_s - duration) < 0.06
    assert (video.width, video.height, video.pix_fmt) == (256, 256, "yuv420p")
    assert video.fps == 25
    assert video.audio_codec == "aac" and video.audio_rate == 44100 and video.audio_channels == 1
    # faststart: the index (moov) precedes the media (mdat), so browsers start playing at once.
    assert video.raw.index(b"moov") < video.raw.index(b"mdat")

    box = mouth_box(video.frames[0])
    fps = 25
    speech = motion(video.frames, box, int((SILENCE_S + 0.3) * fps), int((SILENCE_S + 2.7) * fps))
    silence = motion(video.frames, box, int(0.2 * fps), int((SILENCE_S - 0.2) * fps))
    corner = (0, 0, 40, 40)
    elsewhere = motion(
        video.frames, corner, int((SILENCE_S + 0.3) * fps), int((SILENCE_S + 2.7) * fps)
    )
    assert speech > 4 * silence, (speech, silence)
    assert speech > 4 * elsewhere, (speech, elsewhere)


def test_videos_of_one_portrait_join_by_stream_copy(
    server: str, audio_host: AudioHost, spoken_wav: bytes
) -> None:
    """Same codec parameters for every video of a portrait: they join without re-encoding."""
    url_a = audio_host.publish("a.wav", spoken_wav)
    short = io.BytesIO()
    import soundfile as sf

    from .visualizr_testkit import speech_mono

    sf.write(short, speech_mono(48000)[: 48000 * 2], 48000, format="WAV")
    url_b = audio_host.publish("b.wav", short.getvalue())
    videos = []
    for audio_url in (url_a, url_b):
        response = post_json(server, {"audio_url": audio_url, "portrait": "napoleon"})
        assert response.status_code == 200, response.text
        videos.append(fetch_video(response.json()))
    first, second = videos
    assert first.extradata == second.extradata  # identical SPS/PPS
    assert (first.width, first.fps, first.profile, first.audio_rate, first.audio_channels) == (
        second.width,
        second.fps,
        second.profile,
        second.audio_rate,
        second.audio_channels,
    )
    joined = io.BytesIO()
    with av.open(joined, "w", format="mp4") as out:
        sources = [av.open(io.BytesIO(v.raw), mode="r") for v in videos]
        targets = {
            "video": out.add_stream_from_template(sources[0].streams.video[0]),
            "audio": out.add_stream_from_template(sources[0].streams.audio[0]),
        }
        ends = {"video": 0, "audio": 0}
        for source in sources:
            shifts: dict[str, int] = {}
            next_ends = dict(ends)
            for packet in source.demux():
                if packet.dts is None or packet.pts is None:
                    continue
                kind = packet.stream.type
                shift = shifts.setdefault(kind, ends[kind] - packet.dts)
                packet.pts += shift
                packet.dts += shift
                next_ends[kind] = max(next_ends[kind], packet.dts + (packet.duration or 0))
                packet.stream = targets[kind]
                out.mux(packet)
            ends = next_ends
            source.close()
    assert len(decode(joined.getvalue()).frames) == len(first.frames) + len(second.frames)


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("jpeg", lambda: image_bytes(Image.open(PHOTO), "JPEG")),
        ("png-alpha", lambda: image_bytes(Image.open(PAINTING).convert("RGBA"), "PNG")),
        ("webp", lambda: image_bytes(Image.open(PAINTING), "WEBP")),
    ],
)
def test_multipart_upload_any_image_format(
    server: str, spoken_wav: bytes, name: str, image: object
) -> None:
    response = httpx.post(
        f"{server}/v1/videos",
        files={"audio": ("a.wav", spoken_wav, "audio/wav"), "portrait": (f"p.{name}", image())},  # type: ignore[operator]
        data={"fps": "20", "size": "128"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    duration = 2 * SILENCE_S + SPEECH_S
    assert abs(result["frames"] - duration * 20) <= 1
    video = fetch_video(result)
    assert (video.width, video.height) == (128, 128)
    assert len(video.frames) == result["frames"]


def test_drawing_uses_declared_geometry(server: str, spoken_wav: bytes) -> None:
    response = httpx.post(
        f"{server}/v1/videos",
        files={"audio": ("a.wav", spoken_wav, "audio/wav")},
        data={"character": "smiley", "size": "128"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    video = fetch_video(response.json())
    frames = video.frames
    # The declared mouth (scaled into the 128 px frame) opens during speech.
    speech = motion(frames, (40, 60, 90, 100), 45, 100)
    silence = motion(frames, (40, 60, 90, 100), 5, 33)
    assert speech > 3 * silence


def test_ui_is_mounted(server: str) -> None:
    response = httpx.get(f"{server}/ui/", timeout=30, follow_redirects=True)
    assert response.status_code == 200
    assert "gradio" in response.text.lower()
