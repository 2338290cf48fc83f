"""FER2013 faces cut the way the pipeline cuts a camera's faces, so that a classifier can learn its framing.

FER2013's own crops keep each head's roll and framing; the pipeline levels the eye line and frames every face on
the fitted template (landmarks.align.align_face). bench/bench_emotion_alignment.py measured what that difference
costs a classifier trained on the dataset's crops (0.8 points upright). ``pipeline_crops`` gives every face the
pipeline's treatment: upscaled 4x (bicubic), found by the configured detector, its 68 landmarks located, and cut by
align_face. The landmark pass over the 35,887 faces takes about 8 minutes on 2 cores, so the result is cached
(keyed by the images and by the model files it used).
"""

from __future__ import annotations

import hashlib
import sys

import cv2
import numpy as np

from ..model_files import cache_dir, find_model_file, sha256_of
from .data import FerData, read_npz_cache, write_npz_cache

UPSCALE = 192
"""Side the 48 px faces are upscaled to before detection: the detector's smallest faces are ~20 px, and the
landmark backends expect camera-sized faces."""

CROP_MODEL_FILES = ("yunet", "facemesh", "facemesh68_map", "facemesh68_refiner", "fer_template")
"""Model files whose change changes the crops (the cache key holds their hashes)."""

CACHE_VERSION = "v1"


def upscaled(face48: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """The FER crop upscaled to UPSCALE and turned by ``angle`` degrees (counter-clockwise), as BGR."""
    big = cv2.resize(face48, (UPSCALE, UPSCALE), interpolation=cv2.INTER_CUBIC)
    if angle:
        m = cv2.getRotationMatrix2D(((UPSCALE - 1) / 2, (UPSCALE - 1) / 2), angle, 1.0)
        big = cv2.warpAffine(big, m, (UPSCALE, UPSCALE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def face_box(dets: object) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The detection holding the crop's centre (the largest if several), else the whole crop; and whether the
    detector found it."""
    c = (UPSCALE - 1) / 2
    best, area = -1, 0.0
    for i, (x0, y0, x1, y1) in enumerate(dets.boxes):
        if x0 <= c <= x1 and y0 <= c <= y1 and (x1 - x0) * (y1 - y0) > area:
            best, area = i, (x1 - x0) * (y1 - y0)
    if best < 0:
        return np.array([[0, 0, UPSCALE, UPSCALE]], np.float32), None, False
    return dets.boxes[best:best + 1], dets.keypoints[best:best + 1], True


def pipeline_tools() -> tuple[object, object]:
    """(detector, landmark detector): the default config's detector backend with its score threshold and max
    side only (the settings bench_emotion_alignment has measured with; the listener's other detector keys are
    left at the backend's defaults), and its landmark backend."""
    from ..config import PipelineConfig
    from ..detection import load_face_detector
    from ..landmarks.align import load_landmark_detector

    cfg = PipelineConfig()
    detector = load_face_detector(cfg.detector.backend, score_threshold=cfg.detector.score_threshold,
                                  max_side=cfg.detector.max_side)
    return detector, load_landmark_detector(cfg.landmarks.backend)


def _cache_key(images: np.ndarray, size: int) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{size}|{images.shape}|".encode())
    h.update(np.ascontiguousarray(images).data)
    for key in CROP_MODEL_FILES:
        h.update(f"|{key}={sha256_of(find_model_file(key))}".encode())
    return h.hexdigest()[:16]


def pipeline_crops(data: FerData, size: int = 48, cache: bool = True, progress: bool = True) -> FerData:
    """``data`` with every face replaced by the pipeline's aligned crop of it (``size`` px; labels and splits
    unchanged). Where the detector misses a face, its landmarks are looked for in the whole upscaled crop, as
    the alignment benchmark does."""
    from tqdm import tqdm

    from ..landmarks.align import align_face

    path = cache_dir("data") / f"fer2013-aligned-{_cache_key(data.images, size)}.npz" if cache else None
    cached = read_npz_cache(path, ("images",)) if path is not None else None
    if cached is not None:
        return FerData(cached["images"], data.labels, data.splits, f"{data.source} (pipeline crops)")
    detector, landmarker = pipeline_tools()
    out = np.empty((len(data.images), size, size), np.uint8)
    missed = 0
    for i, face in enumerate(tqdm(data.images, desc="pipeline crops", unit="face", disable=not progress,
                                  mininterval=2.0)):
        bgr = upscaled(face)
        box, kps, found = face_box(detector.detect(bgr))
        missed += not found
        out[i] = align_face(bgr[..., 0], landmarker.detect(bgr, box, kps)[0], size)
    if progress:
        print(f"pipeline crops: {len(out)} faces, the detector missed {missed} (cut from their whole crop)",
              file=sys.stderr, flush=True)
    if path is not None:
        write_npz_cache(path, images=out)
    return FerData(out, data.labels, data.splits, f"{data.source} (pipeline crops)")
