"""Word times from phoneme durations (`piper_alignment.word_spans`) and estimated by characters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vocalizr.engines.piper import default_model_path
from vocalizr.engines.piper_alignment import PhonemeSpan, aligned_model_file, word_spans
from vocalizr.words import WordTime, estimate_words, scale_words


def spoken(*words: str, phoneme_s: int = 10) -> list[PhonemeSpan]:
    """Piper's alignment of the phoneme words given (a letter a phoneme, each `phoneme_s`
    samples long), between its start and end markers, a space after each word."""
    spans: list[PhonemeSpan] = []
    at = 0
    for phoneme in "^" + " ".join(words) + "$":
        spans.append(PhonemeSpan(phoneme, at, at + phoneme_s))
        at += phoneme_s
    return spans


def test_each_word_ends_with_its_last_phoneme() -> None:
    # "^hi ðeə$": h from 10, i ends at 30; the space 30-40; ð from 40, ə ends at 70.
    assert word_spans(["hi", "ðeə"], spoken("hi", "ðeə")) == [(10, 30), (40, 70)]


def test_punctuation_and_stress_take_no_part_in_a_word() -> None:
    # "hˈi," alone (stressed, a comma) against "hi, ðeə." spoken.
    spans = spoken("hi,", "ðeə.")
    assert word_spans(["hˈi,", "ðeə."], spans) == [(10, 30), (50, 80)]


def test_a_number_spoken_as_several_words_is_one_word_of_the_text() -> None:
    # "in 1815 we": espeak reads the number as three words.
    spans = spoken("in", "eitin", "hʌndɹɪd", "fɪftin", "wi")
    times = word_spans(["in", "eitinhʌndɹɪdfɪftin", "wi"], spans)
    assert times is not None
    assert times[1] == (40, 240) and times[2] == (250, 270)


def test_words_run_together_are_split_between_them() -> None:
    # "well… to": espeak says "wɛltə", one word.
    times = word_spans(["wɛl", "tu", "mi"], spoken("wɛltə", "mi"))
    assert times is not None
    (_, well), (to_start, to), (_, me) = times
    assert well == 40 and to_start == 40 and to == 60 and me == 90


def test_a_word_without_sound_takes_no_time() -> None:
    times = word_spans(["wan", "", "tu"], spoken("wan", "tu"))
    assert times == [(10, 40), (40, 40), (50, 70)]


def test_nothing_in_common_is_no_alignment() -> None:
    assert word_spans(["abc"], spoken("xyz")) is None
    assert word_spans(["abc"], []) is None


def test_estimates_spread_the_words_by_characters_over_the_audio() -> None:
    words = estimate_words("I am here.", 2.0)
    assert [w.word for w in words] == ["I", "am", "here."]
    # Weights 2, 3, 6 (a word and its space) over 11.
    assert [w.end_s for w in words] == pytest.approx([0.364, 0.909, 2.0], abs=0.001)
    assert words[0].start_s == 0.0 and words[1].start_s == words[0].end_s
    assert estimate_words("", 1.0) == ()


def test_times_stretch_with_the_audio() -> None:
    assert scale_words([WordTime("so", 0.5, 1.0)], 1.1) == (WordTime("so", 0.55, 1.1),)


def test_the_graph_for_word_timing_is_patched_once_into_the_cache(tmp_path: Path) -> None:
    """The first start writes the patched graph to the cache; a later one finds it there; both
    load a session whose second output is the phoneme durations."""
    import onnxruntime

    model, unprepared = default_model_path(), tmp_path / "not prepared"
    first = aligned_model_file(model, tmp_path / "cache", unprepared)
    assert isinstance(first, Path) and first.parent == tmp_path / "cache"
    written = first.stat().st_mtime_ns
    again = aligned_model_file(model, tmp_path / "cache", unprepared)
    assert again == first and first.stat().st_mtime_ns == written  # not written twice
    session = onnxruntime.InferenceSession(str(again), providers=["CPUExecutionProvider"])
    assert len(session.get_outputs()) == 2
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # nothing partial


def test_a_cache_that_cannot_be_written_keeps_the_graph_in_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    aligned = aligned_model_file(default_model_path(), blocked / "cache", tmp_path / "none")
    assert isinstance(aligned, bytes) and aligned


def test_the_graph_set_up_prepared_is_used_first(tmp_path: Path) -> None:
    """A start on an empty data folder loads what set-up prepared: nothing is written."""
    model, prepared = default_model_path(), tmp_path / "prepared"
    made = aligned_model_file(model, prepared, prepared)
    assert isinstance(made, Path)
    assert aligned_model_file(model, tmp_path / "empty data", prepared) == made
    assert not (tmp_path / "empty data").exists()


def test_a_graph_optimized_ahead_speaks_exactly_as_the_graph(tmp_path: Path) -> None:
    """Set-up saves the patched graph as ONNX Runtime optimizes it, and vocalizr loads that
    without optimizing again: the same samples and durations, both outputs kept."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig

    from vocalizr.engines.piper import optimize_graph, optimized_graph_file

    model = default_model_path()
    graph = aligned_model_file(model, tmp_path, tmp_path)
    assert isinstance(graph, Path)
    optimized = optimize_graph(graph)
    assert optimized == optimized_graph_file(graph) and optimized.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text()))
    no_noise = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    spoken = []
    for path, level in (
        (graph, onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL),
        (optimized, onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL),
    ):
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = level
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        assert len(session.get_outputs()) == 2
        voice = PiperVoice(session=session, config=config)
        chunks = list(
            voice.synthesize(
                "Austerlitz was fought in 1805, on a cold December morning.",
                syn_config=no_noise,
                include_alignments=True,
            )
        )
        spoken.append(
            (
                np.concatenate([c.audio_float_array for c in chunks]),
                [a for c in chunks for a in (c.phoneme_alignments or [])],
            )
        )
    assert np.array_equal(spoken[0][0], spoken[1][0]) and spoken[0][1] == spoken[1][1]
