"""The fan-out against a real vocalizr (Piper, served in a thread): each reply's first sentence
asks to go first (`priority: first`), its others do not, and vocalizr stops another reply's later
sentence it is synthesizing for it, then makes that one too."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattr.media.clients import ClientOptions, VocalizrClient
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from tests.vocalizr.support import Server, serve
from vocalizr.settings import Settings

pytestmark = pytest.mark.slow

# Piper takes a good part of a second over this on an idle core: long enough to be caught running.
LONG = (
    "The old sailor walked along the harbour every morning and counted the boats one by one, "
    "and he knew each of them by the colour of its sail and the sound of its rigging."
)
WAIT_S = 60.0  # a bound for a broken service, never reached when it works


class Recorded(httpx.AsyncBaseTransport):
    """httpx's own transport, keeping each speech request's JSON body."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.speech: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/speech":
            self.speech.append(json.loads(request.content))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def vocalizr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("vocalizr")
    settings = Settings(
        engine="piper",
        characters_dir=folder / "none",
        data_dir=folder / "data",
        stt_engine="none",
        ui=False,
    )
    with serve(settings) as server:
        yield server


def preemptions(vocalizr: Server) -> float:
    text = httpx.get(f"{vocalizr.url}/metrics").text
    found = re.search(r'^vocalizr_preemptions_total\{engine="piper"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def synthesis_running(vocalizr: Server) -> None:
    """Until vocalizr runs a synthesis it can stop (its queue's own state)."""
    jobs = vocalizr.app.state.service.jobs
    async with asyncio.timeout(WAIT_S):
        while True:
            for job in jobs.running:
                if job.stop is not None and await asyncio.to_thread(job.stop.stoppable.wait, 1.0):
                    return
            await asyncio.sleep(0.001)  # until the request has reached a worker


async def test_a_first_sentence_stops_another_replys_later_one_and_both_are_spoken(
    vocalizr: Server, tmp_path: Path
) -> None:
    recorded = Recorded()
    fanout = MediaFanout(
        VocalizrClient(vocalizr.url, ClientOptions(), transport=recorded),
        None,
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        options=FanoutOptions(join=False),
    )
    counted = preemptions(vocalizr)
    earlier = fanout.start("napoleon", "default", "en")
    earlier.add("Austerlitz.")
    async for _ in earlier.updates():  # until its first sentence has its speech
        if earlier.media.segments[0].audio_url:
            break
    earlier.add(LONG)
    await synthesis_running(vocalizr)  # the earlier reply's second sentence, alone
    later = fanout.start("einstein", "default", "en")
    later.add("Imagination is more important than knowledge.")
    later.add("Knowledge is limited.")
    for job in (earlier, later):
        async for _ in job.updates():
            pass
    await fanout.aclose()

    for job in (earlier, later):
        assert job.media.issues == []
        assert all(segment.audio_url and segment.words for segment in job.media.segments)
    asked = {body["text"]: body.get("priority") for body in recorded.speech}
    assert asked == {
        "Austerlitz.": "first",
        LONG: None,
        "Imagination is more important than knowledge.": "first",
        "Knowledge is limited.": None,
    }
    assert [w.word for w in earlier.media.segments[1].words] == LONG.split()
    assert preemptions(vocalizr) == counted + 1
