"""FER-style face alignment and the landmark backend registry.

``load_landmark_detector(name)`` builds a :class:`LandmarkDetector` backend: ``facemesh``
(facemesh.py, the offline default) or ``fan`` (fan.py, face-alignment's 2D-FAN). ``align_face``
crops a face the way FER2013 frames its faces, with the fitted template ``fer_template.npz`` from
the model-file resolver (a missing file is a ModelFileError, never a built-in guess).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ConfigError, ModelFileError
from ..model_files import MODEL_FILES, find_model_file
from .base import LandmarkDetector
from .facemesh import FaceMeshLandmarks
from .fan import FanLandmarks
from .geometry import TEMPLATE_POINTS, TEMPLATE_WEIGHTS, similarity_transform, template_points

__all__ = ["LANDMARK_BACKENDS", "LandmarkDetector", "align_face", "alignment_matrix", "fer_template",
           "load_landmark_detector"]

LANDMARK_BACKENDS: dict[str, type[LandmarkDetector]] = {"facemesh": FaceMeshLandmarks, "fan": FanLandmarks}


def load_landmark_detector(backend: str = "facemesh", **options) -> LandmarkDetector:
    """Build a landmark backend by name; options go to its constructor. The FER template that
    align_face uses on every backend's output is loaded here too, so a missing file stops start-up."""
    if backend not in LANDMARK_BACKENDS:
        raise ConfigError(f"unknown landmark backend '{backend}'; choose one of: {', '.join(LANDMARK_BACKENDS)}")
    fer_template()
    try:
        return LANDMARK_BACKENDS[backend](**options)
    except TypeError as e:
        raise ConfigError(f"landmark backend '{backend}': bad options {sorted(options)} ({e})") from e


_template_cache: dict[str, np.ndarray] = {}


def fer_template(path: str | os.PathLike | None = None) -> np.ndarray:
    """(6, 2) FER2013 framing of TEMPLATE_POINTS in 0..1 image coordinates: the medians that
    scripts/fit_fer_template.py measured, from ``fer_template.npz`` (the resolver's, or ``path``)."""
    key = str(path or "")
    if key not in _template_cache:  # the default is resolved once per process, not per face
        p = find_model_file("fer_template", path)
        try:
            with np.load(p) as z:
                pts = z["points"].astype(np.float32).reshape(len(TEMPLATE_POINTS), 2)
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"FER template {p} cannot be read ({e}); "
                                 f"{MODEL_FILES['fer_template'].how_to_get()}") from e
        _template_cache[key] = pts
    return _template_cache[key]


def alignment_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) similarity from frame pixels to a (size, size) crop framed like FER2013: the landmarks' template
    points onto the fitted template, the eye line level."""
    dst = fer_template().astype(np.float64) * size - 0.5  # 0..1 image extent -> pixel centres
    return similarity_transform(template_points(landmarks), dst, TEMPLATE_WEIGHTS)


def align_face(image_gray: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 upright crop framed like FER2013, which is what the emotion CNN was trained on."""
    img = image_gray
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    m = alignment_matrix(landmarks, size)
    crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # a colour frame is converted after the warp: the crop, not the (maybe 4K) frame
    return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
