"""What a scene's memory keeps of replies the person talked over (`SceneLoop.keep_heard`): the
real SceneLoop over the in-process memory."""

from __future__ import annotations

from pathlib import Path

from chattr.access.gate import Gate
from chattr.memory import SCENE_KEY, Turn
from chattr.reply import TurnState
from chattr.scene.loop import SceneLoop, lines_remembered
from chattr.scene.runner import SceneRunner
from chattr.scene.state import SceneState
from chattr.settings import Settings
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData, open_media_index

from ..fake_media import in_process_service
from .cued_model import CuedModel

SESSION = "scene-heard"


def scene_loop(tmp_path: Path) -> SceneLoop:
    service = in_process_service(tmp_path, CuedModel())
    settings = Settings(llm_base_url="http://127.0.0.1:9", data_dir=tmp_path, redis_url=None)
    personal = PersonalData(
        service, tmp_path, open_media_index(tmp_path, None, prefix="t", retention_s=60)
    )
    turns = TurnLoop(service, gate=Gate.from_settings(settings), personal=personal)
    return SceneLoop(turns, SceneRunner(service))


def test_what_was_heard_replaces_the_lines_remembered_keeping_their_times(tmp_path: Path) -> None:
    loop = scene_loop(tmp_path)
    memory = loop.runner.service.memory
    greeting = Turn("", "Welcome.", speaker="napoleon")
    said = Turn(
        "What next?", "To Moscow. In winter.", at=10.0, media=("n.mp4",), speaker="napoleon"
    )
    answered = Turn("", "Wait. Think first.", at=11.0, speaker="einstein")
    for turn in (greeting, said, answered):
        memory.append(SESSION, SCENE_KEY, turn)

    heard = [("napoleon", "To Moscow. In winter."), ("einstein", "Wait.")]
    loop.keep_heard(SESSION, "What next?", heard, replaces=2)
    kept = memory.recent(SESSION, SCENE_KEY)
    assert kept[0] == greeting
    assert [(t.user, t.assistant, t.speaker, t.interrupted) for t in kept[1:]] == [
        ("What next?", "To Moscow. In winter.", "napoleon", False),
        ("", "Wait.", "einstein", True),
    ]
    assert (kept[1].at, kept[1].media, kept[2].at) == (10.0, ("n.mp4",), 11.0)


def test_a_message_stopped_before_anyone_spoke_is_still_said(tmp_path: Path) -> None:
    loop = scene_loop(tmp_path)
    memory = loop.runner.service.memory
    loop.keep_heard(SESSION, "Hello?", [], replaces=0)
    loop.keep_heard(SESSION, "Anyone?", [("einstein", "")], replaces=0)
    kept = memory.recent(SESSION, SCENE_KEY)
    assert [(t.user, t.assistant, t.speaker, t.interrupted) for t in kept] == [
        ("Hello?", "", "", False),
        ("Anyone?", "…", "einstein", True),
    ]


def test_the_lines_a_finished_message_left_are_counted_as_the_runner_keeps_them() -> None:
    state = SceneState("s", ("napoleon", "einstein"), "Hi")
    assert lines_remembered(state) == 1  # nobody answered: the message alone
    state.replies = [
        TurnState("s", "napoleon", "Hi", text="Yes."),
        TurnState("s", "einstein", "Hi"),
    ]
    assert lines_remembered(state) == 1
    state.replies[1].text = "No."
    assert lines_remembered(state) == 2
    assert lines_remembered(SceneState("s", ("napoleon", "einstein"), "")) == 0
