"""A live, hands-free conversation: utterances in, replies out, and barge-in by words.

One `LiveConversation` per page session. The microphone stream feeds its detector; each finished
utterance waits in `pending` until the page's turn handler takes it. While a reply is being made
or played, speech that starts is heard out first: once its transcript holds enough words (not
"mm-hm", not a cough, not the character's own words coming back from the speakers) it is a
barge-in: the page stops playback at once and reports what had been played; the running turn
stops making media; memory keeps only what was heard, to the word (vocalizr says when each word of
a clip is said), marked as interrupted. Speech over the reply that never reaches that many words
is a backchannel and no turn.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattr.reply import WordTime
from chattr.voice.turn_end import TurnModel, TurnModelMissing, default_model_path, load_turn_model
from chattr.voice.utterances import TurnOptions, Utterance, UtteranceCollector
from chattr.voice.vad import VadOptions

if TYPE_CHECKING:
    from chattr.settings import Settings

log = logging.getLogger(__name__)


# A clip played this far was heard whole (the end of a clip may report a little short).
HEARD_SHARE = 0.98


@dataclass(frozen=True)
class PlayedClip:
    """What the page reports of one clip of the reply when it was stopped."""

    src: str
    position_s: float  # how far it had played
    duration_s: float
    ended: bool


@dataclass
class LiveReply:
    """The reply being made and played: its sentences and their clips' URLs, in order. In a scene
    it is every member's reply to the message, one after another, each sentence with its
    speaker."""

    user: str
    sentences: list[str] = field(default_factory=list)
    clip_urls: list[set[str]] = field(default_factory=list)  # per sentence: its audio/video URLs
    speakers: list[str] = field(default_factory=list)  # in a scene: per sentence, who says it
    # Per sentence: the words of its speech and when each ends in its clip (empty: not known).
    words: list[tuple[WordTime, ...]] = field(default_factory=list)
    scene_session: str = ""  # in a scene: the scene's conversation id
    scene_lines: int = 0  # in a scene: the lines its message left in memory, once remembered
    finished: bool = False  # the turn is over (text, media and memory)
    remembered: bool = False  # the whole reply went into memory already
    interrupted: bool = False
    heard: str = ""  # what the person heard of it, once interrupted
    heard_by_speaker: list[tuple[str, str]] = field(default_factory=list)  # a scene: parts
    over: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def update(
        self,
        sentences: Sequence[str],
        urls: Sequence[Iterable[str | None]],
        speakers: Sequence[str] = (),
        words: Sequence[Iterable[WordTime]] = (),
    ) -> None:
        self.sentences = list(sentences)
        self.clip_urls = [{url for url in group if url} for group in urls]
        self.speakers = list(speakers)
        self.words = [tuple(timed) for timed in words]

    def heard_sentences(self, played: Sequence[PlayedClip]) -> list[tuple[int, str]]:
        """The sentences the person heard, in order, as (index, words heard): whole sentences
        played, then the words of the one cut off (`words_heard`)."""
        progress = self._progress(played)
        heard: list[tuple[int, str]] = []
        for index, sentence in enumerate(self.sentences):
            share, position_s = progress.get(index, (0.0, 0.0))
            if share >= HEARD_SHARE:
                heard.append((index, sentence))
                continue
            words = sentence.split()
            cut = self.words_heard(index, len(words), share, position_s)
            if cut:
                heard.append((index, " ".join(words[:cut])))
            break
        return heard

    def words_heard(self, index: int, count: int, share: float, position_s: float) -> int:
        """How many of the `count` words of a sentence cut off were heard: those whose speech
        ended by the clip's position, by vocalizr's word times; without them (or when they are
        not this sentence's words), as many as the share of the clip played."""
        timed = self.words[index] if index < len(self.words) else ()
        if timed and len(timed) == count:
            return sum(1 for _ in itertools.takewhile(lambda w: w.end_s <= position_s, timed))
        return int(count * share)

    def heard_text(self, played: Sequence[PlayedClip]) -> str:
        """The part of the reply the person heard (see `heard_sentences`)."""
        return " ".join(words for _, words in self.heard_sentences(played)).strip()

    def heard_parts(self, played: Sequence[PlayedClip]) -> list[tuple[str, str]]:
        """In a scene: what the person heard of each member's reply, (speaker, words), in the
        order spoken; the last is the one cut off (its words may be none), after it nothing."""
        parts: list[tuple[str, str]] = []
        heard = self.heard_sentences(played)
        for index, words in heard:
            speaker = self.speakers[index] if index < len(self.speakers) else ""
            if parts and parts[-1][0] == speaker:
                parts[-1] = (speaker, f"{parts[-1][1]} {words}")
            else:
                parts.append((speaker, words))
        cut = len(heard)
        if heard and heard[-1][1] != self.sentences[heard[-1][0]]:
            cut = heard[-1][0]  # the last heard sentence was itself cut off
        if cut < len(self.speakers) and (not parts or parts[-1][0] != self.speakers[cut]):
            parts.append((self.speakers[cut], ""))  # cut off before a word of it was heard
        return parts

    def all_heard(self, played: Sequence[PlayedClip]) -> bool:
        """Whether nothing of the reply is left to hear: every sentence's clip played to its
        end. A sentence without one is still to come while the reply is being made, and has
        nothing to hear once it is made (its media failed)."""
        progress = self._progress(played)
        return all(
            progress.get(index, (0.0, 0.0))[0] >= HEARD_SHARE
            if index < len(self.clip_urls) and self.clip_urls[index]
            else self.finished
            for index in range(len(self.sentences))
        )

    def _progress(self, played: Sequence[PlayedClip]) -> dict[int, tuple[float, float]]:
        """How much of each sentence's clip played, by sentence index: (share 0..1, seconds);
        the furthest of its clips (its audio, its video) where the page reports both."""
        progress: dict[int, tuple[float, float]] = {}
        for clip in played:
            for index, urls in enumerate(self.clip_urls):
                if any(_same_file(clip.src, url) for url in urls):
                    share = 1.0 if clip.ended else _share(clip.position_s, clip.duration_s)
                    position = clip.position_s if math.isfinite(clip.position_s) else 0.0
                    progress[index] = max(progress.get(index, (0.0, 0.0)), (share, position))
        return progress


# Silence after which the words so far are transcribed ahead, while the turn model (or, without
# one, the rest of the pause) decides whether the utterance has ended: half the model's pause, so
# the transcript is under way a microphone chunk before the turn is decided (bench/voice_turn.py:
# about 0.1 s sooner to the reply). A shorter pause would guess on the gaps between words.
GUESS_AFTER_S = 0.05
# Speech over a reply is transcribed once it is this long, and again each time it has grown as
# much: two words take about half a second.
WORD_CHECK_S = 0.5
# Sounds that keep a conversation going without taking the turn, as speech-to-text spells them.
BACKCHANNELS = frozenset(
    "mm mmm mm-hm mm-hmm mhm hm hmm hmm-hmm uh-huh uh huh um uhm ah oh okay ok yeah yep right "
    "aha ha haha".split()
)
# Of the words heard over a reply, this share found in the reply itself means they are its echo.
ECHO_SHARE = 0.7


def spoken_words(transcript: str) -> list[str]:
    """The words of a transcript that take the turn: lower case, without punctuation, without
    sound annotations ("[cough]", "(laughs)", "*sigh*") and backchannels."""
    plain = re.sub(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*", " ", transcript.lower())
    words = [w.strip(".,!?;:\"'…-") for w in plain.split()]
    return [w for w in words if w and w not in BACKCHANNELS and any(c.isalnum() for c in w)]


def is_echo(words: Sequence[str], reply_text: str) -> bool:
    """Whether the words heard are mostly the reply's own (its voice back through the speakers,
    which echo cancellation let through)."""
    if not words:
        return False
    said = set(spoken_words(reply_text))
    return sum(w in said for w in words) >= ECHO_SHARE * len(words)


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

    def __init__(
        self,
        options: VadOptions | None = None,
        *,
        turn_model: TurnModel | None = None,
        turn: TurnOptions | None = None,
        barge_in_words: int = 2,
    ) -> None:
        self.detector = UtteranceCollector(options, turn_model=turn_model, turn=turn)
        self.barge_in_words = barge_in_words
        self.pending: deque[Utterance] = deque()
        self.reply: LiveReply | None = None
        self.signals = 0  # counter the page watches: a new value means "look again"
        self.session_id = ""
        self.character_id = ""
        self._interrupt = threading.Event()
        self._stop_answered = threading.Event()  # the page answered a request to stop
        self._lock = threading.Lock()
        self._hearing = threading.Lock()  # one chunk at a time through the detector
        self._guessed: tuple[float, float] | None = None  # the pause last guessed on
        self._guess: tuple[tuple[float, float], Any] | None = None
        self._overlap: float | None = None  # start of the speech heard over the reply
        self._checked_s = 0.0  # how long that speech was when its words were last checked
        self.word_check: Any = None  # the transcription checking them (a task, say)
        self._checking: LiveReply | None = None  # the reply that speech was heard over
        self._stopping: LiveReply | None = None  # the reply the page was last asked to stop
        self._turn_told = False  # the page was told an utterance is ready and has not taken it
        self._turn_running = False  # a live turn is being taken: transcribed, answered
        self.overheard = ""  # the words of the speech that interrupted the reply

    # --- speech over the character's reply ---

    @property
    def character_speaking(self) -> bool:
        """A reply is being made (so it will play) and was not interrupted."""
        reply = self.reply
        return reply is not None and not reply.finished and not reply.interrupted

    def speech_over_reply(self, *, playing: bool) -> bool:
        """The person started to speak while the page was `playing` a clip (or the reply is
        still being made): their words are checked before playback stops. False when the
        character was silent, so the speech is an ordinary turn."""
        reply = self.reply
        start = self.detector.speech_start
        if start is None or reply is None or reply.interrupted:
            return False
        if not (playing or not reply.finished):
            return False
        with self._lock:
            if self._overlap != start:
                self._overlap, self._checked_s = start, 0.0
        return True

    def words_to_check(self) -> Utterance | None:
        """The speech over the reply so far, when it has grown by `WORD_CHECK_S` since its words
        were last checked and no check is running; None otherwise, and once the page has been
        asked to stop the reply. Its transcript goes to `words_checked`."""
        reply = self.reply
        if reply is None or reply.interrupted or reply is self._stopping:
            return None
        if self.word_check is not None:
            return None
        so_far = self.detector.so_far()
        if so_far is None or self._overlap != so_far.started_s:
            return None
        length = so_far.ended_s - so_far.started_s
        if length - self._checked_s < WORD_CHECK_S:
            return None
        self._checked_s = length
        self._checking = reply
        return so_far

    def words_checked(self, transcript: str) -> bool:
        """The transcript of the speech `words_to_check` gave: whether it interrupts the reply it
        was heard over. Never another one: a check that comes back after the next turn began
        (the speech it heard was that turn's message) interrupts nothing."""
        with self._lock:
            over, self._checking = self._checking, None
        return over is not None and over is self.reply and self.interrupts(transcript)

    def interrupts(self, transcript: str) -> bool:
        """Whether speech over the reply, transcribed, takes the turn: at least `barge_in_words`
        words that are neither backchannels nor the reply's echo."""
        reply = self.reply
        words = spoken_words(transcript)
        if reply is None or reply.interrupted or is_echo(words, " ".join(reply.sentences)):
            return False
        if len(words) >= max(1, self.barge_in_words):
            self.overheard = transcript.strip()
            return True
        return False

    def over_reply(self, utterance: Utterance) -> bool:
        """Whether this utterance began while the character spoke (and so needs the words)."""
        return self._overlap is not None and self._overlap == utterance.started_s

    def hear(self, sample_rate: int, chunk: Any) -> tuple[bool, bool]:
        """Feed one microphone chunk (the turn model may run: call it off the event loop).
        Returns (speech started, an utterance is ready)."""
        with self._hearing:
            heard = self.detector.feed(sample_rate, chunk)
            if heard.speech_started and self.character_speaking:
                self.speech_over_reply(playing=False)  # sure without asking the page
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

    # --- the page's live turns, one at a time ---

    def turn_to_tell(self) -> bool:
        """Whether to tell the page now that an utterance is ready (True once per turn): one
        waits, and no live turn runs or is about to. The page hands its turn handler the chat as
        it is when told; told while another turn runs, the handler would start only after it,
        from a chat that lacks the end of that turn, and show that older chat again."""
        with self._lock:
            if not self.pending or self._turn_running or self._turn_told:
                return False
            self._turn_told = True
            return True

    def start_turn(self) -> Utterance | None:
        """The page's turn handler starts: the utterance it takes, or None. `end_turn` after."""
        with self._lock:
            self._turn_told = False
            if not self.pending:
                return None
            self._turn_running = True
            return self.pending.popleft()

    def end_turn(self) -> None:
        """The turn handler is done: an utterance that waited can be told (`turn_to_tell`)."""
        with self._lock:
            self._turn_running = False

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
        """The page's answer to `asking_to_stop`: if the character is still speaking the reply it
        was asked to stop (a clip plays, or some of it is still to be heard), note what was
        heard and stop the turn. Returns the interrupted reply, or None when there was nothing
        to interrupt: it was interrupted already, no clip played and all of it had been heard,
        or a later reply has begun since (a late answer stops only what it was for)."""
        try:
            with self._lock:
                reply = self.reply
                if reply is None or reply is not self._stopping or reply.interrupted:
                    return None
                if not playing and reply.all_heard(played):
                    # The character had said all of it: nothing is cut off.
                    self._stopping = None
                    return None
                heard = reply.heard_text(played)
                reply.interrupted = True
                reply.heard = heard
                if reply.scene_session:
                    reply.heard_by_speaker = reply.heard_parts(played)
                self._interrupt.set()
                return reply
        finally:
            self._stop_answered.set()

    def asking_to_stop(self) -> None:
        """The page is about to be asked to stop playback of the current reply (`wait_stopped`
        waits for its answer, `barge_in`). From here no more of that reply's clips are shown."""
        with self._lock:
            self._stopping = self.reply
        self._stop_answered.clear()

    @property
    def stop_asked(self) -> bool:
        """The page has been asked to stop the current reply: its turn adds no more clips (one
        shown now would start playing after the page stopped the others)."""
        reply = self.reply
        return reply is not None and reply is self._stopping

    def wait_stopped(self, timeout_s: float) -> bool:
        """Block until the page answered the request to stop (True), or `timeout_s` passed."""
        return self._stop_answered.wait(timeout_s)

    def finish(self, reply: LiveReply, *, remembered: bool) -> bool:
        """The turn of `reply` is over. True when it was interrupted before this: then the
        caller keeps what was heard in memory (after this, `barge_in` does it)."""
        with self._lock:
            reply.finished = True
            reply.remembered = remembered
            reply.over.set()
            return reply.interrupted


@dataclass(frozen=True)
class Listening:
    """How live mode listens, from the settings: what ends a turn, what interrupts a reply."""

    turn_model: Path | None = field(default_factory=default_model_path)  # None: a pause alone
    turn: TurnOptions = field(default_factory=TurnOptions)
    barge_in_words: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> Listening:
        model = settings.turn_model
        return cls(
            turn_model=None if model == "off" else (Path(model) if model else default_model_path()),
            turn=TurnOptions(pause_s=settings.turn_pause_s, fallback_s=settings.turn_fallback_s),
            barge_in_words=settings.barge_in_words,
        )

    def model(self) -> TurnModel | None:
        """The turn model, loaded once per process; None (said in the log) when it is missing."""
        if self.turn_model is None:
            return None
        try:
            return load_turn_model(self.turn_model)
        except TurnModelMissing as exc:
            log.warning("%s; a pause alone ends a turn", exc)
            return None

    def conversation(self) -> LiveConversation:
        return LiveConversation(
            turn_model=self.model(), turn=self.turn, barge_in_words=self.barge_in_words
        )


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
