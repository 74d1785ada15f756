"""The media fan-out of one reply: each sentence to speech as soon as it is complete, each audio
to video as soon as it is ready, concurrently with the LLM still streaming; each video joined onto
the reply's whole video as soon as its turn in the order comes, and the whole audio at the end.

Sentence k+1's speech overlaps sentence k's video and the LLM's remaining tokens. Concurrency per
service is bounded across all turns, so a burst of conversations queues here instead of
overloading the services, and the queue serves first sentences first (`slots.py`). Segments keep
the order of their sentences whatever order they finish in. A failing service becomes an error on
the turn, never a lost reply.

A job can yield to another (`MediaJob.yield_to`): it starts no new call, and fetches and joins no
video, while the other's first sentence waits for its speech, and before it comes, for up to a
hold. A scene's next speaker uses it, so its first audio does not queue behind the previous
speaker's remaining speech and videos in the services' own queues or share a CPU with them; and
one speech slot is kept for first sentences, so it does not wait in chattr's slots for two of
them either. A call already made is vocalizr's to order: a first sentence says so (`priority:
first`), and vocalizr speaks it before the others waiting, stopping a later sentence it is
synthesizing (Piper), which it then synthesizes again. And a render already under way in a
visualizr that chattr started on its own cores waits between frames while a first
sentence is being spoken (`MediaFanout.speaking`, `chatacter_common/first_speech.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from chatacter_common.emotions import NEUTRAL
from chatacter_common.first_speech import FirstSpeechMarker
from chatacter_common.storage import StorageError
from chatacter_common.telemetry import options as tracing_options
from chatacter_common.telemetry import span
from chattr.media.clients import (
    ServiceClient,
    ServiceError,
    VisualizrClient,
    VocalizrClient,
    describe,
)
from chattr.media.joining import ReplyVideo, join_wavs
from chattr.media.relay import service_file_id
from chattr.media.slots import PrioritySlots
from chattr.media.store import MediaStore
from chattr.reply import ReplyMedia, Segment, add_issue

log = logging.getLogger(__name__)

# How long a sentence's media wait for locally started services that are still loading their
# engines. The text never waits for them. On a cold start a message sent the moment the page
# answers has its first sentence before vocalizr is up (1-3 s later on two cores, bench/startup.py),
# and a short reply would otherwise have no speech and no video at all. Sentences still waiting
# after this go without the medium (the turn's errors say so): a service that takes minutes to load
# (a GPU engine) holds no turn for minutes.
STARTUP_WAIT_S = 20.0
STILL_STARTING = "still starting: sentences before it was ready have no {medium}"


@dataclass(frozen=True)
class FanoutOptions:
    speech_concurrency: int = 2
    video_concurrency: int = 2
    fps: int = 25
    join: bool = True
    startup_wait_s: float = STARTUP_WAIT_S
    # How long the jobs that yield to a reply hold their new calls before its first sentence
    # has come (`MediaJob.yield_to`); 0: only from when it comes.
    first_sentence_hold_s: float = 0.0


# How often a sentence looks again at a service that is still starting (a look reads a status).
STARTING_POLL_S = 0.05


class MediaFanout:
    """Shared by all turns: the two clients, the concurrency bounds, where joined files go."""

    def __init__(
        self,
        vocalizr: VocalizrClient | None,
        visualizr: VisualizrClient | None,
        *,
        store: MediaStore,
        public_url: str,
        options: FanoutOptions | None = None,
        wait_started: Callable[[float], Collection[str]] | None = None,
        relay: frozenset[str] = frozenset(),
        first_speech: FirstSpeechMarker | None = None,
    ) -> None:
        """`public_url`: chattr's address for turns that bring none of their own. `relay`: the
        services whose files a reply names at chattr's address (`/vocalizr/files/<id>`).
        `first_speech`: marked while any reply's first sentence is being spoken, for a
        visualizr on the same cores, whose renders then wait."""
        self.vocalizr = vocalizr
        # For services chattr started itself: wait up to N s for them to answer /healthz (or
        # give up); the names of those still starting.
        self.wait_started = wait_started
        self.visualizr = visualizr
        self.store = store.create()
        self.public_url = public_url.rstrip("/")
        self.relay = relay
        self.first_speech = first_speech
        self.options = options or FanoutOptions()
        self._speech_slots: PrioritySlots | None = None
        self._video_slots: PrioritySlots | None = None

    def _slots(self) -> tuple[PrioritySlots, PrioritySlots]:
        # Made on first use, inside the serving event loop.
        if self._speech_slots is None or self._video_slots is None:
            # One speech slot is kept for first sentences (when there are two or more): a reply's
            # first audio never waits for two of another's later sentences.
            speech = self.options.speech_concurrency
            self._speech_slots = PrioritySlots(speech, reserved=1 if speech > 1 else 0)
            self._video_slots = PrioritySlots(self.options.video_concurrency)
        return self._speech_slots, self._video_slots

    def start(
        self,
        character_id: str,
        voice: str,
        language: str,
        *,
        base_url: str | None = None,
    ) -> MediaJob:
        """Begin the media of one reply; feed it sentences with `add`, read it in `media`.
        `base_url`: chattr's address as the caller reached it; the reply's URLs start with it."""
        return MediaJob(self, character_id, voice, language, base_url=base_url)

    @contextmanager
    def speaking(self, first: bool) -> Iterator[None]:
        """Around a sentence's speech call: a first sentence is marked for the block."""
        marker = self.first_speech if first else None
        if marker is not None:
            marker.begin()
        try:
            yield
        finally:
            if marker is not None:
                marker.end()

    def relayed_clients(self) -> dict[str, ServiceClient]:
        """The services whose files chattr relays, by name, with their clients."""
        clients = {"vocalizr": self.vocalizr, "visualizr": self.visualizr}
        return {name: c for name, c in clients.items() if name in self.relay and c is not None}

    def public_file_url(self, service: str, url: str, base_url: str) -> str:
        """A service's file URL as the reply gives it: at chattr's address when relayed."""
        if service not in self.relay:
            return url
        file_id = service_file_id(service, url)
        return f"{base_url}/{service}/files/{file_id}" if file_id else url

    async def aclose(self) -> None:
        for client in (self.vocalizr, self.visualizr):
            if client is not None:
                await client.aclose()


class MediaJob:
    """The media of one reply, sentence by sentence; `media` is what it has made so far, written
    by this job alone."""

    def __init__(
        self,
        fanout: MediaFanout,
        character_id: str,
        voice: str,
        language: str,
        *,
        base_url: str | None = None,
    ) -> None:
        self.fanout = fanout
        self.base_url = (base_url or fanout.public_url).rstrip("/")
        # Each sentence's speech as vocalizr named it (the segment's URL may be chattr's relay).
        self._speech_urls: dict[int, str] = {}
        self.character_id = character_id
        self.voice = voice
        self.language = language
        self.media = ReplyMedia()
        self.started = time.perf_counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._video: ReplyVideo | None = None
        if fanout.options.join and fanout.visualizr is not None:
            self._video = ReplyVideo(fanout.store)
        # Clear from when the first sentence comes until its speech is made, failed or dropped:
        # the jobs that yield to this one wait while it is. Only then: a slow LLM's wait for its
        # first sentence must not stop the others' media.
        self._first_speech_settled = asyncio.Event()
        self._first_speech_settled.set()
        self._first_sentence_hold: asyncio.TimerHandle | None = None
        self._yielding_to: list[MediaJob] = []
        if fanout.vocalizr is None:
            self._note("vocalizr", "speech is off: no speech service is configured")

    def yield_to(self, other: MediaJob) -> None:
        """Start no new speech or video call, and fetch and join no video, while `other`'s first
        sentence waits for its speech, and from now until it comes, for at most the fan-out's
        `first_sentence_hold_s`; calls already made go on. A scene's next speaker goes first this
        way: its first sentence then mostly finds vocalizr idle, with no run of another's to stop
        and nothing else's to share a CPU with. A run it stops is thrown away and made again,
        so holding the call that would have started meanwhile costs the holder little; and an
        LLM slower than the hold to its first sentence holds nobody's media longer."""
        self._yielding_to.append(other)
        other._hold_until_first_sentence()

    def _hold_until_first_sentence(self) -> None:
        hold_s = self.fanout.options.first_sentence_hold_s
        if self.media.segments or self.fanout.vocalizr is None or hold_s <= 0:
            return
        if self._first_sentence_hold is None:
            self._first_speech_settled.clear()
            self._first_sentence_hold = asyncio.get_running_loop().call_later(
                hold_s, self._end_hold
            )

    def _end_hold(self) -> None:
        if not self.media.segments:  # else it is settled when its speech is
            self._first_speech_settled.set()

    async def _wait_for_others(self) -> None:
        for other in self._yielding_to:
            await other._first_speech_settled.wait()

    def _others_waiting(self) -> bool:
        return any(not other._first_speech_settled.is_set() for other in self._yielding_to)

    @asynccontextmanager
    async def _slot(
        self, slots: PrioritySlots, priority: tuple[int, float], *, urgent: bool = False
    ) -> AsyncIterator[None]:
        """One of `slots` for the block, taken while no job this one yields to waits for its
        first speech. A slot that came free after such a wait began (a call queued for it before)
        is handed back until the wait ends: its call would reach the service during that first
        sentence's speech."""
        while True:
            await self._wait_for_others()
            async with slots.slot(priority, urgent=urgent):
                if self._others_waiting():
                    continue
                yield
                return

    def add(self, sentence: str, emotion: str = NEUTRAL, previous: str | None = None) -> None:
        """A complete sentence, with its emotion and the previous sentence's (None for the
        first): make its speech, then its video, in the background."""
        segment = Segment(text=sentence, emotion=emotion)
        self.media.segments.append(segment)
        self._changed.set()
        if self.fanout.vocalizr is not None:
            # Earlier sentences first, across all turns; among equals, the older turn first.
            priority = (len(self.media.segments) - 1, self.started)
            if priority[0] == 0:
                self._first_speech_settled.clear()
                if self._first_sentence_hold is not None:
                    self._first_sentence_hold.cancel()
            self._tasks.append(asyncio.create_task(self._produce(segment, priority, previous)))

    def follow(self, task: asyncio.Task[None]) -> None:
        """A task that adds this job's sentences: `updates` waits for it as for the sentences'
        own media, and `cancel` stops it."""
        self._tasks.append(task)

    async def _produce(
        self, segment: Segment, priority: tuple[int, float], previous: str | None
    ) -> None:
        speech_slots, video_slots = self.fanout._slots()
        vocalizr, visualizr = self.fanout.vocalizr, self.fanout.visualizr
        assert vocalizr is not None
        # Every failure from here on is an entry in the turn's errors, naming the service: a
        # task's exception would otherwise vanish with it, and the turn end without its media.
        try:
            if await self._starting("vocalizr", self.fanout.options.startup_wait_s):
                self._still_starting("vocalizr", "speech or video")
                return
            with span("speech", **{"chattr.sentence.index": priority[0]}) as traced:
                if tracing_options.text and traced.is_recording():
                    traced.set_attribute("chattr.sentence", segment.text)
                first = priority[0] == 0
                async with self._slot(speech_slots, priority, urgent=first):
                    with self.fanout.speaking(first):
                        speech = await vocalizr.synthesize(
                            segment.text, self.voice, self.language, segment.emotion, first=first
                        )
            # A URL that does not parse is vocalizr's failure too.
            audio_url = self.fanout.public_file_url("vocalizr", speech.url, self.base_url)
            # visualizr fetches the audio itself, by the address chattr reaches vocalizr at.
            internal_audio_url = vocalizr.internal_url(speech.url)
        except Exception as exc:
            self._fail(vocalizr.name, exc)
            return
        else:
            self._speech_urls[priority[0]] = speech.url
            segment.audio_url = audio_url
            segment.audio_duration_s = speech.duration_s
            segment.words = speech.words
            self._mark("first_audio_s")
        finally:
            if priority[0] == 0:  # made, failed or cancelled: nobody waits on it any longer
                self._first_speech_settled.set()
        if visualizr is None:
            return
        try:
            if await self._starting("visualizr", self.fanout.options.startup_wait_s):
                self._still_starting("visualizr", "video")
                return
            with span("video", **{"chattr.sentence.index": priority[0]}):
                async with self._slot(video_slots, priority):
                    video = await visualizr.render(
                        internal_audio_url,
                        self.character_id,
                        self.fanout.options.fps,
                        expression=segment.emotion,
                        previous_expression=previous,
                    )
            video_url = self.fanout.public_file_url("visualizr", video.url, self.base_url)
        except Exception as exc:
            self._fail(visualizr.name, exc)
            return
        segment.video_url = video_url
        self._mark("first_video_s")
        if self._video is not None:
            try:
                await self._wait_for_others()  # fetching and joining take chattr's CPU too
                await self._video.add(priority[0], await visualizr.download(video.url))
            except Exception as exc:  # the reply's whole video is lost, not the sentence's
                self._video.fail(f"could not fetch a video to join: {exc}")

    async def _starting(self, service: str, wait_s: float) -> bool:
        """Whether `service` is still starting after up to `wait_s` (the other one may be).
        Asked without blocking, every 0.05 s: a wait in a thread would hold one of the loop's
        few worker threads for as long, and could not be cancelled with the turn."""
        if self.fanout.wait_started is None:
            return False
        deadline = time.monotonic() + wait_s
        while service in self.fanout.wait_started(0.0):
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(STARTING_POLL_S)
        return False

    def _still_starting(self, service: str, medium: str) -> None:
        # The reply's whole video and audio are joined only when every sentence has them.
        self._note(service, STILL_STARTING.format(medium=medium))

    def _note(self, service: str, detail: str) -> None:
        add_issue(self.media.issues, service, detail)
        self._changed.set()

    def _mark(self, timing: str) -> None:
        self.media.timings.setdefault(timing, time.perf_counter() - self.started)
        self._changed.set()

    def _fail(self, service: str, exc: Exception) -> None:
        if isinstance(exc, ServiceError):
            service, detail = exc.service, exc.detail
        else:  # a bug or a surprise, still the turn's to show
            log.exception("media: %s failed", service)
            detail = f"failed: {describe(exc)}"
        log.warning("media: %s: %s", service, detail)
        self._note(service, detail)

    async def updates(self) -> AsyncIterator[None]:
        """Yield each time a segment gets media, and at once for what changed before the first
        look; after the last, join the whole reply."""
        while True:
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                break
            if not self._changed.is_set():
                waiter = asyncio.create_task(self._changed.wait())
                try:
                    await asyncio.wait([waiter, *pending], return_when=asyncio.FIRST_COMPLETED)
                finally:  # also when the reply is stopped while it waits: no waiter left behind
                    waiter.cancel()
            # Cleared as the caller is about to look, not before the wait: what changed while it
            # was busy elsewhere (the LLM's last sentences, their emotions) is shown now, not
            # held back until the next change (bench/scale.py: the first audio waited ~0.1 s).
            self._changed.clear()
            yield
        if self.fanout.options.join and self.media.segments:
            await self._wait_for_others()
            with span("join"):
                await self._join()
        yield

    async def _join(self) -> None:
        segments = self.media.segments
        vocalizr = self.fanout.vocalizr
        speech = [self._speech_urls.get(index) for index in range(len(segments))]
        if vocalizr is not None and all(speech):
            try:
                pieces = await asyncio.gather(*(vocalizr.download(url or "") for url in speech))
                joined, _ = await asyncio.to_thread(join_wavs, pieces)
                name = await asyncio.to_thread(self.fanout.store.publish, joined, "wav")
                self.media.audio_url = f"{self.base_url}/media/{name}"
            except StorageError as exc:
                self._note("media store", f"could not store the joined audio: {exc}")
            except Exception as exc:  # a failed download or join must not cost the reply
                self._note("join", f"could not join the audio: {exc}")
        if self._video is not None and segments and all(s.video_url for s in segments):
            try:
                name = await self._video.finish(len(segments))
                self.media.video_url = f"{self.base_url}/media/{name}"
            except StorageError as exc:
                self._note("media store", f"could not store the joined video: {exc}")
            except Exception as exc:  # as above
                self._note("join", f"could not join the video: {exc}")
        elif self._video is not None:
            self._video.discard()
        self._mark("joined_s")

    async def cancel(self) -> None:
        if self._first_sentence_hold is not None:
            self._first_sentence_hold.cancel()
        self._first_speech_settled.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._video is not None:
            # A worker thread may still be adding a piece; discarding waits for it.
            await asyncio.to_thread(self._video.discard)
