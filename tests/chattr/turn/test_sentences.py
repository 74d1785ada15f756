"""Sentence cutting of a streamed reply."""

from __future__ import annotations

import pytest

from chattr.turn.sentences import SentenceSplitter, split_long, split_sentences


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


# --- every language ---------------------------------------------------------------------------

LANGUAGES = [
    (
        "zh",
        "你好。我是李白，唐朝的诗人。今天天气很好！你想聊什么？",
        ["你好。我是李白，唐朝的诗人。", "今天天气很好！", "你想聊什么？"],
    ),
    (
        "ja",
        "こんにちは。私は東京から来ました！「本当ですか？」と彼は言った。",
        ["こんにちは。", "私は東京から来ました！", "「本当ですか？」と彼は言った。"],
    ),
    (
        "hi",
        "नमस्ते। मेरा नाम राम है और मैं दिल्ली में रहता हूँ। आप कैसे हैं?",
        ["नमस्ते। मेरा नाम राम है और मैं दिल्ली में रहता हूँ।", "आप कैसे हैं?"],
    ),
    (
        "ar",
        "مرحبا بك يا صديقي، كيف حالك اليوم؟ أنا بخير، شكرا لك على السؤال.",
        ["مرحبا بك يا صديقي، كيف حالك اليوم؟", "أنا بخير، شكرا لك على السؤال."],
    ),
    (
        "ru",
        "Привет. Как у тебя дела сегодня? Хорошо, спасибо за вопрос.",
        ["Привет. Как у тебя дела сегодня?", "Хорошо, спасибо за вопрос."],
    ),
    (
        "ko",
        "안녕하세요. 저는 서울에서 왔어요. 만나서 반가워요!",
        ["안녕하세요.", "저는 서울에서 왔어요.", "만나서 반가워요!"],
    ),
    (
        "es",
        "Hola. ¿Qué tal estás hoy, amigo mío? Muy bien, gracias.",
        ["Hola. ¿Qué tal estás hoy, amigo mío?", "Muy bien, gracias."],
    ),
]


@pytest.mark.parametrize(("language", "text", "expected"), LANGUAGES)
@pytest.mark.parametrize("step", [1, 2, 5, 10_000])
def test_every_language_is_cut_at_its_own_marks(
    language: str, text: str, expected: list[str], step: int
) -> None:
    assert stream(text, step) == expected


def test_short_chinese_pieces_merge_with_the_next() -> None:
    # "好。" alone is one syllable: merged, without a space between Chinese sentences
    assert split_sentences("好。对。我明白你的意思了。") == ["好。对。我明白你的意思了。"]


def test_long_chinese_sentences_split_at_their_commas_by_spoken_length() -> None:
    sentence = "我们沿着河岸一直走到天黑，" * 10 + "终于到了。"
    pieces = split_long(sentence, 90)  # Chinese characters weigh three: 30 characters a piece
    assert len(pieces) > 3 and all(len(p) <= 30 for p in pieces)
    assert all(p.endswith("，") for p in pieces[:-1]) and "".join(pieces) == sentence


def test_arabic_comma_is_a_soft_break() -> None:
    sentence = "ذهبنا إلى السوق في الصباح الباكر، " * 8 + "ثم عدنا."
    pieces = split_long(sentence, 80)
    assert len(pieces) > 1 and all(p.endswith("،") for p in pieces[:-1])


# --- the first clause goes to speech early -----------------------------------------------------


def test_the_first_clause_is_emitted_as_soon_as_it_is_complete() -> None:
    splitter = SentenceSplitter(first_clause=True)
    text = "Well, I suppose the road north is long, but we can make it before nightfall. We rest."
    emitted_at: list[tuple[int, str]] = []
    words = text.split(" ")
    for index, word in enumerate(words):
        emitted_at += [(index, s) for s in splitter.feed(word + " ")]
    emitted_at += [(len(words), s) for s in splitter.flush()]
    # "Well," is one word: too short; the clause after "long," goes before the sentence ends
    assert emitted_at[0] == (7, "Well, I suppose the road north is long,")
    assert [s for _, s in emitted_at[1:]] == ["but we can make it before nightfall.", "We rest."]


def test_only_the_first_clause_is_cut_early() -> None:
    text = "Yes, my dear friend, I remember it well. Later, much later, we spoke of it, twice."
    assert stream_words(text) == [
        "Yes, my dear friend,",
        "I remember it well.",
        "Later, much later, we spoke of it, twice.",
    ]


def stream_words(text: str) -> list[str]:
    splitter = SentenceSplitter(first_clause=True)
    out: list[str] = []
    for word in text.split(" "):
        out += splitter.feed(word + " ")
    return out + splitter.flush()


def test_a_first_clause_is_not_cut_once_its_sentence_is_all_there() -> None:
    text = "Yes, my friend, I remember it well. Later we spoke of it again."
    assert split_sentences(text, first_clause=True)[0] == "Yes, my friend, I remember it well."


def test_a_first_chinese_clause_goes_early_too() -> None:
    splitter = SentenceSplitter(first_clause=True)
    out = []
    for char in "我的名字叫李白，是唐朝的诗人。":
        out += splitter.feed(char)
    assert out == ["我的名字叫李白，"]
    assert splitter.flush() == ["是唐朝的诗人。"]


def test_without_first_clause_the_whole_first_sentence_waits() -> None:
    assert split_sentences("Well, I suppose the road north is long, but fine.") == [
        "Well, I suppose the road north is long, but fine."
    ]
