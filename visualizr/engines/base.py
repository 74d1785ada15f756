"""The talking-head engine interface and the framing shared by all engines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from visualizr.expressions import NEUTRAL_CUE, ExpressionCue
from visualizr.geometry import FaceGeometry

# The frame shows head and shoulders: up to 3.2 face heights, never more than the image allows.
FRAME_FACE_RATIO = 3.2
MIN_FACE_RATIO = 1.3


@dataclass(frozen=True)
class FramedPortrait:
    """The portrait cropped to a size x size square, with its face geometry in crop pixels."""

    image: npt.NDArray[np.uint8]
    geometry: FaceGeometry
    size: int


def frame_portrait(
    image: npt.NDArray[np.uint8], geometry: FaceGeometry, size: int
) -> FramedPortrait:
    """Crop a square around the face (as much of the portrait as fits) and scale it to `size`."""
    height, width = image.shape[:2]
    fx, fy, fw, fh = geometry.face_box
    face = max(fw, fh, 8.0)
    side = min(float(min(width, height)), FRAME_FACE_RATIO * face)
    side = max(side, MIN_FACE_RATIO * face)
    center_x = fx + fw / 2
    # Put the face a little above the middle, as portraits do.
    center_y = fy + fh * 0.62
    left = float(np.clip(center_x - side / 2, 0, max(0.0, width - side)))
    top = float(np.clip(center_y - side / 2, 0, max(0.0, height - side)))
    scale = size / side
    affine = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float32)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop = np.asarray(
        cv2.warpAffine(
            image, affine, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
        ),
        np.uint8,
    )
    return FramedPortrait(image=crop, geometry=geometry.transformed(affine), size=size)


class TalkingHeadEngine(Protocol):
    """Turns a framed portrait and speech audio into video frames."""

    name: str
    device: str

    def prepare(self, framed: FramedPortrait) -> Any:
        """Do the per-portrait work once (fields, latents); the result is cached by the caller."""
        ...

    def render(
        self,
        prepared: Any,
        audio: npt.NDArray[np.float32],
        fps: int,
        frames: int,
        cue: ExpressionCue = NEUTRAL_CUE,
    ) -> Iterator[npt.NDArray[np.uint8]]:
        """Yield `frames` BGR uint8 frames of size x size for 44.1 kHz mono audio, showing the
        cue's expression as far as the engine can."""
        ...
