"""A small Gradio tab at /ui for trying voices by hand."""

from __future__ import annotations

from typing import Any

import anyio
import gradio as gr
from fastapi import FastAPI

from vocalizr.errors import VocalizrError
from vocalizr.service import SpeechRequest, SpeechService

# The tab is one caller of its own: its uploads are listed and spoken in the tab only.
UI_CALLER = "ui"


def build_ui(service: SpeechService) -> gr.Blocks:
    """Text, voice, language and speed in; the produced WAV out."""

    def voice_choices() -> Any:
        ids = [voice.id for voice in service.voices.all(UI_CALLER)]
        return gr.update(choices=ids, value=ids[0] if ids else None)

    async def speak(text: str, voice: str | None, language: str, speed: float) -> tuple[Any, str]:
        try:
            result = await service.speak(
                SpeechRequest(text, voice or "", language, speed, UI_CALLER)
            )
        except VocalizrError as error:
            return None, f"{error.code}: {error.detail}"
        path = await anyio.to_thread.run_sync(service.files.path_of, result.id)
        seconds = f"{result.duration_s:.2f} s of audio in {result.synthesis_s * 1000:.0f} ms"
        return str(path), f"{result.engine}, {result.sample_rate} Hz, {seconds}"

    async def upload(path: str | None) -> tuple[Any, str]:
        if not path:
            return gr.update(), "choose a clip first"
        data = await anyio.Path(path).read_bytes()
        try:
            voice = await service.add_voice(data, UI_CALLER)
        except VocalizrError as error:
            return gr.update(), f"{error.code}: {error.detail}"
        ids = [known.id for known in service.voices.all(UI_CALLER)]
        return gr.update(choices=ids, value=voice.id), f"registered voice {voice.id}"

    blocks = gr.Blocks(title="vocalizr")
    with blocks:
        gr.Markdown("# vocalizr\nText to speech in a character's voice.")
        with gr.Row():
            voice = gr.Dropdown(label="voice", choices=[], allow_custom_value=True)
            language = gr.Textbox(label="language", value="en")
            speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="speed")
        text = gr.Textbox(label="text", value="Hello! It is a fine day to talk.", lines=3)
        say = gr.Button("Speak", variant="primary")
        audio = gr.Audio(label="speech", type="filepath")
        status = gr.Markdown()
        with gr.Accordion("Add a voice from a reference clip (3–30 s)", open=False):
            clip = gr.File(label="reference clip", type="filepath")
            add = gr.Button("Register voice")
        say.click(speak, [text, voice, language, speed], [audio, status])
        add.click(upload, [clip], [voice, status])
        blocks.load(voice_choices, None, voice)
    return blocks


def mount_ui(app: FastAPI, service: SpeechService) -> FastAPI:
    """Mount the tab at /ui; produced files are served from the store's folder."""
    gr.mount_gradio_app(
        app, build_ui(service), path="/ui", allowed_paths=[str(service.files.directory)]
    )
    return app
