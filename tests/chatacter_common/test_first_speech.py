"""The file that says a first sentence is being spoken: chattr's marker and visualizr's pause."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from chatacter_common.first_speech import FirstSpeechMarker, FirstSpeechPause


def test_the_file_is_there_while_any_first_sentence_is_spoken(tmp_path: Path) -> None:
    left_behind = tmp_path / "run" / "first-speech"
    left_behind.parent.mkdir()
    left_behind.touch()  # by a chattr that was killed mid-sentence
    marker = FirstSpeechMarker(left_behind)
    assert not marker.path.exists()
    marker.begin()
    marker.begin()  # two replies' first sentences at once
    marker.end()
    assert marker.path.exists() and marker.speaking == 1  # one is still being spoken
    marker.end()
    assert not marker.path.exists() and marker.speaking == 0


def test_frames_are_asked_for_only_once_the_first_sentence_is_spoken(tmp_path: Path) -> None:
    marker = FirstSpeechMarker(tmp_path / "first-speech")
    pause = FirstSpeechPause(marker.path, budget_s=60.0)
    asked: list[float] = []
    ended: list[float] = []

    def speak_then_end() -> None:
        time.sleep(0.2)  # the sentence's synthesis
        ended.append(time.monotonic())
        marker.end()

    def frames() -> Iterator[int]:
        for index in range(3):
            asked.append(time.monotonic())
            if index == 0:  # a first sentence begins while the video is being rendered
                marker.begin()
                threading.Thread(target=speak_then_end).start()
            yield index

    assert list(pause.video().frames(frames())) == [0, 1, 2]
    # Frame 1 was asked for only after the sentence ended, however long it took.
    assert asked[1] >= ended[0]


def test_a_video_waits_at_most_its_budget_in_all(tmp_path: Path) -> None:
    marker = FirstSpeechMarker(tmp_path / "first-speech")
    marker.begin()  # never ended: a file left behind
    pause = FirstSpeechPause(marker.path, budget_s=0.5)
    started = time.monotonic()
    video = pause.video()
    assert list(video.frames(range(10))) == list(range(10))
    waited = time.monotonic() - started
    # The budget once for the video (not once per frame: 5 s).
    assert 0.5 <= waited < 2.5
    assert video.wait() == 0.0  # spent: no more waits for this video
    assert pause.video().left_s == 0.5  # the next video has a budget of its own
    started = time.monotonic()
    assert list(FirstSpeechPause(marker.path, 0.0).video().frames(range(10))) == list(range(10))
    assert time.monotonic() - started < 0.5  # no budget: never waits
