"""Scenes on the page: several characters in one conversation. The person picks the members and
starts a scene (its own conversation id, kept in the browser beside the one-to-one chat's), adds
or removes members in it, says who answers (natural, list, pooled, manual) or lets one member
speak. Each line shows its speaker's name and portrait; a reply's clips play in the order spoken,
one member's after the other's; beside the chat a stage holds every member's portrait, and the one
speaking moves (its clip's video plays in its place). Messages run through the app's scene loop
(`chattr.scene.loop`), as the `scene` API's do; spoken ones too (`chattr.voice.controls`).
"""

from __future__ import annotations

import html
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

import gradio as gr

from chattr.characters.character_set import Character
from chattr.memory import SCENE_KEY, Turn
from chattr.reply import TurnState
from chattr.scene.loop import SceneLoop
from chattr.scene.state import SceneState
from chattr.turn.personal_data import MediaIndexUnavailable, TurnMedia
from chattr.turn.prompt import USER_NAME
from chattr.voice.controls import INTERRUPTED, mark_interrupted
from chattr.web.api import new_session_id
from chattr.web.browser_state import STRATEGIES, PageScene, stored_scene
from chattr.web.handlers import ChatPage, Message, served_url

STRATEGY_CHOICES = [
    ("Natural: those named, then whoever feels like it", "natural"),
    ("List: everyone, in order", "list"),
    ("Pooled: one who has not spoken yet", "pooled"),
    ("Manual: only whom I let speak", "manual"),
]

CSS = """
#chattr-scene-stage { display: flex; flex-direction: column; gap: 8px; }
#chattr-scene-stage .chattr-slot {
  margin: 0; text-align: center; border: 3px solid transparent; border-radius: 10px;
  opacity: 0.7; transition: transform 0.2s, opacity 0.2s;
}
#chattr-scene-stage .chattr-slot.speaking {
  border-color: var(--color-accent); opacity: 1; transform: scale(1.04);
}
#chattr-scene-stage .chattr-slot img, #chattr-scene-stage .chattr-slot video {
  width: 100%; max-height: 240px; object-fit: contain; border-radius: 8px;
}
#chattr-scene-stage .chattr-slot video { display: none; }
#chattr-scene-stage .chattr-slot.moving video { display: block; }
#chattr-scene-stage .chattr-slot.moving img { display: none; }
#chattr-scene-stage figcaption { font-size: 0.85em; }
#chattr-chat .chattr-speaker { display: flex; align-items: center; gap: 0.5em; }
#chattr-chat .chattr-speaker img {
  width: 40px; height: 40px; margin: 0; border-radius: 50%; object-fit: cover;
}
"""

# The stage follows the chat: when a member's clip plays there, that member's place on the stage
# is marked as speaking and, for a video, plays the same clip without sound, in step with it.
STAGE_JS = """
() => {
  if (window.chattrStage) return;
  const speakerOf = (clip) => {
    const figure = clip.closest('figure');
    const found = figure && /(?:^|\\s)chattr-by-([a-z0-9_-]+)/.exec(figure.className);
    return found ? found[1] : null;
  };
  const slotOf = (id) => id && document.querySelector(
    `#chattr-scene-stage .chattr-slot[data-member="${id}"]`);
  const stage = {
    current: null,
    speaking() { return stage.current ? stage.current.id : null; },
    stop(clip) {
      const now = stage.current;
      if (!now || (clip && now.clip !== clip)) return;
      stage.current = null;
      now.slot.classList.remove('speaking', 'moving');
      const face = now.slot.querySelector('video');
      if (face) face.pause();
    },
  };
  const inChat = (el) => el instanceof HTMLMediaElement && el.closest('#chattr-chat');
  document.addEventListener('play', (event) => {
    const clip = event.target;
    if (!inChat(clip)) return;
    stage.stop();
    const id = speakerOf(clip);
    const slot = slotOf(id);
    if (!slot) return;
    stage.current = {clip, slot, id};
    // On the clip itself: a clip the chat re-renders away pauses outside the document, where
    // the document's listeners below never hear it.
    for (const name of ['pause', 'ended']) {
      clip.addEventListener(name, () => stage.stop(clip), {once: true});
    }
    slot.classList.add('speaking');
    const face = slot.querySelector('video');
    if (clip.tagName === 'VIDEO' && face) {
      if (face.src !== clip.currentSrc) face.src = clip.currentSrc;
      face.currentTime = clip.currentTime;
      slot.classList.add('moving');
      face.play().catch(() => slot.classList.remove('moving'));
    }
  }, true);
  for (const name of ['pause', 'ended', 'emptied']) {
    document.addEventListener(name, (event) => {
      if (inChat(event.target)) stage.stop(event.target);
    }, true);
  }
  document.addEventListener('timeupdate', (event) => {
    const now = stage.current;
    if (!now || now.clip !== event.target) return;
    const face = now.slot.querySelector('video');
    if (face && Math.abs(face.currentTime - now.clip.currentTime) > 0.3) {
      face.currentTime = now.clip.currentTime;
    }
  }, true);
  window.chattrStage = stage;
}
"""


def _clip(kind: str, url: str, caption: str, speaker: str) -> str:
    """A member's clip in the chat, named by its figure's class (the stage reads it; the chat's
    sanitizer keeps classes, not data attributes). No autoplay: the page plays a scene's clips
    one after another, in the order spoken."""
    extra = ' playsinline style="max-width:100%"' if kind == "video" else ""
    return (
        f'<figure class="chattr-clip chattr-by-{html.escape(speaker)}">'
        f"<figcaption>{html.escape(caption)}</figcaption>"
        f'<{kind} src="{html.escape(url)}" controls preload="auto"{extra}></{kind}></figure>'
    )


def _whole(made: TurnMedia | TurnState, speaker: str, name: str) -> str | None:
    """A reply's joined clip (the page's sequencer skips it: its captions start the same)."""
    if made.video_url:
        return _clip("video", made.video_url, f"The whole reply · {name}", speaker)
    if made.audio_url:
        return _clip("audio", made.audio_url, f"The whole reply (speech) · {name}", speaker)
    return None


PENDING = '<p class="chattr-pending">'


def _note(lines: Sequence[str], *, pending: bool = False) -> str:
    # `chattr-pending` marks a reply whose next clip is still being made: the clips after it (a
    # later member's) wait for it.
    return (PENDING if pending else "<p>") + "<br>".join(lines) + "</p>"


def _pending(message: Message) -> bool:
    """A note that more clips are coming (the page sends messages back as lists of parts)."""
    content = message.get("content")
    parts = content if isinstance(content, list) else [content]
    texts = (p.get("text") if isinstance(p, dict) else p for p in parts)
    return any(isinstance(t, str) and t.startswith(PENDING) for t in texts)


class ScenePage:
    """The page's scene handlers, over the one-to-one page (`ChatPage`: its characters, portraits
    and chat) and the app's scene loop. It is also how a spoken message runs in a scene
    (`chattr.voice.controls.SceneVoice`)."""

    def __init__(self, page: ChatPage, scenes: SceneLoop) -> None:
        self.page = page
        self.scenes = scenes
        self.runner = scenes.runner
        self.loop = page.loop
        self.characters = page.characters

    # --- what the browser kept ---

    def scene_of(self, stored: Any) -> PageScene | None:
        return stored_scene(stored, self.characters.characters)

    def active(self, stored: Any) -> PageScene | None:
        """The scene the page shows, or None when it shows a one-to-one chat."""
        scene = self.scene_of(stored)
        return scene if scene is not None and scene.active else None

    def _strategy(self, chosen: Any, scene: PageScene) -> str:
        return chosen if chosen in STRATEGIES else scene.strategy

    # --- what it shows ---

    def _character(self, cid: str) -> Character | None:
        return self.characters.characters.get(cid)

    def _name(self, cid: str) -> str:
        character = self._character(cid)
        return character.name if character is not None else cid

    def speaker_header(self, cid: str) -> str:
        """A line's speaker: portrait and name."""
        character = self._character(cid)
        name = html.escape(self._name(cid))
        portrait = self.page.shelf.path_for(character) if character is not None else None
        avatar = (
            f'<img class="chattr-avatar" src="{served_url(portrait)}" alt="{name}" '
            'width="40" height="40">'
            if portrait is not None
            else ""
        )
        return (
            f'<div class="chattr-speaker chattr-by-{html.escape(cid)}">{avatar}'
            f"<strong>{name}</strong></div>"
        )

    def line(self, cid: str, text: str) -> Message:
        """A member's line in the chat, under its name and portrait."""
        return {"role": "assistant", "content": f"{self.speaker_header(cid)}\n\n{text}"}

    def stage(self, members: Sequence[str]) -> str:
        """Beside the chat: every member's portrait in its place, where its clips play."""
        slots = []
        for cid in members:
            character = self._character(cid)
            if character is None:
                continue
            name = html.escape(character.name)
            portrait = self.page.shelf.path_for(character)
            face = f'<img src="{served_url(portrait)}" alt="{name}">' if portrait else ""
            slots.append(
                f'<figure class="chattr-slot" data-member="{html.escape(cid)}">{face}'
                '<video muted playsinline preload="auto"></video>'
                f"<figcaption>{name}</figcaption></figure>"
            )
        return '<div id="chattr-scene-stage">' + "".join(slots) + "</div>"

    def greetings(self, members: Sequence[str]) -> list[Message]:
        """How a scene opens: each member's greeting (a card's scene-only one first), as the
        runner will remember them with the first message."""
        shown = []
        for cid in members:
            character = self._character(cid)
            if character is not None:
                shown.append(
                    self.line(cid, character.render(character.scene_greeting(), USER_NAME))
                )
        return shown

    def history(self, scene: PageScene) -> list[Message]:
        """The scene as the page shows it: its transcript, the members' greetings first, each
        line under its speaker, with its whole reply's clip; a new scene, its greetings."""
        try:
            turns: list[Turn] = self.runner.transcript(scene.session_id)
        except Exception:  # a memory outage must not blank the page
            turns = []
        if not turns:
            return self.greetings(scene.members)
        kept = self.kept_media(scene.session_id)
        messages: list[Message] = []
        for turn in turns:
            if turn.user:
                messages.append({"role": "user", "content": turn.user})
            if not turn.assistant:
                continue
            suffix = INTERRUPTED if turn.interrupted else ""
            messages.append(self.line(turn.speaker, turn.assistant + suffix))
            made = kept.get((turn.speaker, turn.assistant))
            if made:
                player = _whole(made.pop(0), turn.speaker, self._name(turn.speaker))
                if player is not None:
                    messages.append({"role": "assistant", "content": player})
        return messages

    def kept_media(self, session_id: str) -> dict[tuple[str, str], list[TurnMedia]]:
        """The scene's replies' joined media, by speaker and words, oldest first."""
        try:
            made = self.loop.personal.turn_media(session_id)
        except MediaIndexUnavailable:
            return {}
        kept: dict[tuple[str, str], list[TurnMedia]] = {}
        for turn in made:
            if turn.audio_url or turn.video_url:
                kept.setdefault((turn.character, turn.assistant), []).append(turn)
        return kept

    def reply_media(self, reply: TurnState) -> list[str]:
        """A member's reply's clips (HTML), in order, each once it is ready (a later sentence
        waits for an earlier one), then the whole reply's, and a line of progress (while more
        will come) or of what failed."""
        name = self._name(reply.character)
        messages: list[str] = []
        if reply.media:
            video_off = any(e.service == "visualizr" for e in reply.errors)
            for index, segment in enumerate(reply.segments):
                caption = f"{name} · sentence {index + 1}"
                if segment.emotion != "neutral":
                    caption += f" · {segment.emotion}"
                if segment.video_url:
                    messages.append(_clip("video", segment.video_url, caption, reply.character))
                elif segment.audio_url and (video_off or reply.done):
                    messages.append(
                        _clip("audio", segment.audio_url, f"{caption} (speech)", reply.character)
                    )
                else:
                    break
            whole = _whole(reply, reply.character, name) if reply.done else None
            if whole is not None:
                messages.append(whole)
            if not reply.done:
                made = sum(1 for s in reply.segments if s.video_url)
                messages.append(
                    _note(
                        [
                            f"<em>Making {html.escape(name)}'s speech and video… {made} of "
                            f"{len(reply.segments)} sentences ready</em>"
                        ],
                        pending=True,
                    )
                )
        if reply.errors:
            details = "; ".join(f"{e.service}: {e.detail}" for e in reply.errors)
            messages.append(_note([f"<small>⚠ {html.escape(details)}</small>"]))
        return messages

    def shown(self, base: list[Message], message: str, state: SceneState) -> list[Message]:
        """The chat with a scene message and its replies so far: each member's line, then its
        clips, in the order spoken."""
        messages = list(base)
        if message:
            messages.append({"role": "user", "content": message})
        for reply in state.replies:
            text = reply.text or ("" if reply.done else "…")
            messages.append(self.line(reply.character, text))
            messages.extend(
                {"role": "assistant", "content": content} for content in self.reply_media(reply)
            )
        if state.errors:
            details = "; ".join(f"{e.service}: {e.detail}" for e in state.errors)
            messages.append(
                {
                    "role": "assistant",
                    "content": _note([f"<small>⚠ {html.escape(details)}</small>"]),
                }
            )
        return messages

    def mode(self, in_scene: bool) -> tuple[Any, Any, Any]:
        """The controls of one kind of conversation: (the one-to-one chat's greeting, its undo
        and regenerate, the scene's own controls)."""
        return (
            gr.update(visible=not in_scene),
            gr.update(visible=not in_scene),
            gr.update(visible=in_scene),
        )

    def speaker_choices(self, members: Sequence[str]) -> Any:
        return gr.update(choices=[(self._name(m), m) for m in members], value=None)

    def member_choices(self) -> Any:
        """The scene-members picker's choices: every character (an import adds one)."""
        return gr.update(choices=self.page.picker_choices())

    # --- starting, changing and leaving a scene ---

    def start(self, picked: Any, stored: Any, strategy: Any) -> tuple[Any, ...]:
        """Start a new scene of the picked characters (two or more), in a conversation of its
        own; it opens with their greetings. The scene before it starts over, as "New
        conversation" starts a chat over. Fewer than two picked: the chat stays as it is."""
        members = tuple(m for m in dict.fromkeys(picked or []) if m in self.characters.characters)
        if len(members) < 2:
            gr.Warning("Pick two or more characters for a scene.")
            return (gr.skip(),) * 7
        earlier = self.scene_of(stored)
        if earlier is not None:
            self.page.service.reset(earlier.session_id, SCENE_KEY)
        chosen = strategy if strategy in STRATEGIES else "natural"
        scene = PageScene(new_session_id(), members, chosen)
        return (
            scene.stored(),
            self.history(scene),
            self.stage(scene.members),
            self.speaker_choices(scene.members),
            *self.mode(True),
        )

    def leave(self, cid: str | None, session_id: str, stored: Any) -> tuple[Any, ...]:
        """Back to the one-to-one chat with the character picked. The scene's id stays in the
        browser (so "Forget me" still reaches it) until a new scene starts."""
        scene = self.active(stored)
        if scene is None:
            return (gr.skip(),) * 6
        left = PageScene(scene.session_id, (), scene.strategy)
        character = self._character(cid) if cid else None
        chat = self.page.history_for(character, session_id) if character is not None else []
        return (left.stored(), chat, self.page.stage(cid), *self.mode(False))

    def change_members(self, picked: Any, stored: Any) -> tuple[Any, ...]:
        """Members join or leave the scene under way: the next message uses the new list; the
        transcript stays (a scene not yet begun shows the new members' greetings)."""
        scene = self.active(stored)
        if scene is None:  # not in a scene: the pick waits for "Start scene"
            return (gr.skip(),) * 5
        members = tuple(m for m in dict.fromkeys(picked or []) if m in self.characters.characters)
        if len(members) < 2:
            gr.Warning("A scene needs two or more members; to talk to one, leave the scene.")
            return gr.skip(), gr.update(value=list(scene.members)), gr.skip(), gr.skip(), gr.skip()
        changed = PageScene(scene.session_id, members, scene.strategy)
        try:
            begun = bool(self.runner.transcript(scene.session_id))
        except Exception:  # the chat stays as it is
            begun = True
        return (
            changed.stored(),
            gr.skip(),
            self.stage(members),
            self.speaker_choices(members),
            gr.skip() if begun else self.greetings(members),
        )

    def set_strategy(self, strategy: Any, stored: Any) -> Any:
        """Who answers, kept with the scene (a reload keeps it)."""
        scene = self.scene_of(stored)
        if scene is None or strategy not in STRATEGIES:
            return gr.skip()
        return PageScene(scene.session_id, scene.members, strategy).stored()

    # --- the one-to-one page's controls, aware of the scene ---

    def choose(self, cid: str | None, session_id: str, stored: Any) -> tuple[Any, ...]:
        """A character picked (or resumed): the one-to-one chat's, unless the page shows a
        scene, which stays."""
        chosen = self.page.choose(cid, session_id)
        if self.active(stored) is None:
            return chosen
        return chosen[0], gr.skip(), *chosen[2:]

    def stage_for(self, cid: str | None, stored: Any) -> Any:
        return gr.skip() if self.active(stored) is not None else self.page.stage(cid)

    def start_over(
        self, cid: str, session_id: str, chosen: int | None, stored: Any
    ) -> tuple[Any, ...]:
        """ "New conversation": in a scene, a new scene of the same members."""
        scene = self.active(stored)
        if scene is None:
            return (*self.page.start_over(cid, session_id, chosen), gr.skip())
        self.page.service.reset(scene.session_id, SCENE_KEY)
        fresh = PageScene(new_session_id(), scene.members, scene.strategy)
        return gr.skip(), self.history(fresh), fresh.stored()

    def download(self, session_id: str, stored: Any) -> Any:
        """The conversation shown: the scene's, in a scene."""
        scene = self.active(stored)
        return self.page.download_conversation(scene.session_id if scene else session_id)

    def forget_page(self, cid: str, session_id: str, stored: Any) -> tuple[Any, ...]:
        """ "Forget me": the one-to-one conversation and the scene's are both deleted; a scene
        shown starts over, its members kept."""
        scene = self.scene_of(stored)
        if scene is not None:
            report = self.page.api.forget(scene.session_id)
            if report["not_deleted"]:
                gr.Warning("Not deleted: " + "; ".join(report["not_deleted"]))
        fresh, chat, files = self.page.forget_page(cid, session_id)
        if scene is None:
            return fresh, chat, files, gr.skip()
        renewed = PageScene(new_session_id(), scene.members, scene.strategy)
        if renewed.active:
            chat = self.history(renewed)
        return fresh, chat, files, renewed.stored()

    def resume(self, stored_session: Any, stored_cid: Any, stored: Any) -> tuple[Any, ...]:
        """On page load: the one-to-one conversation the browser kept (`ChatPage.resume`), and
        the scene, when it kept one: its members, who answers, its transcript, its stage."""
        resumed = self.page.resume(stored_session, stored_cid)
        scene = self.active(stored)
        members = gr.update(choices=self.page.picker_choices(), value=[])
        if scene is None:
            kept = self.scene_of(stored)
            return (
                *resumed,
                kept.stored() if kept is not None else gr.skip(),
                members,
                gr.skip(),
                self.page.stage(resumed[1]),
                gr.skip(),
                *self.mode(False),
            )
        return (
            *resumed[:3],
            self.history(scene),
            *resumed[4:],
            scene.stored(),
            gr.update(choices=self.page.picker_choices(), value=list(scene.members)),
            gr.update(value=scene.strategy),
            self.stage(scene.members),
            self.speaker_choices(scene.members),
            *self.mode(True),
        )

    # --- messages ---

    async def send(
        self,
        message: str,
        history: list[Message],
        cid: str,
        session_id: str,
        with_media: bool,
        chosen: int | None,
        stored: Any = None,
        strategy: Any = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """The message box: to the scene when the page shows one (an empty message lets the
        members go on talking), else to the character (`ChatPage.respond`)."""
        if self.active(stored) is None:
            async for update in self.page.respond(
                message, history, cid, session_id, with_media, chosen, request
            ):
                yield update
            return
        said = self.say(
            stored, history, message, media=with_media, strategy=strategy, request=request
        )
        async for shown, _ in said:
            yield shown, "", gr.skip()

    async def let_speak(
        self,
        speaker: Any,
        history: list[Message],
        with_media: bool,
        stored: Any = None,
        strategy: Any = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[list[Message]]:
        """ "Let … speak": that member alone says its next line, with no message."""
        if not speaker:
            raise gr.Error("Pick the member who speaks next.")
        said = self.say(
            stored,
            history,
            "",
            media=with_media,
            strategy=strategy,
            request=request,
            speaker=speaker,
        )
        async for shown, _ in said:
            yield shown

    def scene_session(self, stored: Any) -> str | None:
        scene = self.active(stored)
        return scene.session_id if scene is not None else None

    async def say(
        self,
        stored: Any,
        history: list[Message],
        message: str,
        *,
        media: bool,
        strategy: Any,
        request: Any,
        stop: Callable[[], bool] = lambda: False,
        speaker: str = "",
    ) -> AsyncGenerator[tuple[list[Message], SceneState], None]:
        """A message in the scene the page shows, through the app's scene loop (its gate, its
        records): the chat and the scene's state after every change. Once `stop()` says so
        the replies stop (their media too), and the last chat shows them stopped."""
        with self.loop.refusals_shown():
            scene = self.active(stored)
            if scene is None:
                raise gr.Error("There is no scene on the page: pick its members and start it.")
            checked = self.runner.validate(
                message,
                list(scene.members),
                scene.session_id,
                strategy=self._strategy(strategy, scene),
                speaker=speaker,
                media=bool(media),
            )
        # What the chat held when the message was sent is over: nothing in it is still coming
        # (a message talked over may not have had its last word on the page yet).
        base = [m for m in history or [] if not _pending(m)]
        shown = base
        state: SceneState | None = None
        async with self.scenes.scene(request, checked) as turn:
            async for state in turn:
                if stop():  # no clip more once the person has talked over them
                    break
                shown = self.shown(base, checked.message, state)
                yield shown, state
                if stop():
                    break
        if state is not None and not state.done:
            # Stopped: no clip more, and none waited for (what was shown stays).
            yield [m for m in shown if not _pending(m)], state

    def keep_heard(
        self, session_id: str, said: str, heard: Sequence[tuple[str, str]], *, replaces: int
    ) -> None:
        self.scenes.keep_heard(session_id, said, heard, replaces=replaces)

    def mark_cut(self, history: list[Message], speaker: str) -> list[Message]:
        return mark_interrupted(history, marker=f'chattr-by-{speaker}"')
