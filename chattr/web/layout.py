"""The Gradio page's layout: its components, in order, wired to the page's handlers
(`chattr.web.handlers`), the scene's (`chattr.web.scene_page`) and the voice controls'
(`chattr.voice.controls`), plus the named API endpoints (`chattr.web.api`), as one Blocks; all of
them run turns through one turn loop (a scene's messages through its scene loop, beside it)."""

from __future__ import annotations

import gradio as gr

from chattr.access.gate import Gate
from chattr.scene.loop import SceneLoop
from chattr.scene.runner import SceneRunner
from chattr.settings import Settings
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData, open_media_index
from chattr.turn.service import ChatService
from chattr.voice.controls import CSS as VOICE_CSS
from chattr.voice.controls import PAGE_JS as VOICE_JS
from chattr.voice.controls import VoiceControls
from chattr.voice.live import Listening
from chattr.web.api import ChatApi
from chattr.web.browser_state import (
    CHARACTER_KEY,
    SCENE_STORAGE_KEY,
    SESSION_KEY,
    browser_secret,
)
from chattr.web.handlers import ChatPage, StatusSource, greeting_choices, media_messages, sync_media
from chattr.web.scene_page import CSS as SCENE_CSS
from chattr.web.scene_page import STAGE_JS, STRATEGY_CHOICES, ScenePage

CSS = """
#chattr-gallery { min-height: 140px; }
#chattr-chat figure { margin: 0.4em 0; }
#chattr-chat figcaption { font-size: 0.8em; opacity: 0.7; }
#chattr-face { margin: 0; text-align: center; }
#chattr-face img { width: 100%; max-height: 520px; object-fit: contain; border-radius: 8px; }
/* On a phone the conversation comes first, the character picker below it. */
@media (max-width: 640px) {
  #chattr-side { min-width: 100% !important; order: 2; }
  #chattr-main { order: 1; }
}
"""


def build_blocks(
    service: ChatService,
    settings: Settings,
    *,
    status: StatusSource | None = None,
    gate: Gate | None = None,
) -> gr.Blocks:
    """The whole page, plus the API endpoints, as one Blocks; `gate` (default: from the
    settings) is the app's fair-use gate, which its upload guard shares."""
    # The page, its voice controls and the API: one loop, so one gate and one way to refuse.
    loop = TurnLoop(
        service,
        gate=gate or Gate.from_settings(settings),
        personal=PersonalData(
            service,
            settings.data_dir,
            open_media_index(
                settings.data_dir,
                settings.redis_url,
                prefix=settings.redis_prefix,
                retention_s=settings.media_retention_s,
            ),
        ),
        public_url=settings.fixed_public_url,
        shown_as=gr.Error,
    )
    scenes = SceneLoop(loop, SceneRunner(service, max_replies=settings.scene_max_replies))
    api = ChatApi(loop, settings, scenes=scenes)
    page = ChatPage(api, status=status)
    scene_page = ScenePage(page, scenes)
    voice = VoiceControls(
        loop,
        media_messages=media_messages,
        sync_media=sync_media,
        listening=Listening.from_settings(settings),
        scenes=scene_page,
    )
    characters = service.characters
    ids = page.ids()
    first = ids[0] if ids else None

    # The conversation id and the character live in the browser, not in Gradio's session (one
    # replica's memory): a page reloaded onto any replica continues the conversation.
    secret = browser_secret(settings)
    demo = gr.Blocks(title="Chatacter")
    with demo:
        session = gr.BrowserState("", storage_key=SESSION_KEY, secret=secret)
        character = gr.BrowserState(first, storage_key=CHARACTER_KEY, secret=secret)
        # The scene the page shows: its own conversation id, its members, who answers.
        scene = gr.BrowserState({}, storage_key=SCENE_STORAGE_KEY, secret=secret)
        gr.Markdown("# Chatacter\nPick a character and talk to them: text, voice and video.")
        if loop.gate.sign_in is not None:  # CHATTR_HF_SIGNIN: Gradio's OAuth routes come with it
            gr.LoginButton(elem_id="chattr-login")
        status_md = gr.Markdown(page.status_text(), elem_id="chattr-status")
        timer = gr.Timer(1.0)
        timer.tick(
            page.refresh_status, outputs=[status_md, timer], queue=False, api_visibility="private"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260, elem_id="chattr-side"):
                gallery = gr.Gallery(
                    value=page.gallery_items(),
                    label="Characters",
                    columns=2,
                    allow_preview=False,
                    elem_id="chattr-gallery",
                    height="auto",
                )
                picker = gr.Dropdown(
                    choices=page.picker_choices(),
                    value=first,
                    label="Character",
                    elem_id="chattr-character",
                )
                with gr.Column(elem_id="chattr-greeting-box") as greeting_box:
                    greeting = gr.Dropdown(
                        choices=greeting_choices(characters.get(first) if first else None),
                        value=0,
                        label="Greeting (choosing one starts a new conversation)",
                        elem_id="chattr-greeting",
                    )
                card = gr.Markdown(page.character_card(first), elem_id="chattr-card")
                # A scene: several characters in one conversation, each in its own voice.
                members = gr.Dropdown(
                    choices=page.picker_choices(),
                    value=[],
                    multiselect=True,
                    label="Scene members (two or more)",
                    elem_id="chattr-scene-members",
                )
                start_scene = gr.Button("Start scene", size="sm", elem_id="chattr-scene-start")
                with gr.Column(visible=False, elem_id="chattr-scene-controls") as scene_controls:
                    strategy = gr.Radio(
                        choices=STRATEGY_CHOICES,
                        value="natural",
                        label="Who answers",
                        elem_id="chattr-scene-strategy",
                    )
                    with gr.Row():
                        speaker = gr.Dropdown(
                            choices=[],
                            label="Let … speak",
                            elem_id="chattr-scene-speaker",
                            scale=2,
                        )
                        let_speak = gr.Button(
                            "Speak", size="sm", elem_id="chattr-scene-speak", scale=1
                        )
                    leave_scene = gr.Button("Leave scene", size="sm", elem_id="chattr-scene-leave")
                upload = gr.File(
                    label="Import a character: a card (.json, .png, .charx) or a folder (.zip)",
                    file_types=[".json", ".png", ".zip", ".charx"],
                    type="filepath",
                    elem_id="chattr-import",
                )
                upload_note = gr.Markdown(elem_id="chattr-import-note")
            with gr.Column(scale=3, min_width=320, elem_id="chattr-main"):
                with gr.Row(equal_height=False):
                    chatbot = gr.Chatbot(
                        value=page.first_history(first),  # type: ignore[arg-type]
                        label="Conversation",
                        height=520,
                        elem_id="chattr-chat",
                        sanitize_html=True,
                        feedback_options=None,
                        scale=3,
                    )
                    # The face of the sentence being said (its sprite, else the portrait), and
                    # the character's background behind the chat; no click events of its own.
                    stage = gr.HTML(
                        page.stage(first),
                        js_on_load=None,
                        elem_id="chattr-stage",
                        scale=1,
                        min_width=160,
                    )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Say something…",
                        label="Your message",
                        scale=5,
                        max_length=settings.max_message_chars,
                        elem_id="chattr-message",
                        submit_btn=True,
                    )
                with gr.Row():
                    media_on = gr.Checkbox(
                        value=service.media is not None,
                        label="Speech and video",
                        interactive=service.media is not None,
                        elem_id="chattr-media",
                    )
                    with gr.Row(elem_id="chattr-chat-only") as chat_only:
                        regenerate = gr.Button("Regenerate", size="sm")
                        undo = gr.Button("Undo last turn", size="sm")
                    new_chat = gr.Button("New conversation", size="sm")
                voice.lay_out(
                    chatbot=chatbot,
                    character=character,
                    session=session,
                    media_on=media_on,
                    scene=scene,
                    strategy=strategy,
                )
                with gr.Row():
                    download = gr.Button(
                        "Download my conversation", size="sm", elem_id="chattr-download"
                    )
                    forget_me = gr.Button(
                        "Forget me", size="sm", variant="stop", elem_id="chattr-forget"
                    )
                my_data = gr.File(label="Your conversation", visible=False, elem_id="chattr-export")

        # What shows which conversation: the one-to-one chat's controls or the scene's.
        mode = [greeting_box, chat_only, scene_controls]
        upload.upload(
            page.import_character,
            [upload, session],
            [picker, gallery, upload_note],
            api_visibility="private",
        ).then(scene_page.member_choices, None, members, api_visibility="private")
        # A character picked by the person (not by a page load) leaves the scene shown.
        gallery.select(page.select_from_gallery, None, picker, api_visibility="private").then(
            scene_page.leave,
            [picker, session, scene],
            [scene, chatbot, stage, *mode],
            api_visibility="private",
        )
        picker.change(
            scene_page.choose,
            [picker, session, scene],
            [character, chatbot, card, greeting],
            api_visibility="private",
        )
        # The picker also changes when a page load resumes a character or an import adds one.
        picker.change(scene_page.stage_for, [picker, scene], stage, api_visibility="private")
        picker.input(
            scene_page.leave,
            [picker, session, scene],
            [scene, chatbot, stage, *mode],
            api_visibility="private",
        )

        # Scenes: start one, change its members, who answers, let one speak, leave it.
        start_scene.click(
            scene_page.start,
            [members, scene, strategy],
            [scene, chatbot, stage, speaker, *mode],
            api_visibility="private",
        )
        members.input(
            scene_page.change_members,
            [members, scene],
            [scene, members, stage, speaker, chatbot],
            api_visibility="private",
        )
        strategy.input(scene_page.set_strategy, [strategy, scene], scene, api_visibility="private")
        let_speak.click(
            scene_page.let_speak,
            [speaker, chatbot, media_on, scene, strategy],
            chatbot,
            api_visibility="private",
            concurrency_limit=None,
        )
        leave_scene.click(
            scene_page.leave,
            [character, session, scene],
            [scene, chatbot, stage, *mode],
            api_visibility="private",
        )

        # Turns take their slot in the gate (fairly shared), not in Gradio's first-come queue.
        # The message goes to the scene when the page shows one.
        box.submit(
            scene_page.send,
            [box, chatbot, character, session, media_on, greeting, scene, strategy],
            [chatbot, box, stage],
            api_visibility="private",
            concurrency_limit=None,
        )
        undo.click(
            page.drop_last_turn,
            [chatbot, character, session],
            [chatbot, box],
            api_visibility="private",
        )
        regenerate.click(
            page.regenerate_last,
            [chatbot, character, session, media_on, greeting],
            [chatbot, box, stage],
            api_visibility="private",
            concurrency_limit=None,
        )
        new_chat.click(
            scene_page.start_over,
            [character, session, greeting, scene],
            [session, chatbot, scene],
            api_visibility="private",
        )
        # Another greeting opens another conversation, as a card's alternate first messages do.
        greeting.input(
            page.start_over,
            [character, session, greeting],
            [session, chatbot],
            api_visibility="private",
        )
        download.click(scene_page.download, [session, scene], my_data, api_visibility="private")
        forget_me.click(
            scene_page.forget_page,
            [character, session, scene],
            [session, chatbot, my_data, scene],
            api_visibility="private",
        )

        # A page load resumes the conversation the browser kept, or starts one; and the scene.
        demo.load(
            scene_page.resume,
            [session, character, scene],
            [
                session,
                character,
                picker,
                chatbot,
                card,
                greeting,
                scene,
                members,
                strategy,
                stage,
                speaker,
                *mode,
            ],
            api_visibility="private",
        )
        demo.load(None, js=VOICE_JS)
        demo.load(None, js=STAGE_JS)

        # The API scripts use (gradio_client): named endpoints with named parameters.
        api.register()

    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=settings.queue_size)
    # gradio types Blocks.css as None (its __init__ sets None; mounting sets the string).
    demo.css = CSS + VOICE_CSS + SCENE_CSS  # type: ignore[assignment]
    return demo
