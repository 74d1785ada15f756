"""A live, hands-free conversation: utterances in, replies out, and barge-in.

One `LiveConversation` per page session. The microphone stream feeds its detector; each finished
utterance waits in `pending` until the page's turn handler takes it. While a reply is being made
or played, speech that starts again is a barge-in: the page stops playback at once and reports
what had been played; the running turn stops making media; memory keeps only what was heard,
marked as interrupted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chattr.voice.utterances import Utterance, UtteranceCollector
from chattr.voice.vad import VadOptions


@dataclass(frozen=True)
class PlayedClip:
    """What the page reports of one clip of the reply when it was stopped."""

    src: str
    position_s: float  # how far it had played
    duration_s: float
    ended: bool


@dataclass
class LiveReply:
    """The reply being made and played: its sentences and their clips' URLs, in order."""

    user: str
    sentences: list[str] = field(default_factory=list)
    clip_urls: list[set[str]] = field(default_factory=list)  # per sentence: its audio/video URLs
    finished: bool = False  # the turn is over (text, media and memory)
    remembered: bool = False  # the whole reply went into memory already
    interrupted: bool = False
    heard: str = ""  # what the person heard of it, once interrupted

    def update(self, sentences: Sequence[str], urls: Sequence[Iterable[str | None]]) -> None:
        self.sentences = list(sentences)
        self.clip_urls = [{url for url in group if url} for group in urls]

    def heard_text(self, played: Sequence[PlayedClip]) -> str:
        """The part of the reply the person heard: whole sentences played, and the words of the
        one cut off, in proportion to how far its clip had played."""
        progress: dict[int, float] = {}
        for clip in played:
            for index, urls in enumerate(self.clip_urls):
                if any(_same_file(clip.src, url) for url in urls):
                    share = 1.0 if clip.ended else _share(clip.position_s, clip.duration_s)
                    progress[index] = max(progress.get(index, 0.0), share)
        heard: list[str] = []
        for index, sentence in enumerate(self.sentences):
            share = progress.get(index, 0.0)
            if share >= 0.98:
                heard.append(sentence)
                continue
            words = sentence.split()
            cut = int(len(words) * share)
            if cut:
                heard.append(" ".join(words[:cut]))
            break
        return " ".join(heard).strip()


# Silence after which the words so far are transcribed ahead, while the detector waits out the
# rest of the pause (0.55 s) that ends an utterance.
GUESS_AFTER_S = 0.2


def _key(utterance: Utterance) -> tuple[float, float]:
    return (utterance.started_s, utterance.ended_s)


def _share(position_s: float, duration_s: float) -> float:
    if duration_s <= 0 or position_s != position_s or duration_s != duration_s:  # NaN
        return 0.0
    return min(1.0, max(0.0, position_s / duration_s))


def _same_file(src: str, url: str) -> bool:
    """A clip's address as the browser resolved it, against the URL the reply gave."""
    return src == url or src.endswith(url) or url.endswith(src.split("://", 1)[-1])


class LiveConversation:
    """The live mode of one page session (thread-safe: the stream and the turn run apart)."""

    def __init__(self, options: VadOptions | None = None) -> None:
        # A pause of 0.55 s ends an utterance: people pause for breath mid-sentence when they
        # talk to someone (0.35 s cut the test recording in three), and 0.55 s keeps the wait
        # within 0.6 s.
        self.detector = UtteranceCollector(options or VadOptions(min_silence_s=0.55))
        self.pending: deque[Utterance] = deque()
        self.reply: LiveReply | None = None
        self.signals = 0  # counter the page watches: a new value means "look again"
        self.session_id = ""
        self.character_id = ""
        self._interrupt = threading.Event()
        self._lock = threading.Lock()
        self._guessed: tuple[float, float] | None = None  # the pause last guessed on
        self._guess: tuple[tuple[float, float], Any] | None = None

    def hear(self, sample_rate: int, chunk: Any) -> tuple[bool, bool]:
        """Feed one microphone chunk. Returns (speech started, an utterance is ready)."""
        heard = self.detector.feed(sample_rate, chunk)
        with self._lock:
            self.pending.extend(heard.utterances)
        return heard.speech_started, bool(heard.utterances)

    def pause_to_guess_on(self) -> Utterance | None:
        """An utterance worth transcribing ahead (a speculation), once per pause: the person has
        been silent `GUESS_AFTER_S`, so the words so far are likely the whole utterance. If the
        pause ends it, its transcript is ready sooner; if they go on, the guess is dropped."""
        guess = self.detector.tentative(GUESS_AFTER_S)
        if guess is None or _key(guess) == self._guessed:
            return None
        self._guessed = _key(guess)
        return guess

    def keep_guess(self, utterance: Utterance, transcript: Any) -> Any | None:
        """Keep the transcription (a task, say) started for a guess. Returns the one it replaces
        (a guess the person talked past), for the caller to cancel."""
        with self._lock:
            replaced = self._guess[1] if self._guess is not None else None
            self._guess = (_key(utterance), transcript)
            return replaced

    def take_guess(self, utterance: Utterance) -> tuple[Any | None, Any | None]:
        """(the transcription guessed for exactly this utterance or None, a guess that can no
        longer be used, for the caller to cancel, or None)."""
        with self._lock:
            if self._guess is None:
                return None, None
            key, transcript = self._guess
            if key == _key(utterance):
                self._guess = None
                return transcript, None
            if key[0] == utterance.started_s:  # an earlier pause of this same utterance
                self._guess = None
                return None, transcript
            return None, None

    def flush(self) -> bool:
        """The microphone stopped: the utterance being heard is ended now. True if there was one."""
        utterance = self.detector.flush()
        if utterance is None:
            return False
        with self._lock:
            self.pending.append(utterance)
        return True

    def next_utterance(self) -> Utterance | None:
        with self._lock:
            return self.pending.popleft() if self.pending else None

    def begin_reply(self, user: str) -> LiveReply:
        """A new turn starts: the previous reply can no longer be interrupted."""
        self._interrupt.clear()
        with self._lock:
            self.reply = LiveReply(user=user)
            return self.reply

    @property
    def interrupt_requested(self) -> bool:
        return self._interrupt.is_set()

    def barge_in(self, played: Sequence[PlayedClip], *, playing: bool) -> LiveReply | None:
        """The person started to speak: if the character is still speaking (a clip plays, or the
        reply is still being made), stop it and note what was heard. Returns the interrupted
        reply, or None when there was nothing to interrupt."""
        with self._lock:
            reply = self.reply
            if reply is None or reply.interrupted or not (playing or not reply.finished):
                return None
            heard = reply.heard_text(played)
            if not playing and heard == " ".join(reply.sentences).strip():
                return None  # all of it was heard already: nothing is cut off
            reply.interrupted = True
            reply.heard = heard
            self._interrupt.set()
            return reply

    def finish(self, reply: LiveReply, *, remembered: bool) -> bool:
        """The turn of `reply` is over. True when it was interrupted before this: then the
        caller keeps what was heard in memory (after this, `barge_in` does it)."""
        with self._lock:
            reply.finished = True
            reply.remembered = remembered
            return reply.interrupted


def parse_played(report: Any) -> list[PlayedClip]:
    """The page's report of the clips it stopped: a list of {src, t, d, ended}; junk is dropped."""
    clips: list[PlayedClip] = []
    if not isinstance(report, list):
        return clips
    for item in report[:200]:
        if not isinstance(item, dict) or not isinstance(item.get("src"), str):
            continue
        try:
            position = float(item.get("t") or 0.0)
            duration = float(item.get("d") or 0.0)
        except (TypeError, ValueError):
            continue
        clips.append(PlayedClip(item["src"][:2048], position, duration, bool(item.get("ended"))))
    return clips
