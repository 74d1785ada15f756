"""Replicas on loopback with real parts: HAProxy (Debian's) in front of two chattr, two vocalizr and
two visualizr processes; Redis; SeaweedFS's S3 server as every program's media store; the fake LLM.
Turns alternate between the chattr replicas and continue one conversation; a vocalizr replica
killed mid-turn costs no speech; a chattr replica killed during a turn sends the person's page,
reloaded, to the survivor with the conversation and its media; one killed in the middle of a scene
message loses that message alone, and is restarted on its port and data as a pod would be."""

from __future__ import annotations

import secrets
import shutil
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gradio_client import Client
from gradio_client.client import Job

from chattr.testing.fake_llm import FakeLLMServer
from chattr.web.browser_state import SESSION_KEY
from tests.object_store import BUCKET, SeaweedS3
from tests.serving import free_port

from ..browsers import chromium, chromium_args
from ..conftest import CHARACTERS, REPO
from .replicas import COOKIE, Front, Replica, Stack, answers, knowledge_ready, wait_until

pytestmark = [pytest.mark.slow]

OUTPUT = REPO / "test-output" / "replicas"

GRAVITY = "Light bends near the sun. Clocks run slow in a strong field. Both were measured."
MEMBERS = ["napoleon", "einstein"]
SERVICE_KEYS = {"vocalizr": secrets.token_urlsafe(24), "visualizr": secrets.token_urlsafe(24)}


@dataclass
class Replicas:
    chattr: Front
    vocalizr: Front
    visualizr: Front
    redis_prefix: str

    def client(self) -> Client:
        """A new client with no cookie: HAProxy picks its replica (round robin) and pins it."""
        return Client(self.chattr.url, verbose=False)


def store(s3: SeaweedS3, prefix: str, program: str) -> dict[str, str]:
    return {f"{program.upper()}_MEDIA_STORE": f"s3://{BUCKET}/{prefix}/{program}"}


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    s3_server: SeaweedS3,
    redis_url: str,
    fake_llm: FakeLLMServer,
) -> Iterator[Replicas]:
    folder = tmp_path_factory.mktemp("replicas")
    # Two characters, for the scenes (few: each replica indexes their knowledge at start-up, on
    # the same two cores).
    characters_dir = folder / "characters"
    for character in MEMBERS:
        shutil.copytree(CHARACTERS / character, characters_dir / character)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    stack = Stack(folder)
    fronts = {name: Front(name, free_port(), [], sticky=name == "chattr") for name in SERVICE_NAMES}
    aws = s3_server.environment()
    try:
        for name in ("a", "b"):
            vocalizr = stack.service(
                "vocalizr",
                f"vocalizr-{name}",
                {
                    **aws,
                    **store(s3_server, prefix, "vocalizr"),
                    "VOCALIZR_ENGINE": "piper",
                    "VOCALIZR_PIPER_THREADS": "1",
                    "VOCALIZR_UI": "false",
                    "VOCALIZR_STT_PRELOAD": "false",
                    "VOCALIZR_CHARACTERS_DIR": str(characters_dir),
                    "VOCALIZR_DATA_DIR": str(folder / f"vocalizr-{name}"),
                    "VOCALIZR_API_KEY": SERVICE_KEYS["vocalizr"],
                    # The files' URLs name the front: any replica serves them from the bucket.
                    "VOCALIZR_PUBLIC_URL": fronts["vocalizr"].url,
                },
            )
            fronts["vocalizr"].replicas.append(vocalizr)
            visualizr = stack.service(
                "visualizr",
                f"visualizr-{name}",
                {
                    **aws,
                    **store(s3_server, prefix, "visualizr"),
                    "VISUALIZR_ENGINE": "warp",
                    "VISUALIZR_UI": "false",
                    "VISUALIZR_CHARACTERS_DIR": str(characters_dir),
                    "VISUALIZR_DATA_DIR": str(folder / f"visualizr-{name}"),
                    "VISUALIZR_API_KEY": SERVICE_KEYS["visualizr"],
                    "VISUALIZR_PUBLIC_URL": fronts["visualizr"].url,
                    "VISUALIZR_VOCALIZR_URL": fronts["vocalizr"].url,
                    "VISUALIZR_VOCALIZR_API_KEY": SERVICE_KEYS["vocalizr"],
                },
            )
            fronts["visualizr"].replicas.append(visualizr)
        for name in ("a", "b"):
            chattr = stack.start(
                f"chattr-{name}",
                [str(Path(sys.executable).parent / "chattr"), "--port", "{port}"],
                {
                    **aws,
                    **store(s3_server, prefix, "chattr"),
                    "CHATTR_HOST": "127.0.0.1",
                    "CHATTR_LLM_BASE_URL": fake_llm.url,
                    "CHATTR_CHARACTERS_DIR": str(characters_dir),
                    # Each replica its own Qdrant Edge folder: no Qdrant server exists here. The
                    # characters' knowledge is the same in both; long-term memory is per replica
                    # in this test (the chart refuses that in production).
                    "CHATTR_DATA_DIR": str(folder / f"chattr-{name}"),
                    "CHATTR_REDIS_URL": redis_url,
                    "CHATTR_REDIS_PREFIX": prefix,
                    "CHATTR_VOCALIZR_URL": fronts["vocalizr"].url,
                    "CHATTR_VISUALIZR_URL": fronts["visualizr"].url,
                    "CHATTR_VOCALIZR_API_KEY": SERVICE_KEYS["vocalizr"],
                    "CHATTR_VISUALIZR_API_KEY": SERVICE_KEYS["visualizr"],
                    "CHATTR_TURNS_PER_MINUTE": "0",
                    "GRADIO_ANALYTICS_ENABLED": "False",
                },
            )
            chattr.name = name  # the cookie's value: which replica a browser is on
            fronts["chattr"].replicas.append(chattr)
        everything = [r for front in fronts.values() for r in front.replicas]
        ready = {r.log.stem: _check(r.url, r.log.stem) for r in everything}
        wait_until(ready, everything, timeout_s=240)
        stack.haproxy(list(fronts.values()))
        fronts_up = {name: _check(front.url, name) for name, front in fronts.items()}
        wait_until(fronts_up, stack.started, timeout_s=30)
        yield Replicas(fronts["chattr"], fronts["vocalizr"], fronts["visualizr"], prefix)
    finally:
        stack.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


SERVICE_NAMES = ("chattr", "vocalizr", "visualizr")


def _check(url: str, name: str) -> Any:
    if name.startswith("chattr"):
        return lambda: knowledge_ready(url)
    return lambda: answers(f"{url}/readyz")


def turn(client: Client, message: str, session: str, on_partial: Any = None) -> dict[str, Any]:
    job = client.submit(
        message=message, character="einstein", session_id=session, media=True, api_name="/chat"
    )
    for partial in job:
        if on_partial is not None and partial.get("text"):
            on_partial()
            on_partial = None
    result: dict[str, Any] = job.result()
    return result


def scene(client: Client, message: str, session: str, **options: Any) -> Job:
    """A scene message of both members (every member in order, unless `options` say else)."""
    arguments = {"strategy": "list", "speaker": "", **options}
    return client.submit(
        message=message,
        characters=MEMBERS,
        session_id=session,
        media=True,
        api_name="/scene",
        **arguments,
    )


def loads(url: str, replica: str) -> int:
    """The status of a media URL fetched through the front, pinned to one chattr replica."""
    return httpx.get(url, cookies={COOKIE: replica}, timeout=30).status_code


def test_a_scene_started_on_one_replica_goes_on_on_the_other(
    replicas: Replicas, llm: FakeLLMServer
) -> None:
    first, second = replicas.client(), replicas.client()
    assert sorted([first.cookies[COOKIE], second.cookies[COOKIE]]) == ["a", "b"]
    llm.script("Austerlitz was my finest day.", "Light keeps its speed, and so do I.")
    one = scene(first, "Tell me something true.", "").result(timeout=120)
    asked = len(llm.requests)
    llm.script("The physicist is right about light, if about nothing else.")
    two = scene(
        second, "Napoleon, do you agree?", one["session_id"], strategy="manual", speaker="napoleon"
    ).result(timeout=120)
    assert one["greetings"] and not two["greetings"]  # the same scene, not a new one
    assert [r["character"] for r in one["replies"] + two["replies"]] == [*MEMBERS, "napoleon"]
    # The other replica's member sees the whole exchange, each line named: it is in Redis.
    [seen] = llm.requests[asked:]
    said = " ".join(str(m["content"]) for m in seen["messages"])
    assert "Austerlitz was my finest day." in said and "Light keeps its speed" in said
    for result in (one, two):
        assert result["errors"] == []
        for reply in result["replies"]:
            assert reply["errors"] == [] and reply["audio_url"] and reply["video_url"]
            for url in (reply["audio_url"], reply["video_url"]):
                assert [loads(url, name) for name in ("a", "b")] == [200, 200], url


def test_turns_alternate_between_replicas_and_a_dead_vocalizr_costs_no_speech(
    replicas: Replicas, llm: FakeLLMServer
) -> None:
    session = uuid.uuid4().hex
    first, second = replicas.client(), replicas.client()
    answered_by = [first.cookies[COOKIE], second.cookies[COOKIE]]
    assert sorted(answered_by) == ["a", "b"]  # new clients alternate between the replicas

    llm.script("Nice to meet you, Ada.")
    one = turn(first, "My name is Ada.", session)
    # The other replica continues the conversation: the memory is in the shared Redis.
    two = turn(second, "What is my name?", session)
    assert two["text"].startswith("Your name is Ada")
    for result in (one, two):
        assert result["errors"] == [] and result["video_url"] and result["audio_url"]
        for url in (result["video_url"], result["audio_url"]):
            assert [loads(url, name) for name in ("a", "b")] == [200, 200]

    # vocalizr a dies once the reply starts streaming: its speech goes through vocalizr b.
    llm.script(GRAVITY)
    llm.state.tokens_per_s = 8
    try:
        three = turn(
            first, "Tell me about gravity.", session, replicas.vocalizr.replica("vocalizr-a").kill
        )
    finally:
        llm.state.tokens_per_s = 0
    assert three["errors"] == []
    assert " ".join(s["text"] for s in three["segments"]) == GRAVITY
    assert all(s["audio_url"] and s["video_url"] for s in three["segments"])
    assert three["audio_url"] and loads(three["audio_url"], "b") == 200
    # What the dead replica made earlier is still served, from the bucket, by the survivor.
    earlier = [s["audio_url"] for s in one["segments"]]
    assert earlier and all(httpx.get(url, timeout=30).status_code == 200 for url in earlier)


def test_a_chattr_replica_killed_mid_scene_message_loses_only_that_message(
    replicas: Replicas, llm: FakeLLMServer
) -> None:
    first = replicas.client()
    doomed = replicas.chattr.replica(first.cookies[COOKIE])
    llm.script("France first.", "Physics first.")
    one = scene(first, "What comes first?", "").result(timeout=120)
    assert one["errors"] == [] and all(r["video_url"] for r in one["replies"])

    # The next message's second reply streams slowly; its replica dies in the middle of it.
    llm.script("I stand by it.", "Let me explain at length why time itself comes before France.")
    llm.state.tokens_per_s = 2
    try:
        job = scene(first, "Do you both stand by that?", one["session_id"])
        wait_until({"second reply": lambda: _second_reply_started(job)}, [doomed], timeout_s=60)
        doomed.kill()
        with pytest.raises(CancelledError):  # how gradio_client ends a job whose server died
            job.result(timeout=60)
    finally:
        llm.state.tokens_per_s = 0

    # A new client lands on the survivor and the scene goes on there, as it was before the
    # lost message: nothing of that message was kept, everything of the one before was.
    try:
        assert not _front_sends_to(replicas, doomed)
        second = replicas.client()
        assert second.cookies[COOKIE] != doomed.name
        llm.script("As I said, physics.")
        asked = len(llm.requests)
        three = scene(
            second, "Einstein?", one["session_id"], strategy="manual", speaker="einstein"
        ).result(timeout=120)
        assert not three["greetings"] and three["errors"] == []
        assert [r["character"] for r in three["replies"]] == ["einstein"]
        [seen] = llm.requests[asked:]
        said = " ".join(str(m["content"]) for m in seen["messages"])
        assert "France first." in said and "Physics first." in said
        assert "stand by" not in said
        survivor = second.cookies[COOKIE]
        for reply in one["replies"]:
            for url in (reply["audio_url"], reply["video_url"]):
                assert loads(url, survivor) == 200, url
    finally:  # back to two replicas for the tests after this one
        doomed.restart()
        wait_until({doomed.name: lambda: knowledge_ready(doomed.url)}, [doomed], timeout_s=240)
        wait_until({"front": lambda: _front_sends_to(replicas, doomed)}, [doomed], timeout_s=30)


def _front_sends_to(replicas: Replicas, replica: Replica) -> bool:
    """HAProxy honours a cookie naming this replica: it is up there (one that is down is
    redispatched, and the answer sets the cookie anew)."""
    answer = httpx.get(f"{replicas.chattr.url}/healthz", cookies={COOKIE: replica.name}, timeout=5)
    return answer.status_code == 200 and COOKIE not in answer.cookies


def _second_reply_started(job: Job) -> bool:
    outputs = job.outputs()
    replies = outputs[-1]["replies"] if outputs else []
    return len(replies) == 2 and bool(replies[1]["text"])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium(),
            headless=True,
            args=chromium_args(),
        )
        yield context
        context.close()


def replica_of(page: Any) -> str:
    """The chattr replica HAProxy keeps this browser on (its cookie)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return str(cookies[COOKIE])


def send(page: Any, message: str) -> None:
    box = page.get_by_label("Your message")
    box.fill(message)
    box.press("Enter")


CHAT = "#chattr-chat"


def opened(page: Any) -> None:
    """Wait for the page's load event: the conversation id is then in the browser's storage."""
    page.locator(f"{CHAT} .message").first.wait_for(timeout=30_000)  # the greeting
    page.wait_for_function(f"() => localStorage.getItem('{SESSION_KEY}')", timeout=30_000)


@pytest.mark.browser
def test_a_chattr_replica_killed_during_a_turn_loses_only_that_turn(
    replicas: Replicas, llm: FakeLLMServer, browser: Any
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.goto(replicas.chattr.url, wait_until="load")
    opened(page)
    first = replica_of(page)

    llm.script("Nice to meet you, Grace.")
    send(page, "My name is Grace.")
    page.get_by_text("Nice to meet you, Grace.").first.wait_for(timeout=30_000)
    whole = page.locator(f"{CHAT} figure:has(figcaption:text-is('The whole reply')) video")
    whole.wait_for(timeout=90_000)
    made = whole.get_attribute("src")

    # The next reply streams slowly; its replica dies as its first words show.
    llm.script("Let me tell you a long story about trains, clocks and light, which took years.")
    llm.state.tokens_per_s = 2
    try:
        send(page, "Tell me a long story.")
        page.get_by_text("Let me tell").first.wait_for(timeout=30_000)
        replicas.chattr.replica(first).kill()
        # Gradio says so at once; the unfinished reply leaves the chat.
        page.get_by_text("Connection to the server was lost").first.wait_for(timeout=15_000)
        page.screenshot(path=str(OUTPUT / "replica-killed.png"))
    finally:
        llm.state.tokens_per_s = 0

    # Reloaded, the page is on the survivor: the earlier turn and its media are there.
    page.reload(wait_until="load")
    page.get_by_text("Nice to meet you, Grace.").first.wait_for(timeout=30_000)
    assert replica_of(page) != first
    assert page.get_by_text("Tell me a long story.").count() == 0  # the lost turn only
    assert whole.get_attribute("src") == made
    page.wait_for_function(
        f"""() => {{ const v = document.querySelector("{CHAT} video");
                    return v && v.readyState >= 1 && !v.error; }}""",
        timeout=30_000,
    )
    # And the conversation continues there, from the shared memory.
    send(page, "What is my name?")
    page.get_by_text("Your name is Grace").first.wait_for(timeout=30_000)
    page.screenshot(path=str(OUTPUT / "continued.png"))
