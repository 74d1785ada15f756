"""The weight-free CPU engine: audio-driven warps of the portrait.

Per portrait (once, cached): backward-displacement basis fields for the jaw and lips, lip width,
eyelids and head motion, each confined to its region. Per frame: identity + a weighted sum of those
fields, one `cv2.remap`, and a darkened mouth interior where the lips part. At 512x512 this is
a few milliseconds per frame on one core.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from chatacter_common.emotions import SHAPES, Shape
from visualizr.engines.base import FramedPortrait
from visualizr.expressions import (
    NEUTRAL_CUE,
    ExpressionCue,
    ShapeField,
    build_shape_fields,
    expression_track,
)
from visualizr.geometry import FaceGeometry
from visualizr.motion import motion_from_audio

# Full-open lower-lip drop, as a fraction of the mouth-to-chin distance (about 10% of a face).
JAW_DROP = 0.27
UPPER_LIP_RISE = 0.15
LIP_STRETCH = 0.12
# Head sway amplitudes at weight 1: fractions of the frame, and radians of roll.
HEAD_SHIFT_X = 0.008
HEAD_SHIFT_Y = 0.005
HEAD_ROLL = np.deg2rad(1.2)
# Fraction of the eye's opening, just above the upper lid, that covers the eye when it closes.
LID_BAND = 0.35
# Weights below this change no pixel visibly; skipping them saves the ROI arithmetic.
EPSILON = 2e-3

Slice = tuple[int, int, int, int]  # y0, y1, x0, x1
# Intermediate maths: float32 where the inputs are, float64 where numpy promotes.
Floats = npt.NDArray[np.floating[Any]]


def _smoothstep(edge0: float, edge1: float, x: Floats) -> Floats:
    t = np.clip((x - edge0) / max(edge1 - edge0, 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _unit(vector: Floats) -> Floats:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-6 else np.array([1.0, 0.0], np.float32)


def _roi(
    center: Floats,
    e_u: Floats,
    e_v: Floats,
    u: tuple[float, float],
    v: tuple[float, float],
    size: int,
) -> Slice:
    corners = np.array([center + a * e_u + b * e_v for a in u for b in v], np.float32)
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    return (max(0, y0), min(size, y1), max(0, x0), min(size, x1))


def _grid(roi: Slice) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    y0, y1, x0, x1 = roi
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return xs, ys


def _profile(
    u: Floats,
    points_u: Floats,
    points_v: Floats,
) -> Floats:
    order = np.argsort(points_u)
    return np.interp(u, points_u[order], points_v[order]).astype(np.float32)


@dataclass(frozen=True)
class MouthRig:
    """Jaw/lip and lip-width fields over the mouth region, and how the inner lips move."""

    roi: Slice
    jaw: npt.NDArray[np.float32]  # (h, w, 2) backward displacement per unit of opening
    stretch: npt.NDArray[np.float32]  # (h, w, 2) per unit of width
    upper_lip: npt.NDArray[np.float32]  # (k, 2) inner lip points
    lower_lip: npt.NDArray[np.float32]
    upper_open: npt.NDArray[np.float32]  # (k, 2) forward motion per unit of opening
    lower_open: npt.NDArray[np.float32]
    upper_stretch: npt.NDArray[np.float32]  # (k, 2) forward motion per unit of width
    lower_stretch: npt.NDArray[np.float32]
    interior: npt.NDArray[np.float32]  # BGR of the mouth's inside


@dataclass(frozen=True)
class EyeRig:
    """Eyelid field over both eyes: weight 1 closes them."""

    roi: Slice
    blink: npt.NDArray[np.float32]


@dataclass(frozen=True)
class WarpPortrait:
    """Everything the per-frame loop needs for one portrait at one size.

    Only `box`, the head's region, ever moves: the fields are stored cropped to it and the rest
    of the frame is the portrait as it is.
    """

    image: npt.NDArray[np.uint8]
    box: Slice
    # Per axis, channels (identity, roll field per radian, shift field per pixel): one
    # cv2.transform with (1, roll, shift) gives that axis's map with the head's sway.
    head_x: npt.NDArray[np.float32]
    head_y: npt.NDArray[np.float32]
    mouth: MouthRig
    eyes: EyeRig | None
    expressions: dict[Shape, ShapeField]


def build_mouth_rig(image: npt.NDArray[np.uint8], geometry: FaceGeometry, size: int) -> MouthRig:
    """Precompute the jaw/lip fields from the inner-lip contour and the chin."""
    upper, lower = geometry.upper_lip, geometry.lower_lip
    left, right = upper[0], upper[-1]
    if right[0] < left[0]:
        left, right = right, left
    origin = (left + right) / 2
    e_u = _unit(right - left).astype(np.float32)
    e_v = np.array([-e_u[1], e_u[0]], np.float32)
    half_width = max(float(np.linalg.norm(right - left)) / 2, 2.0)
    chin = max(float((geometry.chin - origin) @ e_v), 1.2 * half_width)
    drop = JAW_DROP * chin
    ramp = max(1.0, 0.08 * drop)  # short ramp: lips part instead of stretching

    roi = _roi(
        origin, e_u, e_v, (-2.7 * half_width, 2.7 * half_width), (-0.9 * chin, 2.0 * chin), size
    )
    xs, ys = _grid(roi)
    rel_x, rel_y = xs - origin[0], ys - origin[1]
    u = rel_x * e_u[0] + rel_y * e_u[1]
    v = rel_x * e_v[0] + rel_y * e_v[1]
    seam = (upper + lower) / 2 - origin
    seam_v = _profile(u, seam @ e_u, seam @ e_v)
    dv = v - seam_v
    taper = np.sqrt(np.clip(1 - (u / half_width) ** 2, 0, 1))
    sideways = 1 - _smoothstep(0.8 * half_width, 2.6 * half_width, np.abs(u))
    depth = taper + (1 - taper) * _smoothstep(0, 0.7 * chin, dv)
    to_chin = chin - float(np.interp(0.0, seam @ e_u, seam @ e_v))
    lower_gain = np.clip(dv / ramp, 0, 1) * (1 - _smoothstep(to_chin, to_chin + 0.8 * chin, dv))
    upper_gain = np.clip(-dv / ramp, 0, 1) * (1 - _smoothstep(0.25 * chin, 0.7 * chin, -dv))
    along_v = (
        -drop * sideways * depth * lower_gain
        + UPPER_LIP_RISE * drop * sideways * taper * upper_gain
    )
    jaw = np.stack([along_v * e_v[0], along_v * e_v[1]], axis=-1).astype(np.float32)
    bump = np.exp(-((u / (1.5 * half_width)) ** 2) - (dv / (0.45 * chin)) ** 2)
    along_u = -LIP_STRETCH * u * bump
    stretch = np.stack([along_u * e_u[0], along_u * e_u[1]], axis=-1).astype(np.float32)

    def forward_open(points: Floats, sign: float, gain: float) -> npt.NDArray[np.float32]:
        pu = (points - origin) @ e_u
        weight = np.sqrt(np.clip(1 - (pu / half_width) ** 2, 0, 1))
        return np.asarray((sign * gain * drop * weight)[:, None] * e_v[None, :], np.float32)

    def forward_stretch(points: Floats) -> npt.NDArray[np.float32]:
        pu = (points - origin) @ e_u
        return np.asarray((LIP_STRETCH * pu)[:, None] * e_u[None, :], np.float32)

    # The inside of the mouth: the lip colour, much darker, as a shadowed cavity looks.
    cx, cy = np.round(lower.mean(axis=0)).astype(int)
    patch = image[max(0, cy - 3) : cy + 4, max(0, cx - 3) : cx + 4].reshape(-1, 3)
    lip_colour = patch.mean(axis=0) if patch.size else np.array([60, 60, 120], np.float32)
    return MouthRig(
        roi=roi,
        jaw=jaw,
        stretch=stretch,
        upper_lip=upper.astype(np.float32),
        lower_lip=lower.astype(np.float32),
        upper_open=forward_open(upper, -1.0, UPPER_LIP_RISE),
        lower_open=forward_open(lower, 1.0, 1.0),
        upper_stretch=forward_stretch(upper),
        lower_stretch=forward_stretch(lower),
        interior=(lip_colour * 0.28).astype(np.float32),
    )


def build_eye_rig(geometry: FaceGeometry, size: int) -> EyeRig | None:
    """Precompute the eyelid field: the upper lid slides down over the eye to the lower lid."""
    if not geometry.eyes:
        return None
    rois = []
    specs = []
    for eye in geometry.eyes:
        a, b = eye.upper[0], eye.upper[-1]
        e_u = _unit(b - a).astype(np.float32)
        e_v = np.array([-e_u[1], e_u[0]], np.float32)
        if e_v[1] < 0:
            e_v = -e_v
        origin = (a + b) / 2
        width = max(float(np.linalg.norm(b - a)), 4.0)
        up_u, up_v = (eye.upper - origin) @ e_u, (eye.upper - origin) @ e_v
        low_u, low_v = (eye.lower - origin) @ e_u, (eye.lower - origin) @ e_v
        opening = float(np.max(low_v) - np.min(up_v))
        # Only the lid skin just above the margin moves; brows (about 2 openings up) stay put.
        brow = max(1.1 * opening, 2.0)
        fall = max(1.0, 0.08 * width)
        rois.append(
            _roi(
                origin,
                e_u,
                e_v,
                (-0.7 * width, 0.7 * width),
                (-(brow + opening + 2), opening + fall + 3),
                size,
            )
        )
        specs.append((origin, e_u, e_v, up_u, up_v, low_u, low_v, brow, fall, width))
    roi = (
        min(r[0] for r in rois),
        max(r[1] for r in rois),
        min(r[2] for r in rois),
        max(r[3] for r in rois),
    )
    xs, ys = _grid(roi)
    field = np.zeros((*xs.shape, 2), np.float32)
    for origin, e_u, e_v, up_u, up_v, low_u, low_v, brow, fall, width in specs:
        rel_x, rel_y = xs - origin[0], ys - origin[1]
        u = rel_x * e_u[0] + rel_y * e_u[1]
        v = rel_x * e_v[0] + rel_y * e_v[1]
        top = _profile(u, up_u, up_v)
        bottom = _profile(u, low_u, low_v)
        inside = (np.abs(u) <= width / 2).astype(np.float32)
        height = np.maximum(bottom - top, 0) * inside
        # Closed, the aperture shows a thin band of lid skin (LID_BAND of the opening above the
        # margin) stretched down to the lower lid, rather than the crease's shadow higher up.
        band = LID_BAND * height
        above = band * _smoothstep(0.0, 1.0, (v - (top - brow)) / brow)
        across = band + (v - top) * (1 - LID_BAND)
        below = height * (1 - np.clip((v - bottom) / fall, 0, 1))
        along_v = -0.95 * np.where(v < top, above, np.where(v <= bottom, across, below))
        field[..., 0] += along_v * e_v[0]
        field[..., 1] += along_v * e_v[1]
    return EyeRig(roi=roi, blink=field)


def _clip_rig(
    roi: Slice, field: npt.NDArray[np.float32], box: Slice
) -> tuple[Slice, npt.NDArray[np.float32]]:
    # Express a region relative to the head box, cutting what falls outside it.
    y0, y1 = max(roi[0], box[0]), min(roi[1], box[1])
    x0, x1 = max(roi[2], box[2]), min(roi[3], box[3])
    y0, x0 = min(y0, y1), min(x0, x1)
    cut = field[y0 - roi[0] : y1 - roi[0], x0 - roi[2] : x1 - roi[2]]
    return (y0 - box[0], y1 - box[0], x0 - box[2], x1 - box[2]), np.ascontiguousarray(cut)


def prepare_warp(framed: FramedPortrait) -> WarpPortrait:
    """All per-portrait work of the warp engine."""
    size = framed.size
    geometry = framed.geometry
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    fx, fy, fw, fh = geometry.face_box
    center_x, center_y = fx + fw / 2, fy + fh / 2
    radius = np.sqrt(((xs - center_x) / (0.62 * fw)) ** 2 + ((ys - center_y) / (0.68 * fh)) ** 2)
    chin_y = float(geometry.chin[1])
    # The head sways; the shoulders and the background far from it stay put.
    mask = (1 - _smoothstep(1.0, 1.4, radius)) * (1 - _smoothstep(chin_y, chin_y + 0.5 * fh, ys))
    mouth = build_mouth_rig(framed.image, geometry, size)
    eyes = build_eye_rig(geometry, size)
    rows = np.flatnonzero(mask.max(axis=1) > 1e-3)
    cols = np.flatnonzero(mask.max(axis=0) > 1e-3)
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    for roi in [mouth.roi] + ([eyes.roi] if eyes else []):
        box = (min(box[0], roi[0]), max(box[1], roi[1]), min(box[2], roi[2]), max(box[3], roi[3]))
    mouth_roi, jaw = _clip_rig(mouth.roi, mouth.jaw, box)
    _, stretch = _clip_rig(mouth.roi, mouth.stretch, box)
    mouth = replace(mouth, roi=mouth_roi, jaw=jaw, stretch=stretch)
    if eyes is not None:
        eye_roi, blink = _clip_rig(eyes.roi, eyes.blink, box)
        eyes = EyeRig(roi=eye_roi, blink=blink)
    pivot_x, pivot_y = float(geometry.chin[0]), chin_y + 0.4 * fh
    y0, y1, x0, x1 = box

    def cut(values: Floats) -> Floats:
        return np.ascontiguousarray(values[y0:y1, x0:x1], dtype=np.float32)

    return WarpPortrait(
        image=framed.image,
        box=box,
        head_x=np.dstack([cut(xs), cut((ys - pivot_y) * mask), cut(mask)]),
        head_y=np.dstack([cut(ys), cut(-(xs - pivot_x) * mask), cut(mask)]),
        mouth=mouth,
        eyes=eyes,
        expressions=build_shape_fields(geometry, box),
    )


def _paint_interior(
    frame: npt.NDArray[np.uint8],
    polygon: npt.NDArray[np.float32],
    colour: npt.NDArray[np.float32],
    strength: float,
) -> None:
    size = frame.shape[0]
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 3
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 4
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    points = np.round((polygon - [x0, y0]) * 16).astype(np.int32)
    cv2.fillPoly(mask, [points], (255,), lineType=cv2.LINE_AA, shift=4)
    mask = np.asarray(cv2.GaussianBlur(mask, (3, 3), 0), np.uint8)
    alpha = mask.astype(np.float32)[..., None] * (strength / 255.0)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (region + alpha * (colour - region)).astype(np.uint8)


def render_frame(
    rig: WarpPortrait,
    mouth_open: float,
    mouth_width: float,
    blink: float,
    head: tuple[float, float, float],
    expression: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.uint8]:
    """One frame: identity + weighted fields, one remap, then the mouth's interior.

    `expression` holds a weight per shape (SHAPES' order); None is a neutral face.
    """
    size = rig.image.shape[0]
    shift_x, shift_y = head[0] * HEAD_SHIFT_X * size, head[1] * HEAD_SHIFT_Y * size
    roll = head[2] * HEAD_ROLL
    map_x = np.asarray(
        cv2.transform(rig.head_x, np.array([[1, roll, shift_x]], np.float32)), np.float32
    )
    map_y = np.asarray(
        cv2.transform(rig.head_y, np.array([[1, roll, shift_y]], np.float32)), np.float32
    )
    mouth = rig.mouth
    if mouth_open > EPSILON or abs(mouth_width) > EPSILON:
        y0, y1, x0, x1 = mouth.roi
        local = mouth.jaw * mouth_open + mouth.stretch * mouth_width
        map_x[y0:y1, x0:x1] += local[..., 0]
        map_y[y0:y1, x0:x1] += local[..., 1]
    if rig.eyes is not None and blink > EPSILON:
        y0, y1, x0, x1 = rig.eyes.roi
        map_x[y0:y1, x0:x1] += rig.eyes.blink[..., 0] * blink
        map_y[y0:y1, x0:x1] += rig.eyes.blink[..., 1] * blink
    lip_shift = np.zeros((2, *mouth.upper_lip.shape), np.float32)
    if expression is not None:
        for shape, weight in zip(SHAPES, expression, strict=True):
            field = rig.expressions.get(shape)
            if field is None or abs(weight) <= EPSILON:
                continue
            y0, y1, x0, x1 = field.roi
            # In place, one pass: the held expression costs ~2x15 us a frame at 512 px.
            cv2.scaleAdd(field.field_x, float(weight), map_x[y0:y1, x0:x1], map_x[y0:y1, x0:x1])
            cv2.scaleAdd(field.field_y, float(weight), map_y[y0:y1, x0:x1], map_y[y0:y1, x0:x1])
            lip_shift[0] += field.upper_lip * weight
            lip_shift[1] += field.lower_lip * weight
    frame = rig.image.copy()
    y0, y1, x0, x1 = rig.box
    frame[y0:y1, x0:x1] = cv2.remap(
        rig.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if mouth_open > 0.03:
        upper = mouth.upper_lip + mouth.upper_open * mouth_open + mouth.upper_stretch * mouth_width
        lower = mouth.lower_lip + mouth.lower_open * mouth_open + mouth.lower_stretch * mouth_width
        # The expression moves the lips too (a smile lifts the corners): the cavity follows.
        upper, lower = upper + lip_shift[0], lower + lip_shift[1]
        # The head's sway carries the lips along; follow it at the mouth's centre.
        cx, cy = np.round(mouth.lower_lip.mean(axis=0)).astype(int)
        cy = int(np.clip(cy - y0, 0, y1 - y0 - 1))
        cx = int(np.clip(cx - x0, 0, x1 - x0 - 1))
        sway_x, sway_y = rig.head_x[cy, cx], rig.head_y[cy, cx]
        offset = -np.array(
            [roll * sway_x[1] + shift_x * sway_x[2], roll * sway_y[1] + shift_y * sway_y[2]],
            np.float32,
        )
        polygon = np.concatenate([upper, lower[::-1]]) + offset
        _paint_interior(frame, polygon, mouth.interior, min(1.0, mouth_open * 3) * 0.9)
    return frame


class WarpEngine:
    """The default engine: landmark-driven warps on the CPU, no weights."""

    name = "warp"
    device = "cpu"

    def prepare(self, framed: FramedPortrait) -> WarpPortrait:
        """Build the portrait's warp fields once."""
        return prepare_warp(framed)

    def render(
        self,
        prepared: WarpPortrait,
        audio: npt.NDArray[np.float32],
        fps: int,
        frames: int,
        cue: ExpressionCue = NEUTRAL_CUE,
    ) -> Iterator[npt.NDArray[np.uint8]]:
        """Yield the frames for the audio, the face showing the cue's expression."""
        track = motion_from_audio(audio, fps, frames, seed=frames)
        expression = expression_track(cue, fps, frames)
        for i in range(frames):
            head = track.head[i]
            yield render_frame(
                prepared,
                float(track.mouth_open[i]),
                float(track.mouth_width[i]),
                float(track.blink[i]),
                (float(head[0]), float(head[1]), float(head[2])),
                expression[i],
            )
