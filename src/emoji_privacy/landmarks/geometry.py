"""Pure numpy/OpenCV geometry of 68-point landmarks: .pts files, head roll, the region to cover,
and the template points the FER alignment is fitted on.

Conventions: landmarks are (68, 2) float32 image pixel coordinates (0-based) in iBUG-68 order
(0-16 jaw, 17-26 brows, 27-35 nose, 36-41 eye on the image left, 42-47 other eye, 48-67 mouth);
boxes are (N, 4) float32 x0, y0, x1, y1. Nothing here reads a model file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

N_POINTS = 68

# Points of the FER template (iBUG indices, or a tuple meaning "mean of these").
TEMPLATE_POINTS: tuple[tuple[int, ...], ...] = (
    tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,), (8,))
# Fit weights: expressions move the mouth corners (smile) and the chin (open mouth) and FaceMesh's chin is
# the least stable point, so they count less than the eyes and nose: an open mouth must not shrink the face.
TEMPLATE_WEIGHTS = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.25])

FOREHEAD_RATIO = 0.6
"""Forehead height as a fraction of brow-to-chin. Anthropometry puts hairline-to-brow at ~0.45-0.5 of
brow-to-chin; 0.6 errs towards covering some hair, since what is left uncovered is identifying."""


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read a 300-W ``.pts`` file (header optional) as (68, 2) float32, converted from 1-based to 0-based."""
    values: list[tuple[float, float]] = []
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split()
        if len(parts) != 2:
            continue  # "{", "}", blank lines
        try:
            values.append((float(parts[0]), float(parts[1])))
        except ValueError:
            continue  # "version: 1", "n_points: 68"
    pts = np.asarray(values, dtype=np.float32)
    if pts.shape != (N_POINTS, 2):
        raise ValueError(f"{path}: expected {N_POINTS} points, found {len(values)}")
    return pts - 1.0


def check_boxes(boxes: np.ndarray, keypoints: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 4) float32 boxes and, if given, (N, 5, 2) float32 keypoints of the same count."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if keypoints is not None:
        keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, 5, 2)
        if len(keypoints) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(keypoints)} keypoint sets")
    return boxes, keypoints


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def rotation(angle: float) -> np.ndarray:
    """2x2 rotation matrix by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centers of the eye on the image left (36-41) and on the image right (42-47)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[36:42].mean(0), lm[42:48].mean(0)


def head_turn(landmarks: np.ndarray) -> float:
    """How far a face is turned, from its 68 landmarks: where the nose tip lies between the jaw's two ends,
    -1 (at the image-left end) .. 0 (midway, frontal) .. 1 (at the image-right end). 300-W's large-pose
    faces reach |turn| > 0.5; a frontal face stays under 0.15. Unlike the solvePnP yaw of head_pose.py it needs
    no 3D model, and on 300-W it follows the annotated turn closely where that yaw is compressed (a near-profile
    face: ~27 degrees)."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    left, right, nose = lm[0, 0], lm[16, 0], lm[30, 0]
    return float(np.clip(2 * (nose - left) / max(float(right - left), 1e-6) - 1, -1.0, 1.0))


def head_roll(landmarks: np.ndarray) -> float:
    """Roll in degrees, counter-clockwise positive on screen (the cv2.getRotationMatrix2D angle for the emoji)."""
    right, left = eye_centers(landmarks)
    dx, dy = left - right
    return float(-math.degrees(math.atan2(dy, dx)))


def _up_axis(landmarks: np.ndarray) -> np.ndarray:
    """Unit vector from chin towards forehead, perpendicular to the eye line (stable under roll and mouth opening)."""
    right, left = eye_centers(landmarks)
    e = left - right
    n = np.linalg.norm(e)
    up = np.array([e[1], -e[0]]) / n if n > 1e-6 else np.array([0.0, -1.0])
    lm = np.asarray(landmarks, dtype=np.float64)
    if np.dot(lm[27] - lm[8], up) < 0:  # face upside down relative to the eye order: trust nose-chin
        up = -up
    return up


def face_region(landmarks: np.ndarray, forehead: float = FOREHEAD_RATIO, margin: float = 0.08) -> np.ndarray:
    """Polygon (K, 2) to cover: the 68 points plus a forehead dome, grown by ``margin`` beyond jaw and chin."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(N_POINTS, 2)
    up = _up_axis(lm)
    side = np.array([-up[1], up[0]])  # along the eye line, image left -> right for an upright face
    brow_mid = lm[17:27].mean(0)
    height = max(float(np.dot(brow_mid - lm[8], up)), 1.0)
    half_w = max(float(np.abs((lm[[0, 16, 17, 26]] - brow_mid) @ side).max()), 0.5 * height)
    # upper half ellipse through the brows' ends and the hairline
    t = np.linspace(0.0, math.pi, 13)
    dome = brow_mid + np.outer(np.cos(t) * half_w, side) + np.outer(np.sin(t) * forehead * height, up)
    pts = np.vstack([lm, dome])
    center = lm.mean(0)
    pts = center + (pts - center) * (1.0 + margin)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    return hull.astype(np.float32)


def covering_circle(region: np.ndarray) -> tuple[tuple[float, float], float]:
    """Smallest circle containing the polygon, plus 1 px so rounding never leaves an edge uncovered."""
    (cx, cy), r = cv2.minEnclosingCircle(np.asarray(region, dtype=np.float32).reshape(-1, 1, 2))
    return (float(cx), float(cy)), float(r) + 1.0


def template_points(landmarks: np.ndarray) -> np.ndarray:
    """The TEMPLATE_POINTS (eye centers, nose tip, mouth corners, chin) of a 68-point set."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(N_POINTS, 2)
    return np.array([lm[list(ix)].mean(0) for ix in TEMPLATE_POINTS])


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares 2x3 similarity (rotation, uniform scale, shift; no reflection) mapping src to dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    var = (w * (a ** 2).sum(1)).sum()
    if var < 1e-12:
        return np.hstack([np.eye(2), (md - ms)[:, None]])
    # complex-number form: dst = z * src, z = sum(w conj(a) b) / sum(w |a|^2)
    za = a[:, 0] + 1j * a[:, 1]
    zb = b[:, 0] + 1j * b[:, 1]
    z = (w * np.conj(za) * zb).sum() / var
    r = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.hstack([r, (md - r @ ms)[:, None]])
