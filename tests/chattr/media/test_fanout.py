"""The media clients and the fan-out against services played in-process (httpx.MockTransport):
what a reply gets, and every failure an entry naming the service, in milliseconds."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Callable, Collection, Iterable
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from chatacter_common.first_speech import FirstSpeechMarker
from chattr.media.clients import ClientOptions, ServiceError, VisualizrClient
from chattr.media.fanout import STILL_STARTING, FanoutOptions, MediaFanout
from chattr.media.store import JOINED_NAME, MediaStore
from chattr.reply import ReplyMedia

from ..fake_media import (
    FAST,
    VISUALIZR,
    VOCALIZR,
    FakeVisualizr,
    FakeVocalizr,
    html_page,
    refused,
    truncated,
)


def fanout(
    tmp_path: Path,
    vocalizr: FakeVocalizr | None,
    visualizr: FakeVisualizr | None = None,
    *,
    join: bool = True,
    wait_started: Callable[[float], Collection[str]] | None = None,
    relay: frozenset[str] = frozenset(),
    startup_wait_s: float = 0.3,
) -> MediaFanout:
    return MediaFanout(
        vocalizr.client() if vocalizr else None,
        visualizr.client() if visualizr else None,
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        # Joining videos needs real MP4s (tests/chattr/media/test_joining.py); audio is joined.
        options=FanoutOptions(join=join, startup_wait_s=startup_wait_s),
        wait_started=wait_started,
        relay=relay,
    )


async def media_of(media: MediaFanout, sentences: Iterable[str]) -> ReplyMedia:
    """The sentences through one job; its media once every task has settled."""
    job = media.start("napoleon", "napoleon", "en", base_url="http://page.test")
    for sentence in sentences:
        job.add(sentence)
    async for _ in job.updates():
        pass
    await media.aclose()
    return job.media


def issues(media: ReplyMedia) -> list[tuple[str, str]]:
    return [(issue.service, issue.detail) for issue in media.issues]


async def test_each_sentence_gets_its_speech_and_the_reply_its_joined_audio(
    tmp_path: Path,
) -> None:
    vocalizr = FakeVocalizr()
    media = await media_of(fanout(tmp_path, vocalizr), ["Vive la France.", "Two words."])
    assert issues(media) == []
    assert [s.text for s in media.segments] == ["Vive la France.", "Two words."]
    assert all(s.audio_url and s.audio_url.startswith(f"{VOCALIZR}/files/") for s in media.segments)
    assert [s.audio_duration_s for s in media.segments] == pytest.approx([0.3, 0.2])
    # Each sentence keeps when vocalizr said each of its words.
    assert [[w.word for w in s.words] for s in media.segments] == [
        ["Vive", "la", "France."],
        ["Two", "words."],
    ]
    assert [s.words[-1].end_s for s in media.segments] == pytest.approx([0.3, 0.2])
    # The whole reply, at chattr's address as the caller reached it, in the store.
    assert media.audio_url is not None and media.audio_url.startswith("http://page.test/media/")
    name = media.audio_url.rsplit("/", 1)[1]
    assert JOINED_NAME.fullmatch(name)
    path = MediaStore(tmp_path / "media").path(name)
    assert path is not None
    with wave.open(BytesIO(path.read_bytes())) as joined:
        assert joined.getnframes() / joined.getframerate() == pytest.approx(0.5)
    assert {"first_audio_s", "joined_s"} <= set(media.timings)
    # Every call carried the service's key.
    assert all(r.headers["authorization"] == "Bearer vocalizr-key" for r in vocalizr.requests)


async def test_video_follows_each_speech_by_the_address_chattr_reaches_vocalizr_at(
    tmp_path: Path,
) -> None:
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    media = await media_of(fanout(tmp_path, vocalizr, visualizr, join=False), ["Austerlitz."])
    assert issues(media) == []
    assert media.segments[0].video_url and media.segments[0].video_url.endswith(".mp4")
    asked = json.loads(visualizr.requests[0].content)
    assert asked["audio_url"] == media.segments[0].audio_url
    assert asked["portrait"] == "napoleon" and asked["fps"] == 25


async def test_media_made_before_anyone_looks_is_shown_at_the_first_look(tmp_path: Path) -> None:
    """The turn reads the LLM's last sentences before it looks at the media: speech finished
    meanwhile is in the first update, not held until the next change."""
    release_second = asyncio.Event()
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    first_video_asked = asyncio.Event()  # so the first sentence's audio is in

    async def held_second(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["text"] == "Second.":
            await release_second.wait()
        return vocalizr(request)

    def video(request: httpx.Request) -> httpx.Response:
        first_video_asked.set()
        return visualizr(request)

    service = MediaFanout(
        vocalizr.client(through=held_second),
        VisualizrClient(VISUALIZR, FAST, transport=httpx.MockTransport(video)),
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        options=FanoutOptions(join=False),
    )
    job = service.start("napoleon", "napoleon", "en")
    job.add("First.")
    job.add("Second.")
    await first_video_asked.wait()  # nobody looking, as the turn reads on
    updates = job.updates()
    # The second sentence's speech is held: only the first's media can make this update. (The
    # bound is against a hang; the update comes without waiting for anything.)
    await asyncio.wait_for(anext(updates), timeout=10)
    assert job.media.segments[0].audio_url and job.media.segments[1].audio_url is None
    release_second.set()
    async for _ in updates:
        pass
    assert all(s.audio_url and s.video_url for s in job.media.segments)
    await service.aclose()


async def test_relayed_services_files_are_named_at_chattrs_address(tmp_path: Path) -> None:
    media = await media_of(
        fanout(tmp_path, FakeVocalizr(), join=False, relay=frozenset({"vocalizr"})), ["Hello."]
    )
    audio_url = media.segments[0].audio_url
    assert audio_url is not None and audio_url.startswith("http://page.test/vocalizr/files/")


async def test_segments_keep_the_order_of_their_sentences_whatever_order_they_finish_in(
    tmp_path: Path,
) -> None:
    service, _, _, release_first = speech_only(tmp_path, "First.", FanoutOptions())
    job = service.start("napoleon", "napoleon", "en")
    job.add("First.")
    job.add("Second.")
    updates = job.updates()
    while job.media.segments[1].audio_url is None:
        await anext(updates)
    assert job.media.segments[0].audio_url is None  # the second finished first ...
    release_first.set()
    async for _ in updates:
        pass
    assert [s.text for s in job.media.segments] == ["First.", "Second."]  # ... in its place
    urls = [s.audio_url for s in job.media.segments]
    assert all(urls) and urls[0] != urls[1]
    await service.aclose()


async def test_only_a_replys_first_sentence_asks_vocalizr_to_go_first(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()
    media = await media_of(fanout(tmp_path, vocalizr), ["First.", "Second.", "Third."])
    assert issues(media) == []
    asked = [json.loads(r.content) for r in vocalizr.requests if r.url.path == "/v1/speech"]
    priorities = {body["text"]: body.get("priority") for body in asked}
    assert priorities == {"First.": "first", "Second.": None, "Third.": None}


async def test_a_job_that_yields_starts_no_call_while_the_others_first_sentence_waits(
    tmp_path: Path,
) -> None:
    """A scene's next speaker goes first: the previous reply's next speech and its next video
    wait until the next reply's first sentence has its speech; the call already made goes on."""
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    calls: list[str] = []  # what the services were asked, in order
    asked = {"Earlier one.": asyncio.Event(), "Later one.": asyncio.Event()}
    release = {"Earlier one.": asyncio.Event(), "Later one.": asyncio.Event()}

    async def speech(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        calls.append(f"speech {text}")
        if text in asked:
            asked[text].set()
            await release[text].wait()
            calls.append(f"answered {text}")
        return vocalizr(request)

    def video(request: httpx.Request) -> httpx.Response:
        made = json.loads(request.content)["audio_url"].rsplit("/", 1)[1]
        calls.append(f"video {made}")
        return visualizr(request)

    service = MediaFanout(
        vocalizr.client(through=speech),
        visualizr.client(through=video),
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        # Room for every call at once: only yielding holds one back.
        options=FanoutOptions(speech_concurrency=4, video_concurrency=4, join=False),
    )
    earlier = service.start("napoleon", "napoleon", "en")
    earlier.add("Earlier one.")
    await asked["Earlier one."].wait()
    later = service.start("einstein", "einstein", "en")
    earlier.yield_to(later)
    later.add("Later one.")
    await asked["Later one."].wait()
    earlier.add("Earlier two.")  # a new speech call: held
    release["Earlier one."].set()  # the call already made goes on; its video is held
    earlier_updates = earlier.updates()
    while earlier.media.segments[0].audio_url is None:
        await anext(earlier_updates)
    release["Later one."].set()
    async for _ in later.updates():
        pass
    async for _ in earlier_updates:
        pass
    await service.aclose()

    assert not issues(earlier.media) and not issues(later.media)
    assert all(s.audio_url and s.video_url for s in earlier.media.segments + later.media.segments)
    first_audio = calls.index("answered Later one.")
    earlier_video = calls.index(f"video {earlier.media.segments[0].audio_url.rsplit('/', 1)[1]}")
    assert calls.index("speech Earlier one.") < first_audio  # made before: it went on
    assert calls.index("speech Earlier two.") > first_audio, calls
    assert earlier_video > first_audio, calls


def speech_only(
    tmp_path: Path, held: str, options: FanoutOptions
) -> tuple[MediaFanout, list[str], asyncio.Event, asyncio.Event]:
    """A fan-out with speech alone; what its vocalizr was asked, in order (`speech <text>`,
    `answered <text>`); and two events for the `held` text: set when it is asked, and to set for
    it to be answered."""
    vocalizr = FakeVocalizr()
    calls: list[str] = []
    asked, release = asyncio.Event(), asyncio.Event()

    async def speech(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        calls.append(f"speech {text}")
        if text == held:
            asked.set()
            await release.wait()
        calls.append(f"answered {text}")
        return vocalizr(request)

    service = MediaFanout(
        vocalizr.client(through=speech),
        None,
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        options=options,
    )
    return service, calls, asked, release


async def test_a_yielding_job_holds_its_calls_before_the_others_first_sentence_comes(
    tmp_path: Path,
) -> None:
    """From `yield_to` on, the next speaker's first sentence is expected: the previous reply's
    new calls wait for it, for at most the hold; when it comes within the hold, until its speech
    is made."""
    service, calls, later_asked, release_later = speech_only(
        tmp_path,
        "Later one.",
        FanoutOptions(speech_concurrency=4, join=False, first_sentence_hold_s=0.3),
    )
    # Its first sentence never comes: the call waits out the hold, and not longer.
    earlier = service.start("napoleon", "napoleon", "en")
    silent = service.start("curie", "curie", "en")
    yielded = time.monotonic()
    earlier.yield_to(silent)
    earlier.add("Earlier one.")
    async for _ in earlier.updates():
        pass
    assert time.monotonic() - yielded >= 0.3
    assert calls == ["speech Earlier one.", "answered Earlier one."]

    # It comes within the hold: the call waits until its speech is made, the hold long over.
    service.options = FanoutOptions(speech_concurrency=4, join=False, first_sentence_hold_s=30)
    earlier = service.start("napoleon", "napoleon", "en")
    later = service.start("einstein", "einstein", "en")
    earlier.yield_to(later)
    earlier.add("Earlier two.")
    later.add("Later one.")
    await later_asked.wait()
    release_later.set()
    async with asyncio.timeout(10):  # not the hold's 30 s
        async for _ in earlier.updates():
            pass
    async for _ in later.updates():
        pass
    await service.aclose()
    assert calls[2:] == [
        "speech Later one.",
        "answered Later one.",
        "speech Earlier two.",
        "answered Earlier two.",
    ]
    assert not issues(earlier.media) and not issues(later.media)


async def test_a_slot_that_frees_while_the_others_first_sentence_waits_is_handed_back(
    tmp_path: Path,
) -> None:
    """A call already waiting for one of chattr's slots when the next speaker's first sentence
    came does not take it meanwhile: the first sentence does, although it came later."""
    service, calls, other_asked, release_other = speech_only(
        tmp_path,
        "Other one.",
        FanoutOptions(speech_concurrency=1, join=False),  # no hold
    )
    slots, _ = service._slots()
    other = service.start("curie", "curie", "en")
    other.add("Other one.")  # holds the only slot
    await other_asked.wait()
    earlier = service.start("napoleon", "napoleon", "en")
    earlier.add("Earlier one.")
    await asyncio.sleep(0)  # its task runs up to the slot's queue, past looking at the others
    assert slots.waiting == 1
    later = service.start("einstein", "einstein", "en")
    earlier.yield_to(later)
    later.add("Later one.")  # the same rank as the earlier one's, and later: behind it
    release_other.set()
    for job in (other, later, earlier):
        async for _ in job.updates():
            pass
    await service.aclose()
    assert calls.index("answered Later one.") < calls.index("speech Earlier one."), calls
    assert not any(issues(job.media) for job in (other, later, earlier))


async def test_first_sentences_are_marked_while_they_are_spoken_and_only_then(
    tmp_path: Path,
) -> None:
    """The file a visualizr on the same cores pauses for: up during a first sentence's speech
    call (any reply's), down for the others, and down once every call has ended, failed or not."""
    vocalizr, visualizr = FakeVocalizr(), FakeVisualizr()
    marker = FirstSpeechMarker(tmp_path / "run" / "first-speech")
    marked: dict[str, bool] = {}  # each speech call: whether the file was there as it was made
    other_asked, other_done = asyncio.Event(), asyncio.Event()

    async def speech(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        marked[text] = marker.path.exists()
        if text == "One first.":  # ends while another reply's first sentence is still spoken
            await other_asked.wait()
        if text == "Other first.":
            other_asked.set()
            await other_done.wait()
            return httpx.Response(500, json={"detail": "synthesis failed"})
        return vocalizr(request)

    service = MediaFanout(
        vocalizr.client(through=speech),
        visualizr.client(),
        store=MediaStore(tmp_path / "media"),
        public_url="http://chattr.test",
        options=FanoutOptions(speech_concurrency=3, join=False),
        first_speech=marker,
    )
    one = service.start("napoleon", "napoleon", "en")
    other = service.start("einstein", "einstein", "en")
    one.add("One first.")
    other.add("Other first.")
    updates = one.updates()
    while one.media.segments[0].audio_url is None:
        await anext(updates)
    assert marker.path.exists() and marker.speaking == 1  # the other is still being spoken
    other_done.set()
    async for _ in other.updates():
        pass
    assert not marker.path.exists()  # its call failed: the mark went with it
    one.add("One second.", previous="neutral")
    async for _ in updates:
        pass
    await service.aclose()

    assert marked == {"One first.": True, "Other first.": True, "One second.": False}
    assert issues(other.media) and not issues(one.media)
    assert not marker.path.exists() and marker.speaking == 0


NONSENSE: dict[str, tuple[Callable[[httpx.Request], httpx.Response], str]] = {
    "200 without the fields": (
        lambda r: httpx.Response(200, json={"duration_s": 1.0}),
        "answered without 'url'",
    ),
    "an HTML page": (
        html_page,
        "answered HTTP 200 with something that is not JSON (text/html",
    ),
    "a truncated body": (truncated, "answer cut off (HTTP 200): RemoteProtocolError"),
    "a connection error": (refused, f"unreachable at {VOCALIZR} (ConnectError: "),
}


@pytest.mark.parametrize("kind", sorted(NONSENSE))
async def test_a_failing_speech_call_is_an_issue_naming_vocalizr(tmp_path: Path, kind: str) -> None:
    answer, words = NONSENSE[kind]
    vocalizr = FakeVocalizr(speech=answer)
    media = await media_of(fanout(tmp_path, vocalizr, FakeVisualizr()), ["Bonjour."])
    [(service, detail)] = issues(media)
    assert service == "vocalizr" and words in detail, detail
    assert media.segments[0].audio_url is None and media.audio_url is None
    assert list((tmp_path / "media").iterdir()) == []  # no joined file, no piece left


@pytest.mark.parametrize("kind", sorted(NONSENSE))
async def test_a_failing_video_call_is_an_issue_naming_visualizr_and_the_speech_stands(
    tmp_path: Path, kind: str
) -> None:
    answer, words = NONSENSE[kind]
    visualizr = FakeVisualizr(videos=answer)
    media = await media_of(fanout(tmp_path, FakeVocalizr(), visualizr), ["Bonjour."])
    [(service, detail)] = issues(media)
    assert service == "visualizr", detail
    assert words.replace(VOCALIZR, "http://visualizr.test") in detail, detail
    assert media.segments[0].audio_url and media.segments[0].video_url is None
    # The whole reply's speech is still joined; its video, missing a piece, is not.
    assert media.audio_url is not None and media.video_url is None


@pytest.mark.parametrize("relay", [frozenset(), frozenset({"vocalizr"})])
async def test_a_speech_url_that_is_not_a_url_is_an_issue_naming_vocalizr(
    tmp_path: Path, relay: frozenset[str]
) -> None:
    def bad_url(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"url": "http://[::1/files/a.wav", "duration_s": 1.0, "sample_rate": 16000}
        )

    vocalizr = FakeVocalizr(speech=bad_url)
    service = fanout(tmp_path, vocalizr, FakeVisualizr(), relay=relay)
    media = await media_of(service, ["Hello."])
    assert issues(media) == [("vocalizr", "failed: ValueError: Invalid IPv6 URL")]
    assert media.segments[0].audio_url is None


async def test_a_speech_file_that_cannot_be_fetched_costs_the_joined_audio_only(
    tmp_path: Path,
) -> None:
    vocalizr = FakeVocalizr(files=lambda r: httpx.Response(404, json={"detail": "gone"}))
    media = await media_of(fanout(tmp_path, vocalizr), ["One.", "Two."])
    assert issues(media) == [
        ("join", "could not join the audio: vocalizr: could not fetch its file: HTTP 404")
    ]
    assert all(s.audio_url for s in media.segments) and media.audio_url is None


async def test_an_unexpected_failure_in_a_media_task_is_an_issue_too(tmp_path: Path) -> None:
    def broken_wait(timeout_s: float) -> list[str]:
        raise RuntimeError("the local services could not be started")

    media = await media_of(fanout(tmp_path, FakeVocalizr(), wait_started=broken_wait), ["Hi."])
    assert issues(media) == [
        ("vocalizr", "failed: RuntimeError: the local services could not be started")
    ]


async def test_sentences_before_a_service_is_up_go_without_it_and_say_so(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()
    media = await media_of(fanout(tmp_path, vocalizr, wait_started=lambda t: {"vocalizr"}), ["Hi."])
    assert issues(media) == [("vocalizr", STILL_STARTING.format(medium="speech or video"))]
    assert vocalizr.requests == []


async def test_sentences_wait_for_a_service_that_comes_up_while_they_wait(tmp_path: Path) -> None:
    """A cold start's first message: its sentences come before vocalizr is up, and get their
    speech and video once it is, instead of going without them."""
    asked: list[float] = []

    def up_on_the_fourth_question(timeout_s: float) -> list[str]:
        asked.append(timeout_s)
        return ["vocalizr", "visualizr"] if len(asked) < 4 else []

    vocalizr = FakeVocalizr()
    ready_later = fanout(
        tmp_path,
        vocalizr,
        FakeVisualizr(),
        join=False,
        wait_started=up_on_the_fourth_question,
        startup_wait_s=60.0,
    )
    media = await media_of(ready_later, ["Hi."])
    assert issues(media) == []
    assert media.segments[0].audio_url and media.segments[0].video_url
    assert len(vocalizr.requests) == 1
    assert set(asked) == {0.0}  # asked without blocking: the wait is the fan-out's


async def test_speech_does_not_wait_for_the_video_service_to_start(tmp_path: Path) -> None:
    """visualizr here comes up only once the first sentence's speech was asked for: a sentence
    that waited for every service (as it once did) would wait out the whole startup wait."""
    vocalizr = FakeVocalizr()

    def visualizr_still_starting(timeout_s: float) -> list[str]:
        return [] if vocalizr.requests else ["visualizr"]

    ready_later = fanout(
        tmp_path,
        vocalizr,
        FakeVisualizr(),
        join=False,
        wait_started=visualizr_still_starting,
        startup_wait_s=600.0,
    )
    media = await asyncio.wait_for(media_of(ready_later, ["Hi."]), timeout=60)
    assert issues(media) == []
    assert media.segments[0].audio_url and media.segments[0].video_url


async def test_without_a_speech_service_the_reply_says_speech_is_off(tmp_path: Path) -> None:
    media = await media_of(fanout(tmp_path, None), ["Hi."])
    assert issues(media) == [("vocalizr", "speech is off: no speech service is configured")]
    assert [s.text for s in media.segments] == ["Hi."]


async def test_cancelling_a_job_stops_its_calls(tmp_path: Path) -> None:
    service, _, asked, _ = speech_only(tmp_path, "Never spoken.", FanoutOptions())
    job = service.start("napoleon", "napoleon", "en")
    job.add("Never spoken.")
    await asked.wait()  # its call is in flight, and is never answered
    await asyncio.wait_for(job.cancel(), 1.0)
    assert all(task.done() for task in job._tasks)
    assert job.media.issues == []
    await service.aclose()


# --- the clients' retry policy, at the transport --------------------------------------------


async def test_a_stale_connection_is_retried_once_with_the_key() -> None:
    vocalizr = FakeVocalizr()
    failures = [httpx.RemoteProtocolError("Server disconnected without sending a response.")]

    def stale_once(request: httpx.Request) -> httpx.Response:
        if failures:
            vocalizr.requests.append(request)
            raise failures.pop()
        return vocalizr(request)

    client = vocalizr.client(through=stale_once)
    speech = await client.synthesize("Hello.", "napoleon")
    await client.aclose()
    assert speech.url.endswith(".wav")
    assert len(vocalizr.requests) == 2
    assert [r.headers["authorization"] for r in vocalizr.requests] == ["Bearer vocalizr-key"] * 2


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (httpx.RemoteProtocolError("Server disconnected"), "(RemoteProtocolError: Server disc"),
        (httpx.ReadError(""), "(ReadError; 2 tries)"),
    ],
)
async def test_a_connection_that_keeps_failing_is_retried_then_an_error_that_says_what(
    error: httpx.HTTPError, words: str
) -> None:
    calls: list[httpx.Request] = []

    def always(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise error

    client = FakeVocalizr().client(through=always)
    with pytest.raises(ServiceError) as caught:
        await client.synthesize("Hello.", "napoleon")
    await client.aclose()
    assert caught.value.service == "vocalizr" and words in caught.value.detail
    assert "no answer from http://vocalizr.test" in caught.value.detail
    # Two tries (FAST allows one retry: a reset is a dead replica's): the first on a pooled
    # connection and then once on a fresh one, the retry on a fresh one; no more.
    assert len(calls) == 3


async def test_an_unreachable_service_is_retried_then_refused_at_once_by_the_breaker() -> None:
    calls: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return refused(request)

    options = ClientOptions(retries=1, backoff_s=0.0, breaker_threshold=2)
    client = FakeVocalizr().client(options, through=down)
    for _ in range(2):
        with pytest.raises(ServiceError, match="unreachable"):
            await client.synthesize("Hello.", "napoleon")
    assert len(calls) == 4  # each call tried twice
    with pytest.raises(ServiceError, match="skipped: vocalizr failed repeatedly"):
        await client.synthesize("Hello.", "napoleon")
    assert len(calls) == 4  # the open breaker sent nothing
    await client.aclose()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (lambda r: httpx.Response(200, json={"text": "Bonjour."}), "Bonjour."),
        (lambda r: httpx.Response(200, json={"text": ""}), ""),  # nothing was said
        (html_page, "answered HTTP 200 with something that is not JSON (text/html"),
        (lambda r: httpx.Response(200, json={"language": "fr"}), "answered without 'text'"),
        (lambda r: httpx.Response(200, json=["Bonjour."]), "a JSON list, not an object"),
        (refused, "unreachable at http://vocalizr.test"),
    ],
)
async def test_a_transcription_is_its_text_or_an_error_that_says_what(
    answer: Callable[[httpx.Request], httpx.Response], outcome: str
) -> None:
    asked: list[httpx.Request] = []

    def transcriptions(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return answer(request)

    client = FakeVocalizr().client(through=transcriptions)
    try:
        text = await client.transcribe(b"RIFF", "speech.wav", "fr")
    except ServiceError as exc:
        assert exc.service == "vocalizr" and outcome in exc.detail, exc.detail
    else:
        assert text == outcome
    finally:
        await client.aclose()
    assert asked[0].url.path == "/v1/audio/transcriptions"
