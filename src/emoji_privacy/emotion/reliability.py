"""When a face's emotion can be read: one rule for the listener, the tool, the website and evaluate_bag.

A classifier always answers, even for a face in profile, a face in the dark or a face it finds ambiguous, and on
such faces its answer is mostly wrong (bench/results/emotion_robustness.md). "Unknown" is then the honest answer:
the face stays covered, and its track keeps the last emotion it read reliably (or shows the neutral "unknown"
cover until it has one). A reading is reliable when the face is

- wide enough (``emotion/min_face`` px; narrower faces are not classified at all),
- turned no further than ``max_turn`` from the camera (``landmarks.geometry.head_turn``: where the nose lies
  between the jaw's ends, 0 frontal, 1 a full profile; a profile is not a readable expression; a face without
  model landmarks, under ``landmarks/min_face``, has no turn and is not held to it),
- not flat: the aligned crop's spread of gray levels is at least ``min_contrast`` (a face in near darkness is
  noise stretched by the classifier's normalisation),
- and the classifier is sure enough: its calibrated top probability is at least ``min_confidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["READ", "SMALL", "TURNED", "FAINT", "UNCERTAIN", "READINGS", "ReadingRule", "crop_contrast"]

READ = "read"
"""The face's emotion was read reliably in this frame."""
SMALL = "small"
"""Narrower than emotion/min_face: not classified."""
TURNED = "turned"
"""Head turned too far from the camera (yaw or pitch)."""
FAINT = "faint"
"""Too little contrast in the face (dark, or washed out)."""
UNCERTAIN = "uncertain"
"""The classifier's calibrated confidence is under the threshold."""
READINGS: tuple[str, ...] = (READ, SMALL, TURNED, FAINT, UNCERTAIN)


def crop_contrast(crops: np.ndarray) -> np.ndarray:
    """Per aligned gray crop (N, S, S), the standard deviation of its levels over the central 3/4 (the face, not
    the corners the warp filled): what ``min_contrast`` is compared with."""
    crops = np.asarray(crops, np.float32)
    if crops.ndim != 3 or not len(crops):
        return np.zeros(len(crops) if crops.ndim else 0, np.float32)
    s = crops.shape[-1]
    m = s // 8
    return crops[:, m:s - m, m:s - m].reshape(len(crops), -1).std(axis=1)


@dataclass(frozen=True)
class ReadingRule:
    """Whether one classified face's emotion is reliable; ``judge`` says why not."""

    min_confidence: float = 0.0
    max_turn: float = 1.0
    min_contrast: float = 0.0

    def judge(self, probs: np.ndarray, contrast: float, turn: float = math.nan) -> str:
        """READ, or the first reason (TURNED, FAINT, UNCERTAIN) this face's reading is not reliable; ``turn``:
        ``head_turn`` of the face's model landmarks (NaN: not known)."""
        if not math.isnan(turn) and abs(turn) > self.max_turn:
            return TURNED
        if contrast < self.min_contrast:
            return FAINT
        if float(np.max(probs)) < self.min_confidence:
            return UNCERTAIN
        return READ

    def judge_many(self, probs: np.ndarray, contrast: np.ndarray) -> np.ndarray:
        """``judge`` for a batch of faces without a pose (the benchmark's FER crops): an array of readings."""
        out = np.full(len(probs), READ, dtype=object)
        out[np.max(probs, axis=1) < self.min_confidence] = UNCERTAIN
        out[np.asarray(contrast) < self.min_contrast] = FAINT
        return out
