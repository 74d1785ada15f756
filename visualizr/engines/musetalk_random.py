"""Random-weight checkpoints in the MuseTalk v1.5 layout, for tests and benchmarks.

`tiny` models run the engine's real loading and rendering code on a CPU in seconds; `real` models
have the published sizes (UNet ~0.8 G parameters, sd-vae-ft-mse, whisper-tiny) for timing on a GPU.
Their output is noise-like faces: they measure speed and plumbing, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# The published musetalk.json (an SD-1.x UNet with 8 input channels and Whisper-tiny context).
REAL_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
}
TINY_UNET_CONFIG: dict[str, Any] = {
    **REAL_UNET_CONFIG,
    "attention_head_dim": 2,
    "block_out_channels": [16, 32],
    "cross_attention_dim": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 32,
}
REAL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}
# Four blocks like the real VAE, so latents are 1/8 of the crop (32x32 for 256x256) as in MuseTalk.
TINY_VAE_CONFIG: dict[str, Any] = {
    **REAL_VAE_CONFIG,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
}
REAL_WHISPER: dict[str, Any] = {
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "vocab_size": 51865,
}
TINY_WHISPER: dict[str, Any] = {
    **REAL_WHISPER,
    "d_model": 16,
    "encoder_layers": 1,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "max_target_positions": 32,
    "vocab_size": 128,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 3,
    "begin_suppress_tokens": None,
    "suppress_tokens": None,
}


def build_models(real_size: bool = False, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Random-weight (unet, vae, whisper model, feature extractor) of tiny or real size."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**(REAL_UNET_CONFIG if real_size else TINY_UNET_CONFIG))
    vae = AutoencoderKL(**(REAL_VAE_CONFIG if real_size else TINY_VAE_CONFIG))
    whisper = WhisperModel(WhisperConfig(**(REAL_WHISPER if real_size else TINY_WHISPER)))
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    return unet, vae, whisper, extractor


def write_random_checkpoint(folder: Path, *, real_size: bool = False, seed: int = 0) -> Path:
    """Write random models in the MuseTalk v1.5 layout under `folder`; returns `folder`."""
    unet, vae, whisper, extractor = build_models(real_size, seed)
    (folder / "musetalkV15").mkdir(parents=True, exist_ok=True)
    config = {key: value for key, value in dict(unet.config).items() if not key.startswith("_")}
    config["_class_name"] = "UNet2DConditionModel"
    (folder / "musetalkV15" / "musetalk.json").write_text(json.dumps(config, indent=2))
    torch.save(unet.state_dict(), folder / "musetalkV15" / "unet.pth")
    vae.save_pretrained(folder / "sd-vae")
    whisper.save_pretrained(folder / "whisper")
    extractor.save_pretrained(folder / "whisper")
    return folder
