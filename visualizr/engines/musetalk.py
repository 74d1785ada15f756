"""The diffusers lip-sync engine, in the style of MuseTalk v1.5 (weights from a local folder).

Layout of `VISUALIZR_WEIGHTS_DIR` (the published MuseTalk v1.5 checkpoint):
    musetalkV15/musetalk.json   UNet2DConditionModel config (in_channels 8, out_channels 4,
                                cross_attention_dim = Whisper's d_model)
    musetalkV15/unet.pth        its state dict
    sd-vae/                     AutoencoderKL (sd-vae-ft-mse), `save_pretrained` layout
    whisper/                    whisper-tiny (WhisperModel + WhisperFeatureExtractor)

Per portrait (once): a square face crop scaled to 256x256, VAE latents of the crop with its lower
half masked and of the whole crop (the reference), concatenated to 8 channels. Per frame: Whisper
encoder hidden states (all layers) in a window around the frame are the UNet's cross-attention
context; one UNet step at timestep 0 predicts the face latents, the VAE decodes them, and the face
is feathered back into the frame. Frames go through in batches; fp16 on a GPU.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from scipy.signal import resample_poly

from chatacter_common.zero_gpu import gpu
from visualizr.engines.base import FramedPortrait
from visualizr.errors import EngineUnavailable
from visualizr.expressions import NEUTRAL_CUE, ExpressionCue
from visualizr.media import AUDIO_RATE

FACE_SIZE = 256
WHISPER_RATE = 16000
# Whisper's encoder emits 50 feature frames per second of audio.
WHISPER_FPS = 50
# Context per video frame: this many video frames of audio on each side (as MuseTalk does).
CONTEXT_FRAMES = 2


@dataclass(frozen=True)
class MuseTalkPortrait:
    """The framed portrait, where the face crop sits in it, and the crop's UNet input latents."""

    image: npt.NDArray[np.uint8]
    crop: tuple[int, int, int]  # x, y, side in frame pixels
    blend: npt.NDArray[np.float32]  # (side, side, 1) float32 weights of the generated face
    latents: torch.Tensor  # (1, 8, h, w) on the CPU: masked-crop latents + reference latents


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position codes, added to the audio tokens so the UNet knows their order."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    scale = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim)
    codes[:, 0::2] = torch.sin(position * scale)
    codes[:, 1::2] = torch.cos(position * scale)[:, : dim // 2]
    return codes


class MuseTalkEngine:
    """UNet in-painting of the mouth conditioned on Whisper features; GPU calls serialized."""

    name = "musetalk"

    def __init__(
        self,
        unet: Any,
        vae: Any,
        whisper_encoder: Any,
        feature_extractor: Any,
        *,
        device: torch.device,
        batch_size: int = 16,
    ) -> None:
        self.device_obj = device
        self.device = str(device)
        self.dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.unet = unet.to(device, self.dtype).eval()
        self.vae = vae.to(device, self.dtype).eval()
        self.whisper = whisper_encoder.to(device, self.dtype).eval()
        self.feature_extractor = feature_extractor
        self.batch_size = batch_size
        self.scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
        width = int(whisper_encoder.config.d_model)
        if int(unet.config.cross_attention_dim) != width:
            raise EngineUnavailable(
                f"the UNet's cross_attention_dim ({unet.config.cross_attention_dim}) does not "
                "match "
                f"Whisper's d_model ({width}); the weights folder mixes checkpoints"
            )
        layers = int(whisper_encoder.config.encoder_layers) + 1
        window = (2 * CONTEXT_FRAMES + 1) * 2
        self._positions = sinusoidal_positions(window * layers, width).to(device, self.dtype)
        # One GPU, one stream of work: concurrent requests take turns instead of thrashing memory.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, weights_dir: Path, *, device: str = "auto", batch_size: int = 16
    ) -> MuseTalkEngine:
        """Load the three models from the MuseTalk v1.5 layout with diffusers and transformers."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import WhisperFeatureExtractor, WhisperModel

        config_file = weights_dir / "musetalkV15" / "musetalk.json"
        state_file = weights_dir / "musetalkV15" / "unet.pth"
        for needed in (config_file, state_file, weights_dir / "sd-vae", weights_dir / "whisper"):
            if not needed.exists():
                raise EngineUnavailable(
                    f"{needed} is missing; VISUALIZR_WEIGHTS_DIR must hold the MuseTalk v1.5 "
                    "layout: musetalkV15/musetalk.json + unet.pth, sd-vae/, whisper/"
                )
        config = json.loads(config_file.read_text())
        unet = UNet2DConditionModel.from_config(config)
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        unet.load_state_dict(state)
        vae = AutoencoderKL.from_pretrained(weights_dir / "sd-vae")
        whisper = WhisperModel.from_pretrained(weights_dir / "whisper").get_encoder()
        extractor = WhisperFeatureExtractor.from_pretrained(weights_dir / "whisper")
        return cls(
            unet, vae, whisper, extractor, device=resolve_device(device), batch_size=batch_size
        )

    # -- per portrait -------------------------------------------------------------------------

    def _to_tensor(self, images_bgr: npt.NDArray[np.uint8]) -> torch.Tensor:
        rgb = images_bgr[..., ::-1].astype(np.float32) / 127.5 - 1.0
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2)

    @gpu()
    @torch.inference_mode()
    def prepare(self, framed: FramedPortrait) -> MuseTalkPortrait:
        """Crop the face, encode masked and reference latents once."""
        size = framed.size
        fx, fy, fw, fh = framed.geometry.face_box
        side = round(min(size, max(fw, fh) * 1.15))
        x = int(np.clip(fx + fw / 2 - side / 2, 0, size - side))
        # A little extra room below the chin, where the jaw goes when the mouth opens.
        y = int(np.clip(fy + fh / 2 - side / 2 + 0.05 * side, 0, size - side))
        crop = cv2.resize(
            framed.image[y : y + side, x : x + side],
            (FACE_SIZE, FACE_SIZE),
            interpolation=cv2.INTER_AREA if side > FACE_SIZE else cv2.INTER_CUBIC,
        )
        masked = crop.copy()
        masked[FACE_SIZE // 2 :] = 0
        pixels = self._to_tensor(np.stack([masked, crop])).to(self.device_obj, self.dtype)
        with self._lock:
            latents = self.vae.encode(pixels).latent_dist.mode() * self.scaling
        unet_input = torch.cat([latents[0:1], latents[1:2]], dim=1)
        # Feather the generated face into the frame: full weight on the lower face, none at edges.
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
        ellipse = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.62) / 0.40) ** 2
        blend = np.clip((1.0 - ellipse) * 3.0, 0.0, 1.0)
        blend = cv2.GaussianBlur(blend, (0, 0), sigmaX=max(1.0, side * 0.03))
        # Kept on the CPU (16 KB) and moved per render: a ZeroGPU call hands back no GPU memory.
        return MuseTalkPortrait(
            image=framed.image, crop=(x, y, side), blend=blend[..., None], latents=unet_input.cpu()
        )

    # -- per request --------------------------------------------------------------------------

    @torch.inference_mode()
    def audio_features(self, audio: npt.NDArray[np.float32], fps: int, frames: int) -> torch.Tensor:
        """Whisper encoder states (all layers) windowed per video frame: (frames, tokens, d)."""
        speech = resample_poly(audio, WHISPER_RATE, AUDIO_RATE).astype(np.float32)
        config = self.whisper.config
        chunk_samples = config.max_source_positions * 2 * self.feature_extractor.hop_length
        per_chunk = config.max_source_positions
        states: list[torch.Tensor] = []
        for start in range(0, max(1, speech.size), chunk_samples):
            piece = speech[start : start + chunk_samples]
            features = self.feature_extractor(
                piece,
                sampling_rate=WHISPER_RATE,
                return_tensors="pt",
                padding="max_length",
                max_length=chunk_samples,
            ).input_features.to(self.device_obj, self.dtype)
            with self._lock:
                output = self.whisper(features, output_hidden_states=True)
            stacked = torch.stack(output.hidden_states, dim=2)[0]  # (T, layers, d)
            used = min(per_chunk, math.ceil(piece.size / WHISPER_RATE * WHISPER_FPS))
            states.append(stacked[:used])
        timeline = torch.cat(states)
        centers = np.round(np.arange(frames) * WHISPER_FPS / fps).astype(np.int64)
        # Two Whisper frames per video frame (at 25 fps), with CONTEXT_FRAMES frames each side.
        offsets = np.arange(-2 * CONTEXT_FRAMES, 2 * CONTEXT_FRAMES + 2)
        index = np.clip(centers[:, None] + offsets[None, :], 0, timeline.shape[0] - 1)
        windows = timeline[torch.from_numpy(index).to(timeline.device)]  # (F, W, layers, d)
        tokens = windows.reshape(frames, -1, timeline.shape[-1])
        return tokens + self._positions[: tokens.shape[1]]

    @torch.inference_mode()
    def _generate(self, latents: torch.Tensor, audio_tokens: torch.Tensor) -> npt.NDArray[np.uint8]:
        batch = audio_tokens.shape[0]
        unet_input = latents.expand(batch, -1, -1, -1)
        timestep = torch.zeros(batch, device=self.device_obj, dtype=torch.long)
        with self._lock:
            predicted = self.unet(unet_input, timestep, encoder_hidden_states=audio_tokens).sample
            decoded = self.vae.decode(predicted / self.scaling).sample
        faces = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.asarray(faces.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1], np.uint8)

    @gpu()
    def render(
        self,
        prepared: MuseTalkPortrait,
        audio: npt.NDArray[np.float32],
        fps: int,
        frames: int,
        cue: ExpressionCue = NEUTRAL_CUE,
    ) -> Iterator[npt.NDArray[np.uint8]]:
        """Yield frames: generated faces pasted into the portrait, in batches.

        The cue is accepted and not drawn: MuseTalk regenerates the lower face from latents of
        the neutral portrait, and a warped smile under it would be painted over. A character's
        expression sprite still shows, as the portrait this engine animates.
        """
        tokens = self.audio_features(audio, fps, frames)
        latents = prepared.latents.to(self.device_obj, self.dtype)
        x, y, side = prepared.crop
        base = prepared.image[y : y + side, x : x + side].astype(np.float32)
        for start in range(0, frames, self.batch_size):
            faces = self._generate(latents, tokens[start : start + self.batch_size])
            for face in faces:
                resized = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
                frame = prepared.image.copy()
                mixed = base + prepared.blend * (resized.astype(np.float32) - base)
                frame[y : y + side, x : x + side] = mixed.astype(np.uint8)
                yield frame
