"""A reply's sentences on to its media job, in their order, each with its emotion.

The emotion of an untagged sentence is a guess by MiniLM (`EmotionClassifier`), which takes
milliseconds on an idle core but as long as the CPU and the embedder's one lock make it on a busy
one. It runs here, in a task of the turn's own, not in the turn's stream: the stream goes on
showing text and the media already made (the first sentence's audio) while a later sentence is
guessed (bench/scale.py saw the first audio held back a tenth of a second behind such guesses).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from chattr.turn.emotions import EmotionClassifier, EmotionTrack, without_marks
from chattr.turn.spoken_text import spoken_sentence

if TYPE_CHECKING:
    from chattr.media.fanout import MediaJob

log = logging.getLogger(__name__)


class Speaker:
    """Takes a reply's sentences as the LLM completes them (`say`) and adds each to `job` with
    its emotion, one after another; the job's updates wait for it, and cancelling the job stops
    it. Made inside the turn's event loop."""

    def __init__(self, job: MediaJob, classifier: Callable[[], EmotionClassifier | None]) -> None:
        """`classifier`: the guesser of untagged sentences' emotions, asked when one comes (it
        may still be loading: None)."""
        self.job = job
        self.classifier = classifier
        self.track = EmotionTrack()
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        job.follow(asyncio.get_running_loop().create_task(self._speak_all()))

    def say(self, sentence: str) -> None:
        """A complete sentence (with its tag marks), spoken after those said before it."""
        self._sentences.put_nowait(sentence)

    def close(self) -> None:
        """The reply is complete: no more sentences."""
        self._sentences.put_nowait(None)

    async def _speak_all(self) -> None:
        while (sentence := await self._sentences.get()) is not None:
            await self._speak(sentence)

    async def _speak(self, sentence: str) -> None:
        spoken = spoken_sentence(without_marks(sentence))
        if spoken is None:
            self.track.hold(sentence)
            return
        guessed = None
        if self.track.needs_classifier(sentence):
            classifier = self.classifier()
            if classifier is not None:
                try:
                    guessed = await anyio.to_thread.run_sync(classifier.label, spoken)
                except Exception:  # a failed guess leaves the sentence its held emotion
                    log.exception("could not guess the emotion of a sentence")
        said = self.track.next(sentence, guessed)
        self.job.add(spoken, said.emotion, said.previous)
