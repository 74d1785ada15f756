"""The emotion labels every program shares, and the few expression shapes they map onto.

The labels are go-emotions' 28 as SillyTavern's expression sprites use them; a character folder's
`expressions/<label>.png` and `voice/<label>.wav` are named by them. The face and voice engines
cannot make 28 looks or tones, so each label maps onto one of a few shapes at some strength.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NEUTRAL = "neutral"
EMOTION_LABELS = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "neutral",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
)

Shape = Literal["joy", "sadness", "anger", "surprise"]
SHAPES: tuple[Shape, ...] = ("joy", "sadness", "anger", "surprise")


@dataclass(frozen=True)
class Expression:
    """A label as a face or a voice can show it: one shape at a strength (0: neutral)."""

    label: str
    shape: Shape | None
    strength: float


# Which shape each label looks like, and how strongly. Labels whose look is none of these (a
# curious or confused face is mostly in the eyes and the head's tilt) stay neutral.
_SHAPE_OF: dict[str, tuple[Shape, float]] = {
    "joy": ("joy", 1.0),
    "amusement": ("joy", 0.9),
    "excitement": ("joy", 1.0),
    "love": ("joy", 0.7),
    "admiration": ("joy", 0.6),
    "approval": ("joy", 0.5),
    "gratitude": ("joy", 0.6),
    "optimism": ("joy", 0.6),
    "pride": ("joy", 0.5),
    "relief": ("joy", 0.5),
    "caring": ("joy", 0.4),
    "sadness": ("sadness", 1.0),
    "grief": ("sadness", 1.0),
    "disappointment": ("sadness", 0.7),
    "remorse": ("sadness", 0.8),
    "embarrassment": ("sadness", 0.5),
    "anger": ("anger", 1.0),
    "annoyance": ("anger", 0.6),
    "disapproval": ("anger", 0.5),
    "disgust": ("anger", 0.7),
    "surprise": ("surprise", 1.0),
    "realization": ("surprise", 0.6),
    "fear": ("surprise", 0.8),
    "nervousness": ("surprise", 0.4),
}


class UnknownEmotion(ValueError):
    """A label that is not one of the 28; the message lists them."""


def normalize_label(label: str) -> str:
    """`label` lowercased and trimmed when it is one of the 28; UnknownEmotion otherwise."""
    cleaned = label.strip().lower()
    if cleaned not in EMOTION_LABELS:
        raise UnknownEmotion(f"unknown emotion {label[:40]!r}; known: {', '.join(EMOTION_LABELS)}")
    return cleaned


def expression_of(label: str | None) -> Expression:
    """The shape and strength a (normalized) label shows; None and unmapped labels: neutral."""
    if label is None or label not in _SHAPE_OF:
        return Expression(label or NEUTRAL, None, 0.0)
    shape, strength = _SHAPE_OF[label]
    return Expression(label, shape, strength)
