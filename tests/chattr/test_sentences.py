"""Sentence cutting of a streamed reply."""

from __future__ import annotations

import pytest

from chattr.sentences import SentenceSplitter, split_long, split_sentences


def stream(text: str, step: int) -> list[str]:
    splitter = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


CASES = [
    (
        "I met Dr. Watson at 3.14 p.m. on Baker Street. It was odd... truly odd! "
        "Then we talked for hours about everything.",
        [
            "I met Dr. Watson at 3.14 p.m. on Baker Street.",
            "It was odd... truly odd!",
            "Then we talked for hours about everything.",
        ],
    ),
    (
        '"Who goes there?" cried the sentry at the gate. The Emperor, e.g. me, answered him.',
        ['"Who goes there?" cried the sentry at the gate.', "The Emperor, e.g. me, answered him."],
    ),
    (
        "I was born in 1769 in Ajaccio, Corsica. In 1804 I crowned myself Emperor of the French.",
        [
            "I was born in 1769 in Ajaccio, Corsica.",
            "In 1804 I crowned myself Emperor of the French.",
        ],
    ),
    (
        "Yes. No. I think the whole of science is nothing more than refined everyday thinking.",
        ["Yes. No. I think the whole of science is nothing more than refined everyday thinking."],
    ),
    (
        "J. R. Smith wrote to me about the results today.",
        ["J. R. Smith wrote to me about the results today."],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
@pytest.mark.parametrize("step", [1, 3, 17, 10_000])
def test_splits_the_same_however_the_text_arrives(
    text: str, expected: list[str], step: int
) -> None:
    assert stream(text, step) == expected


def test_very_long_sentences_are_split_at_a_comma() -> None:
    sentence = ("and the army marched on through the rain, " * 12).strip() + "."
    pieces = split_long(sentence, 120)
    assert len(pieces) > 1
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces) == sentence


def test_a_run_on_without_end_marks_still_reaches_speech_before_the_end() -> None:
    splitter = SentenceSplitter(max_chars=100)
    emitted = splitter.feed("word " * 100)
    assert emitted and all(len(s) <= 100 for s in emitted)


def test_whole_text_and_nothing_lost() -> None:
    text = "First sentence is here. Second one follows it! Third? Yes, the third one is here."
    sentences = split_sentences(text)
    assert " ".join(sentences) == text
    assert sentences[0] == "First sentence is here."
