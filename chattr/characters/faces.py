"""Whether a picture shows a face: the check an expression sprite must pass at import.

MediaPipe's face mesh (its model ships in the wheel), the detector visualizr animates faces by,
so a sprite accepted here is one the talking head can move.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

# MediaPipe looks at a 192-256 px face anyway; bigger inputs only cost time.
DETECT_MAX_SIDE = 1024

_lock = threading.Lock()  # a FaceMesh graph is not thread-safe
_mesh: Any = None


def has_face(image: Image.Image) -> bool:
    """Whether MediaPipe's face mesh finds a face in the image."""
    global _mesh
    picture = image.convert("RGB")
    picture.thumbnail((DETECT_MAX_SIDE, DETECT_MAX_SIDE))
    pixels = np.ascontiguousarray(np.asarray(picture, np.uint8))
    with _lock:
        if _mesh is None:
            from mediapipe.python.solutions import face_mesh

            _mesh = face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, min_detection_confidence=0.5
            )
        result = _mesh.process(pixels)
    return bool(result.multi_face_landmarks)
