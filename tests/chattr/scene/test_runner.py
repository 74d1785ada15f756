"""Scene messages in-process: the real ChatService, SceneRunner and fan-out, a chat model that
answers as whoever the prompt cues, vocalizr played through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import SCENE_KEY
from chattr.scene.runner import SceneRunner
from chattr.scene.state import SceneState
from chattr.turn.service import TurnFailed, TurnRejected

from ..fake_media import FakeVisualizr, FakeVocalizr, Transport, in_process_service
from .cued_model import CuedModel

SESSION = "scene-1"
BOTH = ["napoleon", "einstein"]


def runner(
    tmp_path: Path,
    model: CuedModel | None = None,
    vocalizr: FakeVocalizr | None = None,
    rolls: list[float] | None = None,
    through: Transport | None = None,
) -> SceneRunner:
    """A runner whose random source gives `rolls` in turn (then 0.99: nobody speaks up);
    `through` answers vocalizr's requests in its place."""
    pending = list(rolls or [])
    service = in_process_service(tmp_path, model or CuedModel())
    if vocalizr is not None:
        service.media = MediaFanout(
            vocalizr.client(through=through),
            None,
            store=MediaStore.under(tmp_path),
            public_url="http://chattr.test",
            options=FanoutOptions(),
        )
    return SceneRunner(service, max_replies=4, random=lambda: pending.pop(0) if pending else 0.99)


def voice_of(request: httpx.Request) -> str:
    return str(json.loads(request.content).get("voice", ""))


def say(
    scene: SceneRunner, message: str, characters: list[str] = BOTH, **options: object
) -> list[SceneState]:
    async def run() -> list[SceneState]:
        checked = scene.validate(message, characters, SESSION, **options)
        seen = []
        async for state in scene.run(checked):
            seen.append(state)
        return seen

    return asyncio.run(run())


def test_the_members_named_answer_first_in_the_order_named(tmp_path: Path) -> None:
    scene = runner(tmp_path)
    final = say(scene, "Albert, what do you make of Napoleon's maps?")[-1]
    assert final.done
    assert [r.character for r in final.replies] == ["einstein", "napoleon"]
    einstein, napoleon = final.replies
    assert einstein.text.startswith("Albert Einstein speaks.")
    # The second speaker heard the first, by name.
    assert "Albert Einstein: Albert Einstein speaks." in napoleon.text


def test_a_new_scene_opens_with_every_members_greeting(tmp_path: Path) -> None:
    scene = runner(tmp_path)
    states = say(scene, "Hello, Napoleon.")
    greetings = states[-1].greetings
    assert [g.character for g in greetings] == BOTH
    service = scene.service
    assert greetings[0].text == service.characters.get("napoleon").greeting
    kept = scene.transcript(SESSION)
    assert [(t.speaker, t.user) for t in kept[:2]] == [("napoleon", ""), ("einstein", "")]
    # The second message in the same scene does not greet again.
    assert say(scene, "And you, Albert?")[-1].greetings == []


def test_each_member_sees_the_whole_exchange_with_names(tmp_path: Path) -> None:
    model = CuedModel()
    scene = runner(tmp_path, model)
    say(scene, "Napoleon, tell me of Austerlitz.")
    say(scene, "Albert, was he right?")
    prompt = model.prompts[-1]
    chat = [(type(m).__name__, str(m.content)) for m in prompt if m.type != "system"]
    napoleon = scene.service.characters.get("napoleon")
    assert chat[0] == ("HumanMessage", f"Napoleon Bonaparte: {napoleon.greeting}")
    assert chat[1][0] == "AIMessage"  # Einstein's own greeting is his line
    assert ("HumanMessage", "User: Napoleon, tell me of Austerlitz.") in chat
    assert (
        "HumanMessage",
        "Napoleon Bonaparte: Napoleon Bonaparte speaks. I heard: User: "
        "Napoleon, tell me of Austerlitz.",
    ) in chat
    assert chat[-1] == ("HumanMessage", "User: Albert, was he right?")
    persona = str(prompt[0].content)
    assert "Einstein" in persona and "Napoleon Bonaparte (" in str(prompt[1].content)


def test_memory_keeps_who_said_what_in_the_order_spoken(tmp_path: Path) -> None:
    scene = runner(tmp_path)
    say(scene, "Albert and Napoleon, greet each other.")
    kept = scene.transcript(SESSION)[2:]
    assert [(t.speaker, t.user) for t in kept] == [
        ("einstein", "Albert and Napoleon, greet each other."),
        ("napoleon", ""),
    ]
    assert kept[0].assistant.startswith("Albert Einstein speaks.")
    # A one-character chat in the same session is another conversation.
    assert scene.service.memory.recent(SESSION, "napoleon") == []
    assert scene.service.memory.recent(SESSION, SCENE_KEY) == scene.transcript(SESSION)


def test_talkativeness_rolls_decide_who_speaks_up_unnamed(tmp_path: Path) -> None:
    # Nobody named: the shuffle takes one roll, then each member rolls against its
    # talkativeness (0.5): 0.2 speaks up, 0.7 does not.
    scene = runner(tmp_path, rolls=[0.0, 0.2, 0.7])
    final = say(scene, "What a storm tonight.")[-1]
    assert len(final.replies) == 1


def test_nobody_chosen_still_gets_one_reply(tmp_path: Path) -> None:
    scene = runner(tmp_path)  # every roll 0.99: nobody speaks up
    final = say(scene, "What a storm tonight.")[-1]
    assert len(final.replies) == 1


def test_list_strategy_and_a_named_speaker(tmp_path: Path) -> None:
    scene = runner(tmp_path)
    listed = say(scene, "Hello all.", ["einstein", "napoleon"], strategy="list")[-1]
    assert [r.character for r in listed.replies] == ["einstein", "napoleon"]
    forced = say(scene, "", ["einstein", "napoleon"], speaker="napoleon")[-1]
    assert [r.character for r in forced.replies] == ["napoleon"]


def test_manual_without_a_speaker_keeps_the_message_and_nobody_answers(tmp_path: Path) -> None:
    scene = runner(tmp_path)
    final = say(scene, "I will wait for you both.", strategy="manual")[-1]
    assert final.replies == [] and final.done
    assert scene.transcript(SESSION)[-1].user == "I will wait for you both."


@pytest.mark.parametrize(
    ("characters", "options", "named"),
    [
        (["napoleon"], {}, "names 1 character; a scene needs two or more"),
        ([], {}, "names no character; a scene needs two or more"),
        (["napoleon", "napoleon"], {}, "'napoleon' more than once"),
        (["napoleon", "nobody"], {}, "'characters': no character 'nobody'"),
        ("napoleon,einstein", {}, "'characters' must be a list"),
        (BOTH, {"speaker": "nobody"}, "'speaker' 'nobody' is not in the scene"),
        (BOTH, {"strategy": "loud"}, "'strategy' must be one of natural, list, pooled, manual"),
        (BOTH, {"muted": ["nobody"]}, "'muted' names 'nobody'"),
        (BOTH, {"media": "yes"}, "'media' must be true or false"),
    ],
)
def test_bad_requests_are_refused_naming_the_argument(
    tmp_path: Path, characters: object, options: dict[str, object], named: str
) -> None:
    scene = runner(tmp_path)
    with pytest.raises(TurnRejected, match=named.replace("(", r"\(")):
        scene.validate("Hello.", characters, SESSION, **options)


@pytest.mark.parametrize("session", ["", "s" * 129])
def test_a_session_id_empty_or_too_long_is_refused_naming_it(tmp_path: Path, session: str) -> None:
    with pytest.raises(TurnRejected, match=f"'session_id' is {len(session)} characters long"):
        runner(tmp_path).validate("Hello.", BOTH, session)


def test_a_member_whose_voice_fails_loses_its_media_only(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()

    def einstein_fails(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/speech" and voice_of(request) == "einstein":
            return httpx.Response(500, json={"error": "internal", "detail": "the voice broke"})
        return vocalizr(request)

    scene = runner(tmp_path, vocalizr=vocalizr, through=einstein_fails)
    final = say(scene, "Napoleon, then Albert: speak.")[-1]
    napoleon, einstein = final.replies
    assert napoleon.text and einstein.text
    assert napoleon.audio_url is not None and not napoleon.errors
    assert einstein.audio_url is None
    assert [e.service for e in einstein.errors] == ["vocalizr"]
    assert [e["service"] for e in final.to_api()["errors"]] == ["einstein: vocalizr"]


def test_a_member_whose_llm_call_fails_leaves_the_others_replies(tmp_path: Path) -> None:
    model = CuedModel(fail_for={"Albert Einstein"})
    scene = runner(tmp_path, model)
    final = say(scene, "Napoleon, then Albert: speak.")[-1]
    napoleon, einstein = final.replies
    assert napoleon.text and not einstein.text
    assert [e.service for e in einstein.errors] == ["llm"]
    with pytest.raises(TurnFailed):
        say(scene, "Albert alone: speak.", speaker="einstein")


def test_the_next_member_starts_while_the_last_ones_speech_is_made(tmp_path: Path) -> None:
    """Napoleon's speech is held until Einstein has text: a scene that waited for each
    member's media before the next member's words would never finish."""
    vocalizr = FakeVocalizr()
    einstein_has_text = asyncio.Event()

    async def napoleon_waits(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/speech" and voice_of(request) == "napoleon":
            await einstein_has_text.wait()
        return vocalizr(request)

    scene = runner(tmp_path, vocalizr=vocalizr, through=napoleon_waits)

    async def run() -> SceneState:
        checked = scene.validate("Napoleon, then Albert.", BOTH, SESSION)
        last = None
        async for state in scene.run(checked):
            if len(state.replies) == 2 and state.replies[1].text:
                einstein_has_text.set()
            last = state
        assert last is not None
        return last

    final = asyncio.run(asyncio.wait_for(run(), 30))
    assert all(r.audio_url for r in final.replies)


def test_a_scene_message_stopped_early_stops_every_reply_and_saves_none(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()
    held = asyncio.Event()  # never set: every clip is still being made when the caller leaves

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/speech":
            await held.wait()
        return vocalizr(request)

    scene = runner(tmp_path, vocalizr=vocalizr, through=slow)

    async def run() -> list[str]:
        checked = scene.validate("Napoleon, then Albert.", BOTH, SESSION)
        states = scene.run(checked)
        async for state in states:
            if len(state.replies) == 2 and state.replies[1].text:
                break
        await states.aclose()
        await asyncio.sleep(0)  # one step: a task cancelled but not yet finished shows here
        mine = asyncio.current_task()
        return [repr(t) for t in asyncio.all_tasks() if t is not mine and not t.done()]

    left = asyncio.run(run())
    assert left == []  # no reply, clip or join still running
    assert [t.user for t in scene.transcript(SESSION)] == ["", ""]  # the greetings only


def test_the_last_members_media_make_way_for_the_next_members_first_audio(
    tmp_path: Path,
) -> None:
    """Napoleon's first video waits while Einstein's first sentence waits for its speech: the
    next speaker's first audio does not queue behind the last one's media."""
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    calls: list[str] = []
    einstein_asked, einstein_released = asyncio.Event(), asyncio.Event()

    async def speech(request: httpx.Request) -> httpx.Response:
        voice = voice_of(request)
        if voice == "napoleon" and "napoleon speech" not in calls:  # his first sentence
            calls.append("napoleon speech")
            await einstein_asked.wait()
        elif voice == "einstein" and not einstein_asked.is_set():
            calls.append("einstein speech")
            einstein_asked.set()
            await einstein_released.wait()
            calls.append("einstein answered")
        return vocalizr(request)

    def video(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)
        calls.append(f"{asked['portrait']} video {asked['audio_url'].rsplit('/', 1)[1]}")
        return visualizr(request)

    service = in_process_service(tmp_path, CuedModel())
    service.media = MediaFanout(
        vocalizr.client(through=speech),
        visualizr.client(through=video),
        store=MediaStore.under(tmp_path),
        public_url="http://chattr.test",
        options=FanoutOptions(join=False),
    )
    scene = SceneRunner(service, max_replies=4)

    async def run() -> SceneState:
        checked = scene.validate("Napoleon, then Albert.", BOTH, SESSION)
        last = None
        async for state in scene.run(checked):
            # Einstein's first sentence is answered only once Napoleon's first audio is out:
            # a video of it not held back would have been asked for by then.
            first = state.replies[0].segments[:1] if state.replies else []
            if first and first[0].audio_url and einstein_asked.is_set():
                einstein_released.set()
            last = state
        assert last is not None
        return last

    final = asyncio.run(asyncio.wait_for(run(), 30))
    napoleon, einstein = final.replies
    assert napoleon.segments[0].audio_url and einstein.segments[0].audio_url
    first_video = f"napoleon video {napoleon.segments[0].audio_url.rsplit('/', 1)[1]}"
    assert calls.index("einstein answered") < calls.index(first_video), calls
