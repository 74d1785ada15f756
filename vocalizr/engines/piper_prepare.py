"""Set-up (`make setup`, the image): `python -m vocalizr.engines.piper_prepare` prepares the
shipped Piper voice in the virtual environment (`piper_alignment.PREPARED_DIR`): its graph
patched for word timing, that graph optimized by ONNX Runtime, and the voice's own pitch and
formants that voice matching starts from. vocalizr then starts without patching, optimizing
or measuring anything."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from vocalizr.engines.piper import (
    PiperEngine,
    base_traits_file_name,
    default_model_path,
    optimize_graph,
    optimized_graph_file,
)
from vocalizr.engines.piper_alignment import PREPARED_DIR, aligned_model_file
from vocalizr.settings import Settings
from vocalizr.voice_match import read_traits, write_traits


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = default_model_path()
    prepared = aligned_model_file(model, PREPARED_DIR, PREPARED_DIR)
    if not isinstance(prepared, Path):
        print("error: the voice's graph could not be prepared for word timing", file=sys.stderr)
        return 1
    print(f"Piper word-timing graph in {prepared}")
    if not optimized_graph_file(prepared).is_file():
        optimize_graph(prepared)
    print(f"Piper graph, optimized ahead, in {optimized_graph_file(prepared)}")
    traits_file = PREPARED_DIR / base_traits_file_name(model)
    if read_traits(traits_file) is None:
        with tempfile.TemporaryDirectory() as scratch:
            engine = PiperEngine(Settings(data_dir=Path(scratch), piper_model=model))
            engine.load()
            write_traits(traits_file, engine.base_traits)
    print(f"Piper voice traits in {traits_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
