"""What of a reply is spoken: actions, stage directions and markdown are shown, not spoken."""

from __future__ import annotations

import pytest

from chattr.turn.sentences import SentenceSplitter
from chattr.turn.spoken_text import SpeakMode, SpeechFilter, spoken_sentence

REPLY = (
    '*She leans on the rail. The wind pulls at her coat.* "Welcome aboard, stowaway!" '
    "(OOC: keep it light) She grins. **Truly** welcome. [The ship creaks.]\n"
    "# Orders\n- Scrub the deck.\n```\nprint('no')\n```\n"
    '*Then, quietly:* "Do not touch the engine."'
)


def spoken(text: str, mode: SpeakMode, step: int) -> list[str]:
    speech = SpeechFilter(mode)
    splitter = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(speech.feed(text[i : i + step]))
    out += splitter.feed(speech.flush()) + splitter.flush()
    return [s for s in (spoken_sentence(x) for x in out) if s]


@pytest.mark.parametrize("step", [1, 2, 7, 10_000])
def test_skip_actions_speaks_the_words_not_the_actions(step: int) -> None:
    assert spoken(REPLY, "skip_actions", step) == [
        '"Welcome aboard, stowaway!"',
        "She grins. Truly welcome.",  # "She grins." alone is short: merged with the next
        "Orders Scrub the deck.",
        '"Do not touch the engine."',
    ]


@pytest.mark.parametrize("step", [1, 3, 10_000])
def test_quotes_only_speaks_the_dialogue(step: int) -> None:
    assert spoken(REPLY, "quotes_only", step) == [
        '"Welcome aboard, stowaway!"',
        '"Do not touch the engine."',
    ]


@pytest.mark.parametrize("step", [1, 4, 10_000])
def test_all_speaks_everything_but_markdown_and_code(step: int) -> None:
    text = " ".join(spoken(REPLY, "all", step))
    assert "She leans on the rail." in text and "OOC: keep it light" in text
    assert "The ship creaks." in text and "Then, quietly:" in text
    for mark in ("*", "#", "```", "print", "- Scrub"):
        assert mark not in text


def test_quotes_inside_actions_are_not_dialogue() -> None:
    text = '*She mutters "never again" to herself.* "Fine, come in."'
    assert spoken(text, "quotes_only", 1) == ['"Fine, come in."']


def test_other_languages_quotes() -> None:
    text = "彼女は笑った。「ようこそ、私の船へ。」*手を振る* «Bienvenue à bord, mon ami.»"
    assert spoken(text, "quotes_only", 2) == [
        "「ようこそ、私の船へ。」",
        "«Bienvenue à bord, mon ami.»",
    ]


def test_a_reply_of_only_actions_says_nothing() -> None:
    assert spoken("*nods slowly* (pause) ...", "skip_actions", 3) == []
