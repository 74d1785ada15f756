"""Facial expressions on any portrait: a few shapes as warp fields, eased across a clip.

Each shape (chatacter_common.emotions.SHAPES) is a sum of smooth Gaussian pushes placed on the
face's own landmarks, sized by the mouth's and the eyes' widths, so the same recipe fits a photo
and a painting: joy lifts the mouth corners (and a little outwards) and the cheeks; sadness
raises the inner brows and lowers the corners; anger lowers the brows and draws them in; surprise
raises the brows and opens the eyes. The fields are backward displacements added to the frame's
map before its one `cv2.remap`, so the mouth's speech motion and the blinks stay on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chatacter_common.emotions import SHAPES, Expression, Shape
from visualizr.geometry import FaceGeometry

Slice = tuple[int, int, int, int]  # y0, y1, x0, x1
Vector = npt.NDArray[np.float32]

# The expression rises over the clip's first moments from where the last clip left it, holds
# while the sentence is said, and relaxes to REST of its strength at the end: the next clip,
# given `previous_expression`, starts from exactly there, so sentences join without a jump.
EASE_IN_S = 0.4
EASE_OUT_S = 0.5
REST = 0.6
# Pushes fade to nothing at this many sigmas; the field's region ends there.
REACH = 3.0


@dataclass(frozen=True)
class Push:
    """Content near `center` moves by `motion` (pixels), fading as a Gaussian of `sigma`."""

    center: Vector
    motion: Vector
    sigma: float


@dataclass(frozen=True)
class ShapeField:
    """One shape's backward displacement at full strength over `roi`, and how the lips move."""

    roi: Slice
    field_x: npt.NDArray[np.float32]
    field_y: npt.NDArray[np.float32]
    upper_lip: npt.NDArray[np.float32]  # (k, 2) forward motion of the inner upper lip
    lower_lip: npt.NDArray[np.float32]


@dataclass(frozen=True)
class ExpressionCue:
    """What a clip shows and what the clip before it showed (it eases from there)."""

    expression: Expression
    previous: Expression


NEUTRAL_CUE = ExpressionCue(Expression("neutral", None, 0.0), Expression("neutral", None, 0.0))


def _unit(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 1e-6 else np.array([1, 0], np.float32)


def _pushes(geometry: FaceGeometry) -> dict[Shape, list[Push]]:
    """Where each shape pushes the face, from its landmarks."""
    upper = geometry.upper_lip
    left, right = upper[0], upper[-1]
    if right[0] < left[0]:
        left, right = right, left
    across = _unit(right - left)
    up = np.array([across[1], -across[0]], np.float32)  # image y grows downwards
    mouth = max(float(np.linalg.norm(right - left)), 6.0)
    corners = ((left, -across), (right, across))
    pushes: dict[Shape, list[Push]] = {shape: [] for shape in SHAPES}
    for corner, outward in corners:
        pushes["joy"].append(Push(corner, (0.14 * up + 0.06 * outward) * mouth, 0.24 * mouth))
        # The cheek rises beside the mouth, not under the nose, which a smile leaves in place.
        cheek = corner + (0.45 * up + 0.3 * outward) * mouth
        pushes["joy"].append(Push(cheek, 0.06 * up * mouth, 0.25 * mouth))
        pushes["sadness"].append(Push(corner, -0.09 * up * mouth, 0.24 * mouth))
        pushes["anger"].append(Push(corner, -0.04 * up * mouth, 0.24 * mouth))
    eyes = geometry.eyes
    if not eyes:
        return pushes  # declared boxes (drawings): the mouth is all that is known
    centre_x = float(np.mean([eye.upper.mean(axis=0)[0] for eye in eyes]))
    for index, eye in enumerate(eyes):
        width = max(float(np.linalg.norm(eye.upper[-1] - eye.upper[0])), 4.0)
        eye_centre = (eye.upper.mean(axis=0) + eye.lower.mean(axis=0)) / 2
        inward = across if eye_centre[0] < centre_x else -across
        if index < len(geometry.brows) and len(geometry.brows[index]) >= 3:
            brow = geometry.brows[index]
            inner, middle = brow[-1], brow[len(brow) // 2]
        else:  # no brow landmarks: where brows sit over an eye
            middle = eye_centre + 0.6 * width * up
            inner = middle + 0.35 * width * inward
        pushes["sadness"].append(Push(inner, (0.25 * up + 0.04 * inward) * width, 0.36 * width))
        drawn = (inner + middle) / 2
        pushes["anger"].append(Push(drawn, (-0.14 * up + 0.09 * inward) * width, 0.42 * width))
        pushes["surprise"].append(Push(middle, 0.2 * up * width, 0.5 * width))
        upper_lid = eye.upper.mean(axis=0)
        lower_lid = eye.lower.mean(axis=0)
        pushes["surprise"].append(Push(upper_lid, 0.07 * up * width, 0.22 * width))
        pushes["surprise"].append(Push(lower_lid, -0.03 * up * width, 0.22 * width))
        pushes["joy"].append(Push(lower_lid - 0.1 * up * width, 0.05 * up * width, 0.25 * width))
    return pushes


def _motion_at(pushes: list[Push], xs: Vector, ys: Vector) -> tuple[Vector, Vector]:
    """The forward motion of the content at (xs, ys)."""
    mx = np.zeros_like(xs)
    my = np.zeros_like(ys)
    floor = float(np.exp(-(REACH**2) / 2))
    for push in pushes:
        fall = np.exp(
            -((xs - push.center[0]) ** 2 + (ys - push.center[1]) ** 2) / (2 * push.sigma**2)
        )
        # Lowered to end at exactly zero REACH sigmas out: nothing beyond the region moves.
        fall = np.maximum(fall - floor, 0) / (1 - floor)
        mx += push.motion[0] * fall
        my += push.motion[1] * fall
    return mx, my


def _region(pushes: list[Push], box: Slice) -> Slice:
    y0, y1, x0, x1 = box
    lows = [push.center - REACH * push.sigma for push in pushes]
    highs = [push.center + REACH * push.sigma for push in pushes]
    low = np.floor(np.min(lows, axis=0)).astype(int)
    high = np.ceil(np.max(highs, axis=0)).astype(int) + 1
    top, bottom = max(y0, int(low[1])), min(y1, int(high[1]))
    left, right = max(x0, int(low[0])), min(x1, int(high[0]))
    return (top, max(top, bottom), left, max(left, right))


def build_shape_fields(geometry: FaceGeometry, box: Slice) -> dict[Shape, ShapeField]:
    """Each shape's field at full strength, cut to `box` and given relative to it."""
    fields: dict[Shape, ShapeField] = {}
    for shape, pushes in _pushes(geometry).items():
        if not pushes:
            continue
        y0, y1, x0, x1 = _region(pushes, box)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        # A pixel shows the content that the push brought there: sample the motion where that
        # content started (one fixed-point step), so the field inverts the push closely.
        mx, my = _motion_at(pushes, xs, ys)
        mx, my = _motion_at(pushes, xs - mx, ys - my)

        def lips(points: Vector, group: list[Push] = pushes) -> npt.NDArray[np.float32]:
            px, py = _motion_at(group, points[:, 0].copy(), points[:, 1].copy())
            return np.stack([px, py], axis=1).astype(np.float32)

        fields[shape] = ShapeField(
            roi=(y0 - box[0], y1 - box[0], x0 - box[2], x1 - box[2]),
            field_x=np.ascontiguousarray(-mx, np.float32),
            field_y=np.ascontiguousarray(-my, np.float32),
            upper_lip=lips(geometry.upper_lip),
            lower_lip=lips(geometry.lower_lip),
        )
    return fields


def _smoothstep(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def expression_track(cue: ExpressionCue, fps: int, frames: int) -> npt.NDArray[np.float32]:
    """Per frame, the weight of each shape (frames, len(SHAPES)): eased in from the previous
    clip's resting look, held, and eased out to this one's."""
    weights = np.zeros((frames, len(SHAPES)), np.float32)
    if frames == 0:
        return weights
    times = (np.arange(frames) + 0.5) / fps
    length = frames / fps
    ease_in = min(EASE_IN_S, length / 3)
    ease_out = min(EASE_OUT_S, length / 3)
    rising = _smoothstep(times / ease_in)
    relaxing = _smoothstep((times - (length - ease_out)) / ease_out)
    current, previous = cue.expression, cue.previous
    if previous.shape is not None:
        weights[:, SHAPES.index(previous.shape)] += previous.strength * REST * (1 - rising)
    if current.shape is not None:
        hold = rising * (1 - (1 - REST) * relaxing)
        weights[:, SHAPES.index(current.shape)] += current.strength * hold
    return weights
