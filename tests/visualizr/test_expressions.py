"""Expressions as people see them: frames of a joy clip and a sadness clip of the same sentence,
on the photo and the painting, measured by MediaPipe's landmarks on the output frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from chatacter_common.emotions import EMOTION_LABELS, SHAPES, expression_of
from visualizr.engines import frame_portrait
from visualizr.engines.warp import WarpEngine, WarpPortrait
from visualizr.expressions import REST, ExpressionCue, expression_track
from visualizr.geometry import FACE_OVAL, FaceLocator
from visualizr.media import AUDIO_RATE, decode_audio
from visualizr.portraits import portrait_from_bytes

from .visualizr_testkit import PAINTING, PHOTO, SPEECH

SIZE = 512
FPS = 25
# MediaPipe face-mesh indices: outer mouth corners, inner brow ends, and points an expression
# must leave where they are (nose tip, chin, the face's sides, the forehead's top).
MOUTH_CORNERS = (61, 291)
INNER_BROWS = (107, 336)
STILL = (1, 152, 234, 454, 10)


def cue(label: str, previous: str | None = None) -> ExpressionCue:
    return ExpressionCue(expression_of(label), expression_of(previous))


@pytest.fixture(scope="module")
def mesh() -> Iterator[Any]:
    from mediapipe.python.solutions import face_mesh

    with face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True
    ) as graph:
        yield graph


def landmarks(mesh: Any, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    result = mesh.process(np.ascontiguousarray(frame[:, :, ::-1]))
    assert result.multi_face_landmarks, "no face in the output frame"
    points = [[p.x, p.y] for p in result.multi_face_landmarks[0].landmark]
    return np.asarray(points, np.float32) * frame.shape[1]


@pytest.fixture(scope="module")
def speech() -> npt.NDArray[np.float32]:
    return decode_audio(SPEECH.read_bytes(), max_seconds=60)[: 3 * AUDIO_RATE]


def rig_of(path: Path) -> WarpPortrait:
    portrait = portrait_from_bytes(path.read_bytes(), max_pixels=10**8)
    geometry = FaceLocator().locate(portrait.image, portrait.key)
    return WarpEngine().prepare(frame_portrait(portrait.image, geometry, SIZE))


def frame_at(
    rig: WarpPortrait, audio: npt.NDArray[np.float32], label: str, index: int
) -> npt.NDArray[np.uint8]:
    frames = list(WarpEngine().render(rig, audio, FPS, 3 * FPS, cue(label)))
    return frames[index]


@pytest.mark.parametrize("portrait", [PHOTO, PAINTING], ids=["photo", "painting"])
def test_joy_and_sadness_differ_at_the_mouth_corners_and_brows_only(
    portrait: Path, speech: npt.NDArray[np.float32], mesh: Any
) -> None:
    rig = rig_of(portrait)
    index = int(1.5 * FPS)  # the expression is held; the mouth is saying the same syllable
    joy, sadness = (frame_at(rig, speech, label, index) for label in ("joy", "sadness"))
    neutral = frame_at(rig, speech, "neutral", index)
    at_joy, at_sadness, at_neutral = (landmarks(mesh, f) for f in (joy, sadness, neutral))
    corners_up = at_sadness[list(MOUTH_CORNERS), 1] - at_joy[list(MOUTH_CORNERS), 1]
    brows_up = at_joy[list(INNER_BROWS), 1] - at_sadness[list(INNER_BROWS), 1]
    still = [patch_change(joy, sadness, at_neutral[i]) for i in STILL]
    moved = [patch_change(joy, sadness, at_neutral[i]) for i in MOUTH_CORNERS + INNER_BROWS]
    # y grows downwards: joy's corners sit higher than sadness's, sadness's inner brows higher.
    # Measured: corners 10-24 px apart, inner brows 3-9 px (photo and painting, 512 px).
    assert np.all(corners_up > 6.0), (corners_up, brows_up, still, moved)
    assert np.all(brows_up > 2.5), (corners_up, brows_up, still, moved)
    # The mesh is refitted as a whole, so points far from any push still drift a few pixels
    # between frames; what the frames show there is measured in pixels instead. Measured: the
    # nose tip's patch changes by 11-13 grey levels (a sub-pixel shift of sharp nostrils), the
    # chin, sides and forehead by under 1; the corners' and brows' by 50-135.
    assert max(still) < 20, still
    assert min(moved) > 40, moved
    # Joy lifts the corners above neutral, sadness drops them below.
    assert np.all(at_neutral[list(MOUTH_CORNERS), 1] - at_joy[list(MOUTH_CORNERS), 1] > 2.0)
    assert np.all(at_sadness[list(MOUTH_CORNERS), 1] - at_neutral[list(MOUTH_CORNERS), 1] > 1.0)
    # Pixels: nothing changes outside the face (the background, the shoulders).
    # A visible change (over 10 grey levels): the Gaussian pushes' far tails still shift
    # pixels by hundredths of a pixel.
    changed = np.abs(joy.astype(np.int16) - sadness).max(axis=2) > 10
    rows, cols = np.nonzero(changed)
    face = at_neutral[list(FACE_OVAL)]
    assert changed.sum() > 0
    # Within the face's outline, give or take 5% of its width (a cheek's edge).
    margin = 0.05 * float(np.ptp(face[:, 0]))
    assert rows.min() >= face[:, 1].min() - margin and rows.max() <= face[:, 1].max() + margin
    assert cols.min() >= face[:, 0].min() - margin and cols.max() <= face[:, 0].max() + margin


def test_the_expression_eases_in_holds_and_joins_the_next_clip() -> None:
    frames = 50
    first = expression_track(cue("sadness"), FPS, frames)
    second = expression_track(cue("joy", previous="sadness"), FPS, frames)
    sad, happy = SHAPES.index("sadness"), SHAPES.index("joy")
    assert first[0, sad] < 0.05 and first[frames // 2, sad] == pytest.approx(1.0)
    assert first[-1, sad] == pytest.approx(REST, abs=0.02)
    # The next clip starts where this one rests, and hands over to its own expression.
    assert second[0, sad] == pytest.approx(first[-1, sad], abs=0.02)
    assert second[0, happy] < 0.05 and second[frames // 2, sad] == 0.0
    assert second[frames // 2, happy] == pytest.approx(1.0)
    steps = np.abs(np.diff(np.concatenate([first, second]), axis=0))
    assert steps.max() < 0.25  # no jump anywhere, across the join either


def test_every_label_maps_to_a_shape_or_neutral() -> None:
    shapes = {label: expression_of(label).shape for label in EMOTION_LABELS}
    assert shapes["joy"] == "joy" and shapes["grief"] == "sadness"
    assert shapes["annoyance"] == "anger" and shapes["fear"] == "surprise"
    assert shapes["neutral"] is None and shapes["curiosity"] is None
    assert all(0 < expression_of(label).strength <= 1 for label, s in shapes.items() if s)


def patch_change(
    first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8], at: npt.NDArray[np.float32]
) -> float:
    """Mean absolute grey-level change in a 15 x 15 patch around a landmark."""
    x, y = (round(float(v)) for v in at)
    a = first[y - 7 : y + 8, x - 7 : x + 8].astype(np.float32)
    b = second[y - 7 : y + 8, x - 7 : x + 8].astype(np.float32)
    return float(np.abs(a - b).mean())
