"""When Piper says each word: its phoneme durations, matched back to the words of the text.

Piper's voices compute each phoneme's length in audio frames and throw it away; piper-tts can
expose it as a second output of the ONNX graph, patched in memory at load (`aligned_model`).
The phonemes of a text do not map one to one onto its words: espeak reads "1815" as three words,
runs "well… to" into one, and drops "—". So each word is phonemized alone and its phonemes are
matched against those spoken (`word_spans`); a phoneme said differently in context falls between
its matched neighbours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
from piper.const import BOS, EOS, PAD
from piper.voice import AudioChunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhonemeSpan:
    """A phoneme and the samples it spans in the whole speech, [start, end)."""

    phoneme: str
    start: int
    end: int


# Where set-up (`make setup`, the image) leaves the shipped voice's patched graph, so that a
# start on an empty data folder neither patches it nor loads the `onnx` package.
PREPARED_DIR = Path(sys.prefix) / "share" / "vocalizr" / "piper-aligned"


def _file_name(model_path: Path) -> str:
    stat = model_path.stat()
    return f"{model_path.stem}-{stat.st_size}-{stat.st_mtime_ns}.aligned.onnx"


def aligned_model_file(
    model_path: Path, cache_dir: Path, prepared_dir: Path = PREPARED_DIR
) -> Path | bytes | None:
    """The voice's graph patched for durations (`aligned_model`): the one set-up prepared, or a
    file in `cache_dir` written once per model file, or bytes where that folder cannot be
    written; None when there is nothing to patch. A session loaded from a file holds about
    60 MB less than one loaded from the bytes, and a later start patches nothing."""
    name = _file_name(model_path)
    for folder in (prepared_dir, cache_dir):
        if (folder / name).is_file():
            return folder / name
    cached = cache_dir / name
    model = aligned_model(model_path)
    if model is None:
        return None
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(model)
        partial.replace(cached)  # whole or not at all, whoever else writes it meanwhile
    except OSError as error:
        log.warning("piper: no cache for the word-timing graph (%s): it stays in memory", error)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return model
    return cached


def aligned_model(model_path: Path) -> bytes | None:
    """The voice's ONNX graph with its phoneme durations marked as an output, serialized; None
    when there is nothing to mark (a file patched already keeps its output; a graph without
    the durations tensor has no alignment)."""
    import onnx
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    try:
        add_alignment_output(model)
    except ValueError as error:
        log.info("piper voice %s not patched for word timing: %s", model_path.name, error)
        return None
    serialized: bytes = model.SerializeToString()
    return serialized


def chunk_spans(chunk: AudioChunk, offset: int) -> list[PhonemeSpan] | None:
    """The phonemes of one of Piper's sentences, placed after `offset` samples; None when the
    voice gave no alignment for it."""
    alignments = chunk.phoneme_alignments
    if not alignments:
        return None
    total = sum(alignment.num_samples for alignment in alignments)
    if total <= 0:
        return None
    # The durations add up to the audio's length; if a voice rounds otherwise, stretch them.
    scale = chunk.audio_float_array.size / total
    spans: list[PhonemeSpan] = []
    elapsed = 0
    for alignment in alignments:
        start = offset + round(elapsed * scale)
        elapsed += alignment.num_samples
        spans.append(PhonemeSpan(alignment.phoneme, start, offset + round(elapsed * scale)))
    return spans


# Stress marks: espeak stresses a word said alone that it leaves unstressed in a sentence.
STRESS = ("ˈ", "ˌ")


def sounding(phoneme: str) -> bool:
    """A phoneme that is part of a word: not a space, a stress mark, punctuation, or Piper's
    markers."""
    if phoneme in (" ", BOS, EOS, PAD, *STRESS) or not phoneme:
        return False
    return not unicodedata.category(phoneme[0]).startswith("P")


def word_spans(
    word_phonemes: Sequence[Iterable[str]], spans: Sequence[PhonemeSpan]
) -> list[tuple[int, int]] | None:
    """(start, end) in samples of each word, given each word's phonemes said alone and the
    phonemes spoken; None when none of them match."""
    heard = [span for span in spans if sounding(span.phoneme)]
    said = [
        (index, phoneme)
        for index, phonemes in enumerate(word_phonemes)
        for phoneme in phonemes
        if sounding(phoneme)
    ]
    if not heard or not said:
        return None
    matcher = SequenceMatcher(
        None, [phoneme for _, phoneme in said], [span.phoneme for span in heard], autojunk=False
    )
    anchors = [
        (block.a + k, block.b + k)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    if not anchors:
        return None
    # A phoneme that matched nothing sits between its matched neighbours, in proportion; the
    # ends of both sequences anchor the phonemes before the first match and after the last.
    said_at = [-1, *(a for a, _ in anchors), len(said)]
    heard_at = [-1, *(b for _, b in anchors), len(heard)]
    placed = np.interp(np.arange(len(said)), said_at, heard_at)
    where = np.clip(np.rint(placed).astype(int), 0, len(heard) - 1)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for position, (index, _) in enumerate(said):
        first.setdefault(index, int(where[position]))
        last[index] = int(where[position])
    times: list[tuple[int, int]] = []
    previous_end = heard[0].start
    for index in range(len(word_phonemes)):
        if index not in first:  # nothing sounding ("—", "&"): no time of its own
            times.append((previous_end, previous_end))
            continue
        end = max(heard[last[index]].end, previous_end)
        start = min(max(heard[first[index]].start, previous_end), end)
        times.append((start, end))
        previous_end = end
    return times
