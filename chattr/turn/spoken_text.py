"""What of a reply is spoken: roleplay text is shown, not spoken.

A character's `voice.speak` chooses, as SillyTavern's text-to-speech offers:

- `all`: everything but markdown (the `*`, `#`, `>`, backticks and list marks are not read out;
  code blocks are skipped);
- `skip_actions` (the default): also leaves out `*actions*`, `(stage directions)` and
  `[bracketed notes]`;
- `quotes_only`: only "quoted" dialogue (straight or curly quotes, « », 「 」, 『 』), never a
  quote inside an action.

`SpeechFilter` works on the streamed reply, delta by delta, before it is cut into sentences, so an
action that spans sentences is left out whole. The page shows the full text.
"""

from __future__ import annotations

import re
from typing import Literal

from chattr.turn.sentences import is_tag_mark

SpeakMode = Literal["all", "skip_actions", "quotes_only"]

_OPENERS = {"“": "”", "«": "»", "„": "“", "「": "」", "『": "』"}
_LINE_MARK = re.compile(r"#{1,6}[ \t]+|>[ \t]?|[-+*][ \t]+")
_PARTIAL_MARK = re.compile(r"[ \t]*[#>+*-]*")
_HELD = "*`_~"  # a trailing one of these waits for the next delta: `**` is not `*`


class SpeechFilter:
    """Feed reply deltas; get back the text to speak, in the same order."""

    def __init__(self, mode: SpeakMode = "skip_actions") -> None:
        self.mode = mode
        self._held = ""
        self._line_start = True
        self._fence = False
        self._action = False
        self._parens = 0
        self._brackets = 0
        self._quote: str | None = None  # the closing mark of the open quote
        self._hidden = False

    def feed(self, delta: str) -> str:
        text = self._held + delta
        cut = len(text.rstrip(_HELD))
        # The start of a line waits until it shows whether it is a list mark or a heading.
        line = text.rfind("\n", 0, cut) + 1
        if (line or self._line_start) and _PARTIAL_MARK.fullmatch(text, line, cut):
            cut = line
        self._held = text[cut:]
        return self._filter(text[:cut])

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._filter(text)

    def _spoken(self) -> bool:
        if self._fence or (self._action and self.mode != "all"):
            return False
        if self.mode == "quotes_only":
            return self._quote is not None
        if self.mode == "skip_actions":
            return self._parens == 0 and self._brackets == 0
        return True

    def _filter(self, text: str) -> str:
        out: list[str] = []

        def emit(char: str) -> None:
            if self._spoken():
                out.append(char)
                self._hidden = False
            elif not self._hidden:
                out.append(" ")  # words on either side of a left-out span stay apart
                self._hidden = True

        i, n = 0, len(text)
        while i < n:
            char = text[i]
            if is_tag_mark(char):  # an emotion tag goes to speech whatever is spoken
                out.append(char)
                i += 1
                continue
            if text.startswith("```", i):
                self._fence = not self._fence
                i += 3
                emit(" ")
                continue
            if char == "\n":
                self._line_start = True
                emit(" " if self.mode == "quotes_only" else "\n")
                i += 1
                continue
            if self._fence:
                i += 1
                continue
            if self._line_start:
                if char in " \t":
                    emit(char)
                    i += 1
                    continue
                self._line_start = False
                mark = _LINE_MARK.match(text, i)
                if mark is not None:  # a heading, a block quote, a list item
                    i = mark.end()
                    continue
            if char == "*":
                if text.startswith("**", i):
                    i += 2  # bold: the marks go, the words stay
                    continue
                self._action = not self._action
                emit(" ")
                i += 1
                continue
            if char in "`~" or text.startswith("__", i):
                i += 2 if text.startswith("__", i) else 1
                continue
            if not self._action:
                if self._quote is not None and char == self._quote:
                    emit(char)
                    self._quote = None
                    emit(" ")
                    i += 1
                    continue
                if self._quote is None and (char == '"' or char in _OPENERS):
                    self._quote = '"' if char == '"' else _OPENERS[char]
                    emit(" ")
                    emit(char)
                    i += 1
                    continue
                if char in "([" and self._quote is None:
                    emit(" ")
                    if char == "(":
                        self._parens += 1
                    else:
                        self._brackets += 1
                    i += 1
                    continue
                if char == ")" and self._parens:
                    self._parens -= 1
                    emit(" ")
                    i += 1
                    continue
                if char == "]" and self._brackets:
                    self._brackets -= 1
                    emit(" ")
                    i += 1
                    continue
            emit(char)
            i += 1
        return "".join(out)


def spoken_sentence(sentence: str) -> str | None:
    """A sentence as it is sent to speech (spaces tidied), or None when it has no words."""
    text = " ".join(sentence.split())
    text = re.sub(r"\s+([,.!?;:…。！？،؟।])", r"\1", text)
    return text if any(char.isalnum() for char in text) else None
