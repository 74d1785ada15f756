"""Barge-in by words: speech over the character's reply stops it only when it holds words — not
an "mm-hm", a cough, or the reply's own voice back from the speakers. Recordings are made here
(the speech asset, a hummed "mm-hm", a cough-like burst) and heard by the real Smart Turn and the
real faster-whisper tiny.en that vocalizr ships."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from chattr.voice.live import LiveConversation, is_echo, spoken_words
from chattr.voice.turn_end import load_turn_model
from chattr.voice.utterances import Utterance

RATE = 16_000
CHUNK = RATE // 10
ASSET_TEXT = (
    "The holidays are a time of celebrating with loved ones, enjoying the festivities and "
    "muddling through Wisconsin's coat. But for many this year has been hard."
)
OTHER_REPLY = ["Waterloo was a close-run thing.", "The rain delayed our guns all morning."]

Transcribe = Callable[[npt.NDArray[np.float32]], str]


@pytest.fixture(scope="module")
def transcribe() -> Transcribe:
    from faster_whisper import WhisperModel

    from vocalizr.transcription import bundled_model_dir

    model = WhisperModel(str(bundled_model_dir()), device="cpu", compute_type="int8")

    def run(samples: npt.NDArray[np.float32]) -> str:
        segments, _ = model.transcribe(samples, language="en", beam_size=1)
        return " ".join(s.text.strip() for s in segments)

    return run


@pytest.fixture(scope="module")
def speech(assets: Path) -> npt.NDArray[np.float32]:
    samples, _ = sf.read(assets / "speech_en_16k.wav", dtype="float32", always_2d=True)
    return np.asarray(samples.mean(axis=1), dtype=np.float32)


def quiet(seconds: float) -> npt.NDArray[np.float32]:
    return np.random.default_rng(3).normal(0, 0.002, int(seconds * RATE)).astype(np.float32)


def hum(seconds: float, pitch: tuple[float, float]) -> npt.NDArray[np.float32]:
    """A closed-mouth hum: a voiced buzz (harmonics of a gliding pitch), low-passed, faded."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(np.linspace(*pitch, t.size)) / RATE
    buzz = sum(np.sin(k * phase) / k**1.5 for k in range(1, 12))
    fade = np.minimum(1, np.minimum(t, t[::-1]) / 0.04)
    return np.asarray(0.25 * buzz * fade / np.abs(buzz).max(), dtype=np.float32)


def mm_hm() -> npt.NDArray[np.float32]:
    return np.concatenate([hum(0.22, (125, 120)), quiet(0.08), hum(0.3, (115, 150))])


def cough() -> npt.NDArray[np.float32]:
    """A cough-like burst: 150 ms of noise with a sharp attack and a quick decay."""
    t = np.arange(int(0.15 * RATE)) / RATE
    burst = np.random.default_rng(9).normal(0, 1, t.size) * np.exp(-t / 0.04)
    return np.asarray(0.5 * burst / np.abs(burst).max(), dtype=np.float32)


def over_reply(
    audio: npt.NDArray[np.float32], sentences: list[str], transcribe: Transcribe
) -> tuple[float | None, list[tuple[Utterance, str, bool]]]:
    """Play `audio` into a live conversation whose reply is being made, checking words as the
    page's handler does; (stream time of the interruption or None, each utterance with its
    transcript and whether it was a backchannel)."""
    live = LiveConversation(turn_model=load_turn_model())
    reply = live.begin_reply("Tell me something.")
    reply.update(sentences, [() for _ in sentences])
    interrupted_at: float | None = None
    heard: list[tuple[Utterance, str, bool]] = []
    for offset in range(0, audio.size, CHUNK):
        live.hear(RATE, audio[offset : offset + CHUNK])
        so_far = live.words_to_check()
        checked = so_far is not None and interrupted_at is None
        if checked and so_far is not None and live.words_checked(transcribe(so_far.samples)):
            interrupted_at = live.detector.stream_s
            live.asking_to_stop()
            live.barge_in([], playing=True)
        while (utterance := live.next_utterance()) is not None:
            text = transcribe(utterance.samples)
            # As the page's turn handler decides (`VoiceControls.live_turn`).
            backchannel = (
                live.over_reply(utterance) and not reply.interrupted and not live.interrupts(text)
            )
            heard.append((utterance, text, backchannel))
    return interrupted_at, heard


def test_words_over_the_reply_stop_it(
    speech: npt.NDArray[np.float32], transcribe: Transcribe
) -> None:
    audio = np.concatenate([quiet(0.5), speech[: int(3.0 * RATE)], quiet(1.0)])
    interrupted_at, heard = over_reply(audio, OTHER_REPLY, transcribe)
    # Two words take about a second to say and to check: the first check, at 0.5 s of speech,
    # holds one or two; the one after it enough.
    assert interrupted_at is not None and interrupted_at <= 0.5 + 1.6, interrupted_at
    assert heard and not heard[0][2]  # what was said is a turn, not a backchannel


@pytest.mark.parametrize("sound", ["mm-hm", "cough"])
def test_an_mm_hm_or_a_cough_does_not_stop_the_reply(sound: str, transcribe: Transcribe) -> None:
    noise = mm_hm() if sound == "mm-hm" else cough()
    audio = np.concatenate([quiet(0.5), noise, quiet(1.0), noise, quiet(2.5)])
    interrupted_at, heard = over_reply(audio, OTHER_REPLY, transcribe)
    assert interrupted_at is None
    # Whatever voice activity made of it is no turn: a backchannel, or nothing with words.
    assert all(backchannel or not spoken_words(text) for _, text, backchannel in heard), heard


def test_the_replys_own_voice_from_the_speakers_does_not_stop_it(
    speech: npt.NDArray[np.float32], transcribe: Transcribe
) -> None:
    echo = 0.3 * speech[: int(5.86 * RATE)]  # the reply, quieter, back through the microphone
    audio = np.concatenate([quiet(0.5), echo, quiet(1.5)])
    interrupted_at, heard = over_reply(audio, [ASSET_TEXT], transcribe)
    assert interrupted_at is None
    assert heard and all(backchannel for _, _, backchannel in heard)


def test_which_words_count() -> None:
    assert spoken_words("Mm-hm.") == []
    assert spoken_words("[cough] (laughs) *sigh* uh-huh, yeah") == []
    assert spoken_words("Wait, stop!") == ["wait", "stop"]
    assert is_echo(["the", "rain", "delayed"], " ".join(OTHER_REPLY))
    assert not is_echo(["no", "that's", "wrong"], " ".join(OTHER_REPLY))
    live = LiveConversation(barge_in_words=2)
    live.begin_reply("Hi").update(OTHER_REPLY, [(), ()])
    assert not live.interrupts("Stop.")  # one word
    assert live.interrupts("Stop, please.")
    single = LiveConversation(barge_in_words=1)
    single.begin_reply("Hi").update(OTHER_REPLY, [(), ()])
    assert single.interrupts("Stop.")
    assert not single.interrupts("Mm-hm.")
