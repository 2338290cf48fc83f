"""Image-based refinement of the 68 landmarks: a short cascade of per-point linear regressions on
local gradient features (supervised descent), fitted on 300-W helen_train by scripts/fit_facemesh68.py.

Why: the 468 -> 68 map only sees FaceMesh's mesh, but several 300-W points are defined by edges in
the image (the jaw's visible outline, the brows, the lips), which the mesh follows only roughly. Each
stage looks at the gradients around every point and moves it; it costs well under a millisecond.

Frame: everything happens in the mesh's own normalised frame (origin, eye-line rotation and RMS
scale of the FaceMesh vertices; see facemesh.mesh_features). The face crop is warped into a
``side`` x ``side`` image where one normalised unit is ``units`` pixels. Features per point: a
``grid`` x ``grid`` block of ``cell``-pixel cells around it, each with 8 channels of gradient energy
(4 directions, each split into its positive and negative half, tuned by cos^2), L2-normalised per
point. A stage moves point i by a ridge regression on the features of its ``k`` nearest points
(in the mean shape) and the current shape.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelFileError

N_POINTS = 68
CHANNELS = 8
_DIRECTIONS = tuple((math.cos(a), math.sin(a)) for a in (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4))
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureGeometry:
    """Where the features are taken: frame size, its scale, and the cells around each point."""

    side: int = 96
    units: float = 27.0
    cell: int = 4
    grid: int = 3

    @property
    def size(self) -> int:
        """Feature length per point."""
        return self.grid * self.grid * CHANNELS


def frame_transform(origin: np.ndarray, rotation: np.ndarray, scale: float, geom: FeatureGeometry) -> np.ndarray:
    """2x3 affine from crop pixels to the feature frame's pixels (normalised coordinate u -> side/2 + units*u)."""
    a = geom.units * np.asarray(rotation, np.float64).T / scale
    return np.hstack([a, (geom.side / 2 - a @ np.asarray(origin, np.float64))[:, None]])


def gradient_channels(gray_frame: np.ndarray, cell: int) -> np.ndarray:
    """(side, side, 8) per-pixel sums over a ``cell`` box of orientation-tuned gradient energy.

    For direction d: max(+-g.d, 0)^2 / |g|, i.e. |g| cos^2 of the angle on the side it points to.
    The two halves of one direction add up to (g.d)^2 / |g|, so each is computed once.
    """
    img = gray_frame.astype(np.float32) * np.float32(1.0 / 255.0) if gray_frame.dtype == np.uint8 else gray_frame
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1)
    # not cv2.magnitude: its Intel IPP path gave results differing in the last bit from call to call on the same
    # input (the memory's alignment), which made the landmarks, and so a file's output, differ between runs
    inv_mag = 1.0 / (np.sqrt(gx * gx + gy * gy) + np.float32(1e-3))
    proj = np.empty(gx.shape + (len(_DIRECTIONS),), np.float32)
    for k, (c, s) in enumerate(_DIRECTIONS):
        proj[..., k] = gx * np.float32(c) + gy * np.float32(s)
    energy = proj * proj * inv_mag[..., None]
    chans = np.empty(gx.shape + (CHANNELS,), np.float32)
    positive = chans[..., 0::2]
    np.multiply(energy, proj > 0, out=positive)
    np.subtract(energy, positive, out=chans[..., 1::2])
    return cv2.boxFilter(chans, -1, (cell, cell))


def point_descriptors(channels: np.ndarray, points_px: np.ndarray, geom: FeatureGeometry) -> np.ndarray:
    """(68, grid*grid*8) features around each point (frame pixels), L2-normalised per point."""
    off = (np.arange(geom.grid) - (geom.grid - 1) / 2) * geom.cell
    gx, gy = np.meshgrid(off, off)
    hi = geom.side - 1
    x = np.clip(np.rint(points_px[:, 0, None] + gx.ravel()[None]), 0, hi).astype(np.intp)
    y = np.clip(np.rint(points_px[:, 1, None] + gy.ravel()[None]), 0, hi).astype(np.intp)
    f = channels[y, x].reshape(len(points_px), -1)
    f /= np.linalg.norm(f, axis=1, keepdims=True) + np.float32(1e-6)
    return f


def frame_channels(gray_crop: np.ndarray, origin: np.ndarray, rotation: np.ndarray, scale: float,
                   geom: FeatureGeometry) -> np.ndarray:
    """Gradient channels of the face in its normalised frame, from the (uint8 gray) FaceMesh crop."""
    m = frame_transform(origin, rotation, scale, geom)
    frame = cv2.warpAffine(gray_crop, m, (geom.side, geom.side), flags=cv2.INTER_LINEAR)
    return gradient_channels(frame, geom.cell)


def stage_features(descriptors: np.ndarray, shapes: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(N, 68, k*D + 136): for each point, its k neighbours' descriptors and the whole current shape."""
    n = len(descriptors)
    near = descriptors[:, neighbours].reshape(n, N_POINTS, -1)  # (N, 68, k*D)
    shape = np.broadcast_to(shapes.reshape(n, 1, -1), (n, N_POINTS, shapes[0].size))
    return np.concatenate([near, shape.astype(near.dtype)], axis=2)


def fit_stage(features: np.ndarray, residuals: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-point ridge (features centred, so the bias is not penalised): (N,68,F), (N,68,2) -> W (68,F,2), b (68,2)."""
    n, p, f = features.shape
    weights = np.zeros((p, f, 2), np.float64)
    bias = np.zeros((p, 2), np.float64)
    for i in range(p):
        x = features[:, i].astype(np.float64)
        mx, my = x.mean(0), residuals[:, i].mean(0)
        xc = x - mx
        w = np.linalg.solve(xc.T @ xc + lam * n * np.eye(f), xc.T @ (residuals[:, i] - my))
        weights[i], bias[i] = w, my - mx @ w
    return weights, bias


def apply_stage(features: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(N,68,F) features -> (N,68,2) point moves (a batched matmul: einsum is 3x slower here)."""
    return np.matmul(features.transpose(1, 0, 2), weights).transpose(1, 0, 2) + bias


class LandmarkRefiner:
    """The cascade stored in a ``.npz`` by scripts/fit_facemesh68.py."""

    def __init__(self, path: str | os.PathLike) -> None:
        p = Path(path)
        try:
            with np.load(p) as z:
                if int(z["format_version"]) != FORMAT_VERSION:
                    raise ValueError(f"format {int(z['format_version'])}, want {FORMAT_VERSION}")
                self.geom = FeatureGeometry(int(z["side"]), float(z["units"]), int(z["cell"]), int(z["grid"]))
                self.neighbours = z["neighbours"].astype(np.intp)
                self.weights = z["weights"].astype(np.float32)  # (stages, 68, F, 2)
                self.biases = z["biases"].astype(np.float32)  # (stages, 68, 2)
        except (OSError, KeyError, ValueError) as e:
            raise ModelFileError(f"landmark refiner {p} cannot be read ({e}); "
                                 "re-create it with scripts/fit_facemesh68.py") from e
        want = self.neighbours.shape[1] * self.geom.size + 2 * N_POINTS
        if self.weights.shape[1:] != (N_POINTS, want, 2) or self.biases.shape != (len(self.weights), N_POINTS, 2):
            raise ModelFileError(f"landmark refiner {p} has weights {self.weights.shape} that do not fit its "
                                 f"geometry; re-create it with scripts/fit_facemesh68.py")

    def refine(self, gray_crop: np.ndarray, origin: np.ndarray, rotation: np.ndarray, scale: float,
               shape: np.ndarray) -> np.ndarray:
        """(68,2) points in the normalised frame -> refined points in the same frame."""
        chans = frame_channels(gray_crop, origin, rotation, scale, self.geom)
        pts = np.asarray(shape, np.float32).reshape(1, N_POINTS, 2)
        half = np.float32(self.geom.side / 2)
        for w, b in zip(self.weights, self.biases, strict=True):
            desc = point_descriptors(chans, pts[0] * np.float32(self.geom.units) + half, self.geom)
            pts = pts + apply_stage(stage_features(desc[None], pts, self.neighbours), w, b)
        return pts[0].astype(np.float64)


def save_refiner(path: str | os.PathLike, geom: FeatureGeometry, neighbours: np.ndarray,
                 stages: list[tuple[np.ndarray, np.ndarray]], **meta: object) -> Path:
    """Write a cascade (list of (weights, bias) per stage) that LandmarkRefiner reads."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, format_version=FORMAT_VERSION, side=geom.side, units=geom.units, cell=geom.cell,
                        grid=geom.grid, neighbours=np.asarray(neighbours, np.int16),
                        weights=np.stack([w for w, _ in stages]).astype(np.float32),
                        biases=np.stack([b for _, b in stages]).astype(np.float32), **meta)
    return out
