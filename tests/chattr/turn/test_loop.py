"""The turn loop in-process, over real parts: the ChatService with a scripted chat model, the real
gate (rate limits, turn slots, Hugging Face sign-in), the person's data on disk, vocalizr played
through httpx.MockTransport; requests are Starlette's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from starlette.requests import Request

from chattr.access.gate import Gate
from chattr.access.hf_signin import HfSignIn, SignInRequired
from chattr.access.rate_limits import FairShare, InProcessRateLimiter, LimitReached
from chattr.memory import Turn
from chattr.refusal import Refusal
from chattr.reply import TurnState
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import BadSession, PersonalData
from chattr.turn.service import TurnFailed, TurnRejected

from ..fake_media import FakeVocalizr, in_process_service

REPLY = "I crossed the Alps in 1800. The snow was deep. We won at Marengo."
SESSION = "session-1"


class FailsAtOnce(GenericFakeChatModel):
    """A model server that is gone: the stream fails before its first word."""

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        raise ConnectionError("the model server went away")
        yield  # a generator, as the real stream is


def model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)] * 10))


def request(address: str = "198.51.100.7") -> Request:
    """A request from `address`, as Starlette hands one to Gradio."""
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("chattr.test", 80),
        "path": "/",
        "root_path": "",
        "headers": [(b"host", b"chattr.test")],
        "client": (address, 40000),
    }
    return Request(scope)


def make_loop(
    tmp_path: Path,
    *,
    llm: GenericFakeChatModel | None = None,
    vocalizr: FakeVocalizr | None = None,
    turns_per_minute: int = 0,
    turns_per_client: int = 0,
    sign_in: HfSignIn | None = None,
    shown_as: type[Exception] | None = None,
) -> TurnLoop:
    service = in_process_service(tmp_path, llm or model(), vocalizr)
    gate = Gate(
        turns=InProcessRateLimiter(turns_per_minute, 60.0) if turns_per_minute else None,
        imports=None,
        fair_share=FairShare(4, turns_per_client, 8),
        sign_in=sign_in,
    )
    return TurnLoop(service, gate=gate, personal=PersonalData(service, tmp_path), shown_as=shown_as)


async def run_turn(
    loop: TurnLoop,
    message: str = "Hello.",
    *,
    address: str = "198.51.100.7",
    session: str = SESSION,
    media: bool = False,
) -> list[TurnState]:
    async with loop.turn(request(address), message, "napoleon", session, media=media) as turn:
        return [state async for state in turn]


async def test_a_turn_streams_to_done_and_its_media_are_noted_for_forget(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, vocalizr=FakeVocalizr())
    states = await run_turn(loop, media=True)
    last = states[-1]
    assert last.done and last.text == REPLY and len(states) > 2
    assert last.audio_url is not None and last.audio_url.startswith("http://chattr.test/media/")
    assert [t.user for t in loop.service.memory.recent(SESSION, "napoleon")] == ["Hello."]
    assert loop.personal.export(SESSION)["media"] == [last.audio_url]
    assert loop.personal.forget(SESSION).media == 1
    assert loop.gate.fair_share.running == 0


async def test_a_request_that_cannot_be_answered_costs_no_rate_limit_hit(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, turns_per_minute=1)
    with pytest.raises(TurnRejected, match="The message is empty"):
        await run_turn(loop, "   ")
    assert (await run_turn(loop))[-1].done  # the one turn a minute is still there
    with pytest.raises(LimitReached, match=r"at most 1 a minute .*try again in \d+ s") as refused:
        await run_turn(loop, "Again.")
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 50
    assert len(loop.service.memory.recent(SESSION, "napoleon")) == 1  # the refused one never ran


async def test_a_turn_holds_its_slot_until_its_block_ends(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, turns_per_client=1)
    async with loop.turn(request(), "Hello.", "napoleon", SESSION, media=False) as first:
        assert loop.gate.fair_share.running == 1
        with pytest.raises(LimitReached, match="1 replies in progress or waiting"):
            await run_turn(loop, "Me too.")
        with pytest.raises(LimitReached, match="1 replies in progress"):
            await run_turn(loop, "From elsewhere.", address="198.51.100.8")  # the same session
        other = await run_turn(loop, address="198.51.100.8", session="session-2")
        assert other[-1].done  # another client is not held up
        assert [s async for s in first][-1].done
    assert loop.gate.fair_share.running == 0
    assert (await run_turn(loop, "Now?"))[-1].done


async def test_leaving_a_turn_early_stops_it_and_frees_its_slot(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()
    loop = make_loop(tmp_path, vocalizr=vocalizr)
    async with loop.turn(request(), "Hello.", "napoleon", SESSION, media=True) as turn:
        async for state in turn:
            assert not state.done
            break  # as a barge-in or a closed page does
    assert turn.state is not None and not turn.done
    assert loop.gate.fair_share.running == 0
    assert loop.service.memory.recent(SESSION, "napoleon") == []  # nothing half-said is kept
    assert not list((tmp_path / "media").glob("*"))  # no joined reply was made


async def test_a_failing_model_is_a_refusal_and_frees_the_slot(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, llm=FailsAtOnce(messages=iter([])))
    with pytest.raises(TurnFailed, match="ConnectionError: the model server went away"):
        await run_turn(loop)
    assert loop.gate.fair_share.running == 0


async def test_sign_in_is_asked_for_before_any_work(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []

    def hub(sent: httpx.Request) -> httpx.Response:
        asked.append(sent)
        return httpx.Response(401, json={"error": "Invalid credentials"})

    sign_in = HfSignIn("http://hub.test", transport=httpx.MockTransport(hub))
    loop = make_loop(tmp_path, sign_in=sign_in)
    with pytest.raises(SignInRequired, match="Sign in with Hugging Face first"):
        await run_turn(loop)
    assert asked == []  # no token sent, so the Hub was not asked either
    assert loop.service.memory.recent(SESSION, "napoleon") == []


@pytest.mark.parametrize(
    "refusal",
    [
        LimitReached("Too many messages: at most 3 a minute; try again in 20 s.", 20.0),
        SignInRequired(),
        TurnRejected("The message is empty: type something to say to the character."),
        TurnFailed("The language model failed: ConnectionError: gone"),
        BadSession("A session id (1–128 characters) is required."),
    ],
    ids=lambda refusal: type(refusal).__name__,
)
def test_every_refusal_reaches_the_person_in_its_own_words(
    tmp_path: Path, refusal: Refusal
) -> None:
    loop = make_loop(tmp_path, shown_as=gr.Error)
    with pytest.raises(gr.Error) as shown, loop.refusals_shown():
        raise refusal
    assert shown.value.message == str(refusal) and shown.value.__cause__ is refusal
    # Without an edge's error, the refusal itself goes up; anything else is never dressed up.
    with pytest.raises(type(refusal)), make_loop(tmp_path).refusals_shown():
        raise refusal
    with pytest.raises(KeyError), loop.refusals_shown():
        raise KeyError("a bug, not a refusal")


async def test_a_refused_turn_reaches_the_page_as_its_error(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, turns_per_minute=1, shown_as=gr.Error)
    await run_turn(loop)
    with pytest.raises(gr.Error) as shown:
        await run_turn(loop)
    assert "Too many messages: at most 1 a minute" in shown.value.message
    with pytest.raises(gr.Error, match="no character 'nobody'"):
        async with loop.turn(request(), "Hello.", "nobody", SESSION, media=False):
            pass


async def test_the_heard_part_of_an_interrupted_reply_is_what_memory_keeps(
    tmp_path: Path,
) -> None:
    loop = make_loop(tmp_path)
    await run_turn(loop)  # the whole reply went into memory
    loop.keep_heard(SESSION, "napoleon", "Hello.", "I crossed the Alps", replaces_reply=True)
    kept = loop.service.memory.recent(SESSION, "napoleon")
    assert [(t.user, t.assistant, t.interrupted) for t in kept] == [
        ("Hello.", "I crossed the Alps", True)
    ]
    # Stopped before it was remembered (or before a word was heard): added, not replacing.
    loop.keep_heard(SESSION, "napoleon", "Tell me more.", "", replaces_reply=False)
    kept = loop.service.memory.recent(SESSION, "napoleon")
    assert kept[-1] == Turn("Tell me more.", "…", interrupted=True, at=kept[-1].at)
    assert len(kept) == 2


def test_media_urls_start_at_the_public_address_else_where_the_request_came(
    tmp_path: Path,
) -> None:
    loop = make_loop(tmp_path)
    assert loop.base_url(request()) == "http://chattr.test"
    loop.public_url = "https://chattr.example.org"
    assert loop.base_url(request()) == "https://chattr.example.org"
