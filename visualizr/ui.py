"""A small Gradio tab at /ui for trying the service by hand."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import FastAPI

from visualizr.errors import VisualizrError
from visualizr.service import VideoJob, VideoService

SIZES = [256, 384, 512, 768]


def mount_ui(app: FastAPI, service: VideoService) -> None:
    """Mount the Gradio tab on the app at /ui."""
    import gradio as gr

    async def make(
        audio_path: str | None,
        image_path: str | None,
        character: str | None,
        fps: float,
        size: int,
    ) -> str:
        if not audio_path:
            raise gr.Error("Record or upload some speech first.")
        portrait: Any
        if image_path:
            portrait = await anyio.Path(image_path).read_bytes()
        elif character:
            try:
                portrait = await service.character(character)
            except VisualizrError as error:
                raise gr.Error(error.detail) from None
        else:
            raise gr.Error("Upload a portrait or pick a character.")
        job = VideoJob(
            audio=await anyio.Path(audio_path).read_bytes(),
            portrait=portrait,
            fps=int(fps),
            size=int(size),
        )
        try:
            result = await service.make_video(job)
        except VisualizrError as error:
            raise gr.Error(error.detail) from None
        # With a bucket store the written file was moved there: a local copy for the tab.
        return str(await anyio.to_thread.run_sync(service.files.path_of, result.path.name))

    blocks = gr.Blocks(title="visualizr")
    with blocks:
        gr.Markdown("# visualizr\nSpeech + a portrait → a talking-head video.")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(label="Speech", type="filepath")
                image = gr.Image(label="Portrait (or pick a character)", type="filepath")
                character = gr.Dropdown(
                    label="Character", choices=[], allow_custom_value=True, value=None
                )
                fps = gr.Slider(10, 60, value=service.settings.default_fps, step=1, label="fps")
                size = gr.Dropdown(SIZES, value=service.settings.default_size, label="Size")
                button = gr.Button("Make video", variant="primary")
            video = gr.Video(label="Talking head")
        button.click(make, [audio, image, character, fps, size], video, api_name="make_video")
        blocks.load(lambda: gr.Dropdown(choices=service.characters.ids()), None, character)
    gr.mount_gradio_app(app, blocks, path="/ui", allowed_paths=[str(service.files.directory)])
