"""Set-up (`make setup`, the image): `python -m visualizr.prepare_faces [CHARACTERS_DIR]` finds
the face in each shipped character's portrait once, into the virtual environment
(`geometry.PREPARED_FACES_DIR`), so that a cold start neither imports MediaPipe nor runs it.
The geometry is keyed as visualizr keys it, by the portrait's bytes and declared boxes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visualizr.geometry import PREPARED_FACES_DIR, FaceLocator
from visualizr.portraits import LOAD_ERRORS, CharacterPortraits
from visualizr.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visualizr.prepare_faces")
    parser.add_argument("characters_dir", type=Path, nargs="?", default=Path("characters"))
    parser.add_argument("--into", type=Path, default=PREPARED_FACES_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    portraits = CharacterPortraits(args.characters_dir, max_pixels=Settings().max_image_pixels)
    portraits.discover()
    locator = FaceLocator(cache_dir=args.into)
    try:
        for character in portraits.ids():
            portrait = portraits.get(character)
            try:
                locator.locate(
                    portrait.image,
                    portrait.key,
                    face_box=portrait.face_box,
                    mouth_box=portrait.mouth_box,
                )
            except LOAD_ERRORS as error:  # its face is found at run time, or reported then
                print(f"{character}: face not prepared: {error}")
    finally:
        locator.close()
    # Only the shipped portraits' faces: one left from an earlier portrait would never match.
    current = {f"{portraits.get(character).key}.face.json" for character in portraits.ids()}
    for stale in args.into.glob("*.face.json"):
        if stale.name not in current:
            stale.unlink()
    print(f"faces of {', '.join(portraits.ids()) or 'no characters'} in {args.into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
