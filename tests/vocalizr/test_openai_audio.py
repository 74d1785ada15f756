"""The OpenAI-compatible audio routes, driven by the official `openai` package against the real
service: speech to text on the real speech asset, text to speech in a vocalizr voice, bad audio."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import openai
import pytest
import soundfile as sf

from tests.vocalizr.support import SPEECH, Server, read_mono
from vocalizr.openai_routes import reencode

# What speech_en_16k.wav says (8 s): "The holidays are a time of celebrating with loved ones,
# enjoying the festivities ..."
EXPECTED_WORDS = ("holidays", "celebrating", "loved ones", "festivities")


@pytest.fixture
def ai(piper_server: Server) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=f"{piper_server.url}/v1", api_key="not-needed", max_retries=0, timeout=120
    )
    yield client
    client.close()


def wav_file(samples: npt.NDArray[np.float32], rate: int) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return ("clip.wav", buffer.getvalue())


def test_transcribes_the_speech_asset(ai: openai.OpenAI) -> None:
    with SPEECH.open("rb") as audio:
        result = ai.audio.transcriptions.create(model="whisper-1", file=audio, language="en")
    text = result.text.lower()
    for word in EXPECTED_WORDS:
        assert word in text, text


def test_text_and_verbose_formats(ai: openai.OpenAI) -> None:
    text = ai.audio.transcriptions.create(
        model="whisper-1", file=SPEECH, response_format="text", language="en-US"
    )
    assert isinstance(text, str)
    assert "holidays" in text.lower()

    verbose = ai.audio.transcriptions.create(
        model="whisper-1", file=SPEECH, response_format="verbose_json", temperature=0.0
    )
    assert verbose.language == "en"
    assert verbose.duration == pytest.approx(8.0, abs=0.1)
    assert verbose.segments
    assert all(0 <= s.start < s.end <= 8.1 for s in verbose.segments)
    assert "festivities" in verbose.text.lower()


def test_subtitles(ai: openai.OpenAI) -> None:
    srt = ai.audio.transcriptions.create(model="whisper-1", file=SPEECH, response_format="srt")
    assert srt.startswith("1\n00:00:0"), srt
    assert " --> " in srt
    vtt = ai.audio.transcriptions.create(model="whisper-1", file=SPEECH, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:0"), vtt


def test_compressed_upload_decodes(ai: openai.OpenAI, tmp_path: Path) -> None:
    samples, rate = read_mono(SPEECH)
    mp3 = tmp_path / "speech.mp3"
    with av.open(str(mp3), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(
            format=stream.codec_context.format,
            layout="mono",
            rate=rate,
            frame_size=stream.codec_context.frame_size,
        )
        for piece in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    result = ai.audio.transcriptions.create(model="whisper-1", file=mp3)
    assert "celebrating" in result.text.lower()


def test_not_audio_is_422(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        ai.audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"just some text"))
    assert caught.value.status_code == 422
    assert caught.value.code == "undecodable_audio"
    assert "does not decode" in caught.value.message


def test_silence_is_422(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ai.audio.transcriptions.create(
            model="whisper-1", file=wav_file(np.zeros(16_000 * 3, np.float32), 16_000)
        )
    assert caught.value.code == "no_speech"
    assert "silent" in caught.value.message or "no speech" in caught.value.message


def test_quiet_noise_is_no_speech(ai: openai.OpenAI) -> None:
    noise = np.random.default_rng(7).normal(0, 0.003, 16_000 * 4).astype(np.float32)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ai.audio.transcriptions.create(model="whisper-1", file=wav_file(noise, 16_000))
    assert caught.value.code == "no_speech"
    assert "silent" in caught.value.message or "no speech" in caught.value.message


def test_too_long_is_422(ai: openai.OpenAI, piper_server: Server) -> None:
    seconds = piper_server.settings.stt_max_s + 5
    with pytest.raises(openai.APIStatusError) as caught:
        ai.audio.transcriptions.create(
            model="whisper-1", file=wav_file(np.zeros(int(8_000 * seconds), np.float32), 8_000)
        )
    assert caught.value.status_code == 422
    assert caught.value.code == "audio_too_long"
    assert "VOCALIZR_STT_MAX_S" in caught.value.message


def test_language_the_model_lacks_is_422(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ai.audio.transcriptions.create(model="whisper-1", file=SPEECH, language="fr")
    assert "English-only" in caught.value.message


def test_bad_response_format_is_422(piper_server: Server) -> None:
    with piper_server.client() as http:
        answer = http.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", SPEECH.read_bytes())},
            data={"response_format": "xml"},
        )
    assert answer.status_code == 422
    assert "response_format" in answer.json()["error"]["message"]


SENTENCE = "Hello there, my friend. The weather is lovely today."


def test_speech_wav_round_trips_through_transcription(ai: openai.OpenAI) -> None:
    audio = ai.audio.speech.create(
        model="tts-1", voice="ada", input=SENTENCE, response_format="wav"
    ).content
    with wave.open(io.BytesIO(audio)) as clip:
        assert clip.getnchannels() == 1
        assert clip.getnframes() / clip.getframerate() > 1.5
    heard = ai.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio))
    text = heard.text.lower()
    assert "weather" in text and "today" in text, text


@pytest.mark.parametrize(
    ("response_format", "magic"),
    [("mp3", (b"ID3", b"\xff\xfb", b"\xff\xf3")), ("opus", (b"OggS",)), ("flac", (b"fLaC",))],
)
def test_speech_formats(ai: openai.OpenAI, response_format: str, magic: tuple[bytes, ...]) -> None:
    response = ai.audio.speech.create(
        model="tts-1",
        voice="default",
        input="Good morning.",
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert response.content.startswith(magic)
    with av.open(io.BytesIO(response.content)) as container:
        assert container.streams.audio


def test_speech_pcm(ai: openai.OpenAI) -> None:
    pcm = ai.audio.speech.create(
        model="tts-1", voice="default", input="Good morning.", response_format="pcm"
    ).content
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, "<i2")
    assert 0.3 < samples.size / 24_000 < 3.0
    assert np.abs(samples).max() > 1000  # speech, not silence


def test_pcm_is_24_khz(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.sin(np.arange(22_050) * 0.1).astype(np.float32) * 0.5, 22_050)
    pcm = reencode(wav, "pcm")
    assert len(pcm) == 2 * 24_000  # one second at 24 kHz, 16-bit
    flac = reencode(wav, "flac")
    samples, rate = sf.read(io.BytesIO(flac))
    assert (rate, samples.size) == (22_050, 22_050)


def test_speech_unknown_voice_is_404(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ai.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="wav")
    assert caught.value.code == "unknown_voice"
    assert "alloy" in caught.value.message


def test_speech_empty_input_is_422(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ai.audio.speech.create(model="tts-1", voice="default", input="  ", response_format="wav")
    assert caught.value.code == "empty_text"
