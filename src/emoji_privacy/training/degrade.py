"""Camera degradations of face crops: what a dim room, a moving head, a cheap lens, a streaming codec and
distance do to the 48x48 gray face the emotion model reads.

One fixed, documented set (``DEGRADATIONS``) serves two purposes, so they cannot drift apart: the robustness
benchmark (``bench/bench_emotion_robustness.py``) degrades FER2013 PrivateTest with each, and the trainer's
``degrade_p`` augmentation draws from the same functions (``degrade_batch``). Every function takes uint8 gray
faces (N, S, S) and a numpy generator (the only source of randomness), and returns uint8 faces of the same shape.
Sizes below are for S = 48 and scale with S.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["DEGRADATIONS", "DEGRADATION_NOTES", "degrade", "degrade_batch"]

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _scaled(images: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.rint(images.astype(np.float32) * gain), 0, 255).astype(np.uint8)


def _dark(gain: float) -> Degradation:
    def apply(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _scaled(images, gain)
    return apply


def _gamma(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** 2.2), 0, 255).astype(np.uint8)
    return lut[images]


DARK_NOISE_GAIN = 0.25
FULL_WELL = 1000.0  # photo-electrons at level 255: shot noise sd = sqrt(electrons)
READ_NOISE = 2.0  # levels


def _dark_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x0.25 exposure, then shot noise (Poisson in photo-electrons, full well 1000 e- at level 255) and read
    noise (Gaussian, sd 2 levels): a face at level 32 gets noise of sd ~3.5 levels on ~25 levels of contrast."""
    level = images.astype(np.float32) * DARK_NOISE_GAIN
    electrons = rng.poisson(level * (FULL_WELL / 255.0)).astype(np.float32)
    noisy = electrons * (255.0 / FULL_WELL) + rng.normal(0.0, READ_NOISE, images.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _motion_blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A straight smear 7 px long (15% of the face width) at a random angle per face: a head turning or a robot
    moving during a 1/30 s exposure."""
    s = images.shape[-1]
    length = max(3, round(7 * s / 48)) | 1
    out = np.empty_like(images)
    for i, im in enumerate(images):
        k = np.zeros((length, length), np.float32)
        k[length // 2] = 1.0
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        k = cv2.warpAffine(k, rot, (length, length), flags=cv2.INTER_LINEAR)
        out[i] = cv2.filter2D(im, -1, k / max(float(k.sum()), 1e-6), borderType=cv2.BORDER_REFLECT)
    return out


def _defocus(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform disk of radius 2 px (a lens focused elsewhere)."""
    s = images.shape[-1]
    r = max(1.0, 2.0 * s / 48)
    n = 2 * int(np.ceil(r)) + 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    k = (xx ** 2 + yy ** 2 <= r * r + 0.5).astype(np.float32)
    k /= k.sum()
    return np.stack([cv2.filter2D(im, -1, k, borderType=cv2.BORDER_REFLECT) for im in images]) if len(images) \
        else images.copy()


def _jpeg(quality: int) -> Degradation:
    def apply(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(images)
        for i, im in enumerate(images):
            ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])
            out[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else im
        return out
    return apply


def _low_res(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face seen 20-24 px wide (uniform per face), brought back to the model's size with bilinear
    interpolation, as ``align_face`` enlarges a small face."""
    s = images.shape[-1]
    out = np.empty_like(images)
    for i, im in enumerate(images):
        small = max(4, round(int(rng.integers(20, 25)) * s / 48))
        tiny = cv2.resize(im, (small, small), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(tiny, (s, s), interpolation=cv2.INTER_LINEAR)
    return out


DEGRADATIONS: dict[str, Degradation] = {
    "dark_x0.35": _dark(0.35),
    "dark_x0.2": _dark(0.2),
    "gamma_2.2": _gamma,
    "dark_noise": _dark_noise,
    "motion_blur": _motion_blur,
    "defocus": _defocus,
    "jpeg_q20": _jpeg(20),
    "low_res": _low_res,
}
"""Name -> degradation; the benchmark's conditions, in its order."""

DEGRADATION_NOTES: dict[str, str] = {
    "dark_x0.35": "every level x0.35 (mean gray ~45: a dim room)",
    "dark_x0.2": "every level x0.2 (mean gray ~25: a dark hall)",
    "gamma_2.2": "levels^2.2 (crushed shadows: an auto-exposure that gave up)",
    "dark_noise": f"x{DARK_NOISE_GAIN} with shot noise (full well {FULL_WELL:g} e-) and read noise (sd {READ_NOISE:g})",
    "motion_blur": "a 7 px straight smear at a random angle",
    "defocus": "a disk blur of radius 2 px",
    "jpeg_q20": "a JPEG round trip at quality 20",
    "low_res": "the face 20-24 px wide, upscaled bilinearly",
}


def degrade(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """``images`` under the degradation ``name``, reproducibly (``seed``)."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name](np.asarray(images, np.uint8), np.random.default_rng(seed))


def degrade_batch(images: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation: each face, with probability ``p``, under one degradation drawn uniformly from
    ``DEGRADATIONS`` (the others unchanged)."""
    out = np.array(images, np.uint8, copy=True)
    if p <= 0 or not len(out):
        return out
    chosen = np.where(rng.random(len(out)) < p, rng.integers(0, len(DEGRADATIONS), len(out)), -1)
    for k, fn in enumerate(DEGRADATIONS.values()):
        idx = np.flatnonzero(chosen == k)
        if len(idx):
            out[idx] = fn(out[idx], rng)
    return out
