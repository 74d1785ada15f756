"""An XTTS checkpoint with random weights, built from config: for tests and benchmarks only.

It runs the real loading and inference code without downloading weights; it says nothing about
quality. `full_size=True` gives the real XTTS-v2 dimensions (for timing on a GPU).
"""

from __future__ import annotations

from pathlib import Path

# Special tokens XTTS's tokenizer looks up by name.
SPECIAL_TOKENS = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
CORPUS = [
    "the quick brown fox jumps over the lazy dog while the old sailor counts his boats",
    "abcdefghijklmnopqrstuvwxyz .,!?'-",
]


def build_random_xtts(directory: Path, full_size: bool = False, max_audio_tokens: int = 30) -> Path:
    """Write `config.json`, `model.pth`, `vocab.json` of a random-weight XTTS into `directory`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(CORPUS * 10, trainer)
    tokenizer.save(str(directory / "vocab.json"))

    config = XttsConfig()
    config.languages = ["en"]
    args = config.model_args
    args.gpt_use_perceiver_resampler = True  # as in the real XTTS-v2
    args.gpt_max_audio_tokens = max_audio_tokens  # random weights rarely stop on their own
    # XTTS-v2's audio vocabulary: with it, random weights pick the stop token only ~0.1 % of
    # the time, so lengths are predictable (with a handful of tokens they stop at random).
    args.gpt_num_audio_tokens, args.gpt_start_audio_token, args.gpt_stop_audio_token = (
        1026,
        1024,
        1025,
    )
    if full_size:  # XTTS-v2's published dimensions
        args.gpt_layers, args.gpt_n_model_channels, args.gpt_n_heads = 30, 1024, 16
        args.decoder_input_dim = 1024
    else:
        args.gpt_layers, args.gpt_n_model_channels, args.gpt_n_heads = 1, 64, 1
        args.decoder_input_dim = 64  # the HiFi-GAN reads the GPT's latents
    model = Xtts(config)
    model.tokenizer.__init__(vocab_file=str(directory / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    config.save_json(str(directory / "config.json"))
    return directory
