"""What a turn produces: the reply's text, its spoken sentences with their media, what failed.

A leaf: it imports nothing of chattr's, so the turn, the media fan-out and the page all build on
it without building on each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WordTime:
    """A word of a sentence as spoken, and when it ends in the sentence's audio, in seconds."""

    word: str
    end_s: float


@dataclass
class Segment:
    """One sentence of the reply and its media, as they become ready."""

    text: str
    emotion: str = "neutral"  # one of the 28 labels (chatacter_common.emotions)
    audio_url: str | None = None
    video_url: str | None = None
    audio_duration_s: float | None = None
    # Each word of `text` as vocalizr said it, in order; empty while unknown.
    words: tuple[WordTime, ...] = ()


@dataclass(frozen=True)
class TurnIssue:
    """A part of the turn that failed, named, with why; the rest of the turn still stands."""

    service: str
    detail: str


def add_issue(issues: list[TurnIssue], service: str, detail: str) -> None:
    """Note what failed; a service's first failure in a turn is the one that says why."""
    if not any(issue.service == service for issue in issues):
        issues.append(TurnIssue(service, detail))


@dataclass
class ReplyMedia:
    """A reply's speech and video as the media fan-out makes them."""

    segments: list[Segment] = field(default_factory=list)
    audio_url: str | None = None  # the whole reply's speech, joined
    video_url: str | None = None  # the whole reply's video, joined
    issues: list[TurnIssue] = field(default_factory=list)
    # Seconds from the start of the media to its first audio, first video, and joining.
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class TurnState:
    """Everything known about a turn so far; the last state of a turn is its result."""

    session_id: str
    character: str
    message: str
    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    audio_url: str | None = None
    video_url: str | None = None
    errors: list[TurnIssue] = field(default_factory=list)
    media: bool = False
    done: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def add_error(self, service: str, detail: str) -> None:
        add_issue(self.errors, service, detail)

    def show_media(self, media: ReplyMedia) -> None:
        """Take in the media made so far (the fan-out's own, read here, never written)."""
        self.segments = list(media.segments)
        self.audio_url = media.audio_url
        self.video_url = media.video_url
        for issue in media.issues:
            self.add_error(issue.service, issue.detail)
        for name, seconds in media.timings.items():
            self.timings.setdefault(name, seconds)

    def to_api(self) -> dict[str, Any]:
        """The `chat` API's JSON result."""
        return {
            "text": self.text,
            "session_id": self.session_id,
            "character": self.character,
            "audio_url": self.audio_url,
            "video_url": self.video_url,
            "segments": [
                {
                    "text": s.text,
                    "emotion": s.emotion,
                    "audio_url": s.audio_url,
                    "video_url": s.video_url,
                }
                for s in self.segments
            ],
            "errors": [asdict(e) for e in self.errors],
        }
