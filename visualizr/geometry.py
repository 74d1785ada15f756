"""Where the face, mouth and eyes are in a portrait: MediaPipe face mesh, or geometry declared
in `character.yaml` for portraits a detector cannot read (drawings)."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from visualizr.errors import NoFace

# MediaPipe face-mesh indices (478-point mesh with refined irises).
INNER_UPPER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LOWER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
EYE_UPPER = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133),
    (362, 398, 384, 385, 386, 387, 388, 466, 263),
)
EYE_LOWER = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133),
    (362, 382, 381, 380, 374, 373, 390, 249, 263),
)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
CHIN = 152
# Each brow as pairs (upper edge, lower edge), from the outer end to the inner one.
BROWS = (
    ((70, 46), (63, 53), (105, 52), (66, 65), (107, 55)),
    ((300, 276), (293, 283), (334, 282), (296, 295), (336, 285)),
)
# MediaPipe looks at a 192-256 px face anyway; bigger inputs only cost time.
DETECT_MAX_SIDE = 1024


@dataclass(frozen=True)
class Eye:
    """One eye's lid contours, each from one corner to the other."""

    upper: npt.NDArray[np.float32]
    lower: npt.NDArray[np.float32]


@dataclass(frozen=True)
class FaceGeometry:
    """Face geometry in image pixels (x right, y down)."""

    face_box: tuple[float, float, float, float]
    upper_lip: npt.NDArray[np.float32]  # inner contour, corner to corner (k, 2)
    lower_lip: npt.NDArray[np.float32]  # inner contour, corner to corner (k, 2)
    outer_lower_lip: npt.NDArray[np.float32]  # outer contour of the lower lip (k, 2)
    chin: npt.NDArray[np.float32]
    eyes: tuple[Eye, ...]
    detected: bool
    # Each brow's middle line, outer end to inner end (k, 2); none for declared boxes.
    brows: tuple[npt.NDArray[np.float32], ...] = ()

    def transformed(self, affine: npt.NDArray[np.float32]) -> FaceGeometry:
        """The same geometry after a 2x3 affine map (e.g. into a crop)."""

        def move(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            return np.asarray(points @ affine[:, :2].T + affine[:, 2], dtype=np.float32)

        x, y, w, h = self.face_box
        corners = move(np.array([[x, y], [x + w, y + h]], np.float32))
        box = (
            float(corners[:, 0].min()),
            float(corners[:, 1].min()),
            float(abs(corners[1, 0] - corners[0, 0])),
            float(abs(corners[1, 1] - corners[0, 1])),
        )
        return FaceGeometry(
            face_box=box,
            upper_lip=move(self.upper_lip),
            lower_lip=move(self.lower_lip),
            outer_lower_lip=move(self.outer_lower_lip),
            chin=move(self.chin[None])[0],
            eyes=tuple(Eye(move(eye.upper), move(eye.lower)) for eye in self.eyes),
            detected=self.detected,
            brows=tuple(move(brow) for brow in self.brows),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the disk cache."""
        return {
            "face_box": list(self.face_box),
            "upper_lip": self.upper_lip.tolist(),
            "lower_lip": self.lower_lip.tolist(),
            "outer_lower_lip": self.outer_lower_lip.tolist(),
            "chin": self.chin.tolist(),
            "eyes": [{"upper": e.upper.tolist(), "lower": e.lower.tolist()} for e in self.eyes],
            "detected": self.detected,
            "brows": [brow.tolist() for brow in self.brows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceGeometry:
        """Inverse of `to_json`."""

        def arr(value: Any) -> npt.NDArray[np.float32]:
            return np.asarray(value, np.float32)

        return cls(
            face_box=tuple(float(v) for v in data["face_box"]),  # type: ignore[arg-type]
            upper_lip=arr(data["upper_lip"]),
            lower_lip=arr(data["lower_lip"]),
            outer_lower_lip=arr(data["outer_lower_lip"]),
            chin=arr(data["chin"]),
            eyes=tuple(Eye(arr(e["upper"]), arr(e["lower"])) for e in data["eyes"]),
            detected=bool(data["detected"]),
            # Required: a cache written before brows were kept is re-detected (KeyError).
            brows=tuple(arr(brow) for brow in data["brows"]),
        )


def geometry_from_landmarks(points: npt.NDArray[np.floating[Any]]) -> FaceGeometry:
    """Build geometry from the 478 face-mesh landmarks (pixels)."""
    oval = points[list(FACE_OVAL)]
    x0, y0 = oval.min(axis=0)
    x1, y1 = oval.max(axis=0)
    return FaceGeometry(
        face_box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        upper_lip=points[list(INNER_UPPER_LIP)].astype(np.float32),
        lower_lip=points[list(INNER_LOWER_LIP)].astype(np.float32),
        outer_lower_lip=points[list(OUTER_LOWER_LIP)].astype(np.float32),
        chin=points[CHIN].astype(np.float32),
        eyes=tuple(
            Eye(points[list(up)].astype(np.float32), points[list(low)].astype(np.float32))
            for up, low in zip(EYE_UPPER, EYE_LOWER, strict=True)
        ),
        detected=True,
        brows=tuple(
            np.asarray([(points[a] + points[b]) / 2 for a, b in brow], np.float32) for brow in BROWS
        ),
    )


def geometry_from_boxes(
    face_box: tuple[float, float, float, float],
    mouth_box: tuple[float, float, float, float] | None,
) -> FaceGeometry:
    """Geometry declared in character.yaml: a face box and optionally a mouth box (no eyes)."""
    fx, fy, fw, fh = face_box
    if mouth_box is None:
        # Typical proportions: the mouth sits about 3/4 down the face, 40% of its width.
        mouth_box = (fx + 0.3 * fw, fy + 0.68 * fh, 0.4 * fw, 0.12 * fh)
    mx, my, mw, mh = mouth_box
    xs = np.linspace(mx, mx + mw, 11, dtype=np.float32)
    seam = np.full_like(xs, my + mh / 2)
    bulge = np.sin(np.linspace(0, np.pi, 11, dtype=np.float32))
    seam_line = np.stack([xs, seam], axis=1)
    outer = np.stack([xs, seam + bulge * mh / 2], axis=1)
    return FaceGeometry(
        face_box=(float(fx), float(fy), float(fw), float(fh)),
        upper_lip=seam_line.copy(),
        lower_lip=seam_line.copy(),
        outer_lower_lip=outer,
        chin=np.array([fx + fw / 2, fy + fh], np.float32),
        eyes=(),
        detected=False,
    )


# Where set-up (`make setup`, the image) leaves the shipped characters' face geometry.
PREPARED_FACES_DIR = Path(sys.prefix) / "share" / "visualizr" / "faces"


class FaceLocator:
    """MediaPipe's legacy face mesh (its model ships in the wheel), results cached on disk.

    `prepared_dir`: geometry found at set-up for the shipped characters' portraits
    (`visualizr.prepare_faces`), read before the cache and never written. A cold start then
    neither imports MediaPipe nor runs it (0.5-0.9 s of CPU while chattr starts beside it);
    a portrait that differs in any byte or declared box has another key, and is located."""

    def __init__(self, cache_dir: Path | None = None, prepared_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._prepared_dir = prepared_dir
        self._lock = threading.Lock()  # a FaceMesh graph is not thread-safe
        self._mesh: Any = None

    def _detect(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.floating[Any]] | None:
        height, width = image_bgr.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = image_bgr
        if scale < 1.0:
            small = np.asarray(
                cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                np.uint8,
            )
        rgb = np.ascontiguousarray(small[:, :, ::-1])
        with self._lock:
            if self._mesh is None:
                from mediapipe.python.solutions import face_mesh

                self._mesh = face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=1,
                    refine_landmarks=True,
                    min_detection_confidence=0.5,
                )
            result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        landmarks = result.multi_face_landmarks[0].landmark
        size = np.array([small.shape[1], small.shape[0]], np.float32)
        points = np.array([[p.x, p.y] for p in landmarks], np.float32) * size
        return points / scale

    def locate(
        self,
        image_bgr: npt.NDArray[np.uint8],
        key: str,
        *,
        face_box: tuple[float, float, float, float] | None = None,
        mouth_box: tuple[float, float, float, float] | None = None,
    ) -> FaceGeometry:
        """Face geometry of an image; declared boxes are the fallback when detection fails."""
        name = f"{key}.face.json"
        if self._prepared_dir is not None:
            try:
                return FaceGeometry.from_json(json.loads((self._prepared_dir / name).read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # none prepared for this portrait (or an older form): the cache, or find it
        cache_file = self._cache_dir / name if self._cache_dir else None
        if cache_file is not None and cache_file.exists():
            try:
                return FaceGeometry.from_json(json.loads(cache_file.read_text()))
            except (ValueError, KeyError, TypeError):
                cache_file.unlink(missing_ok=True)
        points = self._detect(image_bgr)
        if points is not None:
            geometry = geometry_from_landmarks(points)
        elif face_box is not None:
            geometry = geometry_from_boxes(face_box, mouth_box)
        else:
            raise NoFace(
                "no face found in the portrait; send a clear frontal face, or declare "
                "portrait.face_box (and mouth_box) in the character's character.yaml"
            )
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(geometry.to_json()))
            tmp.replace(cache_file)
        return geometry

    def close(self) -> None:
        """Release the MediaPipe graph."""
        with self._lock:
            if self._mesh is not None:
                self._mesh.close()
                self._mesh = None
