"""Set-up (`make setup`, the image): `python -m vocalizr.engines.piper_prepare` patches the
shipped Piper voice's graph for word timing into the virtual environment
(`piper_alignment.PREPARED_DIR`), so that vocalizr starts without patching it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from vocalizr.engines.piper import default_model_path
from vocalizr.engines.piper_alignment import PREPARED_DIR, aligned_model_file


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepared = aligned_model_file(default_model_path(), PREPARED_DIR, PREPARED_DIR)
    if not isinstance(prepared, Path):
        print("error: the voice's graph could not be prepared for word timing", file=sys.stderr)
        return 1
    print(f"Piper word-timing graph in {prepared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
