"""An emotion per sentence: tags out of the streamed text, the classifier for untagged sentences,
and whole turns whose media services hear each sentence's emotion."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from chatacter_common.emotions import expression_of
from chattr.characters.character_set import load_characters
from chattr.knowledge.embeddings import MiniLMEmbedder
from chattr.llm import make_chat_model
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import open_memory
from chattr.reply import Segment, TurnState
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer
from chattr.turn.emotions import (
    EmotionClassifier,
    EmotionTrack,
    TagReader,
    tag_mark,
    without_marks,
)
from chattr.turn.prompt import build_messages
from chattr.turn.sentences import split_sentences
from chattr.turn.service import ChatService
from chattr.web.handlers import media_messages

from ...conftest import CHARACTERS
from ..fake_media import FakeVisualizr, FakeVocalizr, Transport
from .emotion_samples import SAMPLES


def read(*deltas: str) -> str:
    reader = TagReader()
    return "".join(reader.feed(delta) for delta in deltas) + reader.flush()


# --- tags ---------------------------------------------------------------------------------------


def test_a_tag_split_across_deltas_becomes_its_mark() -> None:
    assert read("[jo", "y] Hello there.") == tag_mark("joy") + "Hello there."
    assert (
        read("Fine. [", "SAD", "ness", "]", " ", "Alas.")
        == "Fine. " + tag_mark("sadness") + "Alas."
    )


def test_an_unknown_tag_is_dropped_and_bracketed_notes_stay() -> None:
    assert read("Well. [ban", "ana] Yes.") == "Well. Yes."
    assert read("He [smiles warmly, then] nods.") == "He [smiles warmly, then] nods."
    assert read("A lone [") == "A lone ["  # held back, then given as text at the end


def test_a_tag_without_a_space_before_it_still_starts_a_sentence() -> None:
    marked = read("It is late.[joy]But we won!")
    assert [without_marks(s) for s in split_sentences(marked, min_chars=1)] == [
        "It is late.",
        "But we won!",
    ]


def test_the_splitter_starts_a_sentence_at_a_mark_and_keeps_it_there() -> None:
    marked = read("I crossed the Alps in winter. [joy] we won at Marengo in the spring.")
    sentences = split_sentences(marked)
    assert sentences == [
        "I crossed the Alps in winter.",
        tag_mark("joy") + "we won at Marengo in the spring.",
    ]


def test_a_tag_holds_until_the_next_and_a_sentence_takes_its_first_tag() -> None:
    track = EmotionTrack()
    first = track.next("Hello there.", guessed="curiosity")
    assert (first.emotion, first.previous) == ("curiosity", None)
    unsure = track.next("And so on.", guessed=None)
    assert (unsure.emotion, unsure.previous) == ("curiosity", "curiosity")  # unsure: it holds
    tagged = track.next(tag_mark("joy") + "Yes! " + tag_mark("fear") + "But wait.")
    assert (tagged.text, tagged.emotion) == ("Yes! But wait.", "joy")
    held = track.next("Who is there?", guessed="surprise")  # a tag outranks the classifier
    assert (held.emotion, held.previous) == ("fear", "joy")


def test_the_prompt_asks_for_the_tags() -> None:
    napoleon = load_characters(CHARACTERS).get("napoleon")
    system = str(build_messages(napoleon, "Hello")[0].content)
    assert "[joy]" in system and "[neutral]" in system and "[grief]" in system


# --- the classifier -----------------------------------------------------------------------------


def test_the_classifier_on_the_labelled_sentences(embedder: MiniLMEmbedder) -> None:
    classifier = EmotionClassifier(embedder)
    sure = [(classifier.label(text), label) for text, label in SAMPLES]
    guessed = [(got, want) for got, want in sure if got is not None]
    right = sum(got == want for got, want in guessed)
    same_face = sum(expression_of(got).shape == expression_of(want).shape for got, want in guessed)
    # Measured (bench/emotions.py): 39 of 58 sure, 38 of them right, all 39 the right face; 40 of
    # 58 right when an unsure guess becomes neutral (guessing neutral alone: 4 of 58).
    assert len(guessed) >= 35
    assert right >= 0.9 * len(guessed) and same_face >= 0.95 * len(guessed)
    effective = sum((got or "neutral") == want for got, want in sure)
    assert effective >= 36


def test_plain_facts_are_not_given_an_emotion(embedder: MiniLMEmbedder) -> None:
    classifier = EmotionClassifier(embedder)
    assert classifier.label("The train leaves from platform four at noon.") == "neutral"
    assert classifier.label("I am so happy today, what a wonderful surprise party!") in (
        "joy",
        "excitement",
    )


# --- whole turns --------------------------------------------------------------------------------

TAGGED_TOKENS = [
    "[jo",
    "y] I ",
    "won at ",
    "Marengo today! ",
    "[ban",
    "ana] The snow ",
    "was deep and cold. ",
    "[sad",
    "ness] ",
    "So many ",
    "men were lost there. ",
    "And it ",
    "still hurts me.",
]
SHOWN = (
    "I won at Marengo today! The snow was deep and cold. So many men were lost there. "
    "And it still hurts me."
)


def chat_service(
    tmp_path: Path,
    llm: FakeLLMServer,
    vocalizr: FakeVocalizr,
    visualizr: FakeVisualizr,
    emotions: EmotionClassifier | None = None,
    speech: Transport | None = None,
) -> ChatService:
    """`speech`: what answers the speech calls in vocalizr's place (it may delay them)."""
    media = MediaFanout(
        vocalizr.client(through=speech),
        visualizr.client(),
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        options=FanoutOptions(join=False),
    )
    return ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(None, max_turns=10, ttl_s=3600),
        retriever=None,
        llm=make_chat_model(Settings(llm_base_url=llm.url, llm_model="test-model")),
        media=media,
        emotions=emotions,
    )


async def last_state(chat: ChatService) -> TurnState:
    states = [state async for state in chat.run("Tell me of Marengo.", "napoleon", "session-1")]
    assert states[-1].done
    return states[-1]


def bodies(requests: list[httpx.Request], path: str) -> list[dict[str, Any]]:
    """The JSON bodies of the requests to `path`, in the order they came."""
    return [json.loads(r.content) for r in requests if r.url.path == path]


async def test_a_tagged_reply_shows_stores_and_speaks_no_tags_and_its_media_get_the_emotions(
    tmp_path: Path, llm: FakeLLMServer
) -> None:
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    chat = chat_service(tmp_path, llm, vocalizr, visualizr)
    llm.script(TAGGED_TOKENS)
    state = await last_state(chat)

    assert state.text == SHOWN
    assert chat.memory.recent("session-1", "napoleon")[-1].assistant == SHOWN
    result = state.to_api()
    assert [(s["text"], s["emotion"]) for s in result["segments"]] == [
        ("I won at Marengo today!", "joy"),
        ("The snow was deep and cold.", "joy"),  # the unknown tag changed nothing
        ("So many men were lost there.", "sadness"),
        ("And it still hurts me.", "sadness"),
    ]
    assert result["errors"] == []
    speech = bodies(vocalizr.requests, "/v1/speech")
    assert [b["text"] for b in speech] == [s["text"] for s in result["segments"]]
    assert [b["emotion"] for b in speech] == ["joy", "joy", "sadness", "sadness"]
    assert not any("[" in str(b["text"]) or "ana" in str(b["text"]) for b in speech)
    videos = bodies(visualizr.requests, "/v1/videos")
    # Videos are asked for as each sentence's speech is ready: match them by their audio.
    by_audio = {str(b["audio_url"]): b for b in videos}
    in_order = [by_audio[str(s["audio_url"])] for s in result["segments"]]
    assert [(b["expression"], b.get("previous_expression")) for b in in_order] == [
        ("joy", None),
        ("joy", "joy"),
        ("sadness", "joy"),
        ("sadness", "sadness"),
    ]


async def test_an_untagged_reply_gets_the_classifiers_emotions(
    tmp_path: Path, llm: FakeLLMServer, embedder: MiniLMEmbedder
) -> None:
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    chat = chat_service(tmp_path, llm, vocalizr, visualizr, EmotionClassifier(embedder))
    llm.script("Thank you so much for your kind help today. The road to Paris runs north.")
    state = await last_state(chat)
    assert [s.emotion for s in state.segments] == ["gratitude", "neutral"]
    assert [b["emotion"] for b in bodies(vocalizr.requests, "/v1/speech")] == [
        "gratitude",
        "neutral",
    ]


class HeldEmbedder:
    """MiniLM, except that embedding `held` waits until `release` is set: an emotion guess
    that takes as long as a test likes (a busy CPU, the embedder's lock taken by other turns)."""

    def __init__(self, embedder: MiniLMEmbedder, held: str) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        self.held = held
        self.reached = threading.Event()  # the held text came in
        self.release = threading.Event()

    def embed_query(self, text: str) -> list[float]:
        if text == self.held:
            self.reached.set()
            self.release.wait()
        return self.embedder.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)


async def test_a_slow_emotion_guess_holds_back_no_media_already_made(
    tmp_path: Path, llm: FakeLLMServer, embedder: MiniLMEmbedder
) -> None:
    """The turn's states go on while a later sentence's emotion is guessed: the first sentence's
    audio shows at once, not after that guess."""
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    held = HeldEmbedder(embedder, "The road to Paris runs north.")

    async def after_the_guess_began(request: httpx.Request) -> httpx.Response:
        # The first sentence's speech is ready only while the second's guess is under way.
        await asyncio.to_thread(held.reached.wait)
        return vocalizr(request)

    chat = chat_service(
        tmp_path, llm, vocalizr, visualizr, EmotionClassifier(held), after_the_guess_began
    )
    llm.script("Thank you so much for your kind help today. The road to Paris runs north.")
    states = chat.run("Tell me of Marengo.", "napoleon", "session-1")
    try:
        while True:
            # Bounded against a hang: with the guess held, only a turn that goes on gets here.
            state = await asyncio.wait_for(anext(states), timeout=30)
            if state.segments and state.segments[0].audio_url:
                break
        assert [s.text for s in state.segments] == ["Thank you so much for your kind help today."]
    finally:
        held.release.set()
    state = [state async for state in states][-1]
    assert state.done
    assert [s.emotion for s in state.segments] == ["gratitude", "neutral"]
    assert all(s.audio_url and s.video_url for s in state.segments)


def test_the_page_captions_each_sentence_with_its_emotion() -> None:
    state = TurnState("session-1", "napoleon", "Hi", media=True, done=True)
    state.segments = [
        Segment("We won!", emotion="joy", video_url="http://v/1.mp4"),
        Segment("Then we rested.", video_url="http://v/2.mp4"),
    ]
    first, second = media_messages(state)
    assert "Sentence 1 · joy</figcaption>" in first
    assert "Sentence 2</figcaption>" in second
