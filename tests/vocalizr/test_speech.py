"""POST /v1/speech on the piper engine: real audio, the reference voices' pitch, files served."""

from __future__ import annotations

import io
import struct
import time

import av
import httpx
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from tests.vocalizr.support import Server, median_f0, read_mono

LINE = "I have walked these streets for many years, and I know every corner of them."


def speak(client: httpx.Client, voice: str, text: str = LINE, **extra: object) -> httpx.Response:
    return client.post("/v1/speech", json={"text": text, "voice": voice, **extra})


def test_health_reports_engine_and_device(client: httpx.Client) -> None:
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "engine": "piper", "device": "cpu"}


def test_characters_are_voices_and_broken_folders_are_skipped(client: httpx.Client) -> None:
    voices = {voice["voice"]: voice for voice in client.get("/v1/voices").json()["voices"]}
    assert {"ada", "bea"} <= set(voices)
    assert voices["ada"]["name"] == "Ada"  # from character.yaml
    assert voices["ada"]["source"] == "character"
    assert "broken" not in voices and "silent" not in voices


def test_speech_is_a_served_wav_of_the_stated_length(
    client: httpx.Client, piper_server: Server
) -> None:
    answer = speak(client, "ada")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["engine"] == "piper"
    assert body["url"] == f"{piper_server.url}/files/{body['id']}"
    audio = httpx.get(body["url"])
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    info = sf.info(io.BytesIO(audio.content))
    assert (info.channels, info.subtype, info.format) == (1, "PCM_16", "WAV")
    assert info.samplerate == body["sample_rate"] == 22050
    assert info.frames / info.samplerate == pytest.approx(body["duration_s"], abs=0.01)
    # About 15 words: a couple of seconds of speech, not silence or a runaway.
    assert 2.0 < body["duration_s"] < 10.0
    samples, _ = sf.read(io.BytesIO(audio.content), dtype="float32")
    assert float(np.sqrt(np.mean(samples**2))) > 0.01


@pytest.mark.parametrize("voice", ["ada", "bea"])
def test_output_pitch_lands_on_the_reference_pitch(
    client: httpx.Client, characters_dir: object, voice: str
) -> None:
    reference, rate = read_mono(characters_dir / voice / "voice.wav")  # type: ignore[operator]
    target = median_f0(reference, rate)
    body = speak(client, voice).json()
    samples, out_rate = sf.read(io.BytesIO(httpx.get(body["url"]).content), dtype="float32")
    produced = median_f0(samples, out_rate)
    assert produced == pytest.approx(target, rel=0.15), (voice, produced, target)


def test_the_two_references_really_differ(characters_dir: object) -> None:
    low = median_f0(*read_mono(characters_dir / "ada" / "voice.wav"))  # type: ignore[operator]
    high = median_f0(*read_mono(characters_dir / "bea" / "voice.wav"))  # type: ignore[operator]
    assert high > 1.4 * low


def test_speed_shortens_speech(client: httpx.Client) -> None:
    normal = speak(client, "ada").json()["duration_s"]
    fast = speak(client, "ada", speed=1.5).json()["duration_s"]
    assert fast < 0.8 * normal


def test_language_variants_of_english_are_accepted(client: httpx.Client) -> None:
    for language in ("en", "EN", "en-US", "en_gb"):
        assert speak(client, "ada", "Yes.", language=language).status_code == 200


def test_stream_sends_a_wav_header_then_pcm(client: httpx.Client) -> None:
    text = "First sentence here. And a second one follows it."
    with client.stream("POST", "/v1/speech/stream", json={"text": text, "voice": "bea"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "audio/wav"
        data = reply.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    channels, rate = struct.unpack("<HI", data[22:28])
    assert (channels, rate) == (1, 22050)
    pcm = np.frombuffer(data[44:], dtype="<i2")
    assert pcm.size > rate  # two sentences: well over a second
    assert np.abs(pcm).max() > 1000


def test_metrics_count_requests_and_audio(client: httpx.Client) -> None:
    speak(client, "ada", "Count me.")
    speak(client, "nobody", "Count me too.")
    text = client.get("/metrics").text
    assert 'vocalizr_requests_total{route="/v1/speech",status="200"}' in text
    assert 'vocalizr_errors_total{code="unknown_voice"}' in text
    assert "vocalizr_synthesis_seconds_count" in text
    assert 'vocalizr_audio_seconds_total{engine="piper"}' in text
    assert "vocalizr_queue_depth 0.0" in text


def test_gradio_tab_is_mounted(client: httpx.Client) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "gradio" in page.text.lower()


@pytest.mark.parametrize(
    ("query", "accept", "codec", "media_type"),
    [
        ("?format=mp3", "*/*", "mp3", "audio/mpeg"),
        ("?format=ogg", "*/*", "opus", "audio/ogg"),
        ("", "audio/mpeg", "mp3", "audio/mpeg"),
        ("", "audio/ogg", "opus", "audio/ogg"),
    ],
)
def test_files_in_other_formats(
    client: httpx.Client, query: str, accept: str, codec: str, media_type: str
) -> None:
    body = speak(client, "ada", "Compressed speech.").json()
    reply = httpx.get(body["url"] + query, headers={"accept": accept})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == media_type
    with av.open(io.BytesIO(reply.content), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name.startswith(codec)
        seconds = 0.0
        for frame in container.decode(stream):
            seconds += frame.samples / frame.sample_rate
    assert seconds == pytest.approx(body["duration_s"], abs=0.15)


def test_a_stream_abandoned_midway_frees_its_queue_place(client: httpx.Client) -> None:
    text = " ".join(["This is one of many sentences that nobody will wait to hear."] * 6)
    with client.stream("POST", "/v1/speech/stream", json={"text": text, "voice": "ada"}) as reply:
        next(reply.iter_bytes())  # the header, maybe a first sentence; then hang up
    deadline = time.monotonic() + 20
    while "vocalizr_queue_depth 0.0" not in client.get("/metrics").text:
        assert time.monotonic() < deadline, "queue place still held after the client left"
        time.sleep(0.1)


TWO_SENTENCES = "Every morning the old sailor walked to the harbour. He knew each boat by its sail."


def silent_stretches(samples: npt.NDArray[np.float32], rate: int) -> list[tuple[float, float]]:
    """(start, end) in seconds of the runs of 10 ms frames under -40 dBFS, longest first."""
    frame = rate // 100
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    quiet = np.sqrt(np.mean(frames**2, axis=1)) < 0.01
    runs: list[tuple[float, float]] = []
    start = None
    for index, is_quiet in enumerate([*quiet, False]):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            runs.append((start / 100, index / 100))
            start = None
    return sorted(runs, key=lambda run: run[0] - run[1])


@pytest.mark.parametrize(("voice", "emotion"), [("default", None), ("ada", "sadness")])
def test_each_word_is_timed_where_the_audio_says_it(
    client: httpx.Client, voice: str, emotion: str | None
) -> None:
    # "ada" with sadness: slower (Piper's pace) and moved toward a reference voice, pitch
    # lowered (Praat's resynthesis): the times must follow the audio through both.
    extra = {"emotion": emotion} if emotion else {}
    body = speak(client, voice, TWO_SENTENCES, **extra).json()
    samples, rate = sf.read(io.BytesIO(httpx.get(body["url"]).content), dtype="float32")
    duration = samples.size / rate
    words = body["words"]
    assert body["word_timing"] == "aligned"
    assert [w["word"] for w in words] == TWO_SENTENCES.split()
    ends = [w["end_s"] for w in words]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)  # every word takes time
    assert all(0 <= w["start_s"] < w["end_s"] <= duration for w in words)
    # The last word ends where the speech does (measured on the samples: the last sound).
    # Over 9 runs (three voice and emotion cases) it ended 0.03-0.07 s after the last sound,
    # and the pause below stood within 0.05 s of the words around it.
    speaking = np.flatnonzero(np.abs(samples) > 0.02)
    assert ends[-1] == pytest.approx(speaking[-1] / rate, abs=0.12)
    # The pause between the sentences is the longest silence of the audio: the first
    # sentence's last word ends where it starts, the second's first word starts where it ends.
    gap_start, gap_end = silent_stretches(samples, rate)[0]
    harbour, he = words[8], words[9]
    assert (harbour["word"], he["word"]) == ("harbour.", "He")
    assert harbour["end_s"] == pytest.approx(gap_start, abs=0.08)
    assert he["start_s"] == pytest.approx(gap_end, abs=0.08)
