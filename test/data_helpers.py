"""Where the tests' inputs are: the repository, the shared data folder (skip when absent), frames of a shared video."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """A file under ../shared beside this checkout (or $EMOJI_PRIVACY_SHARED), or skip saying which is missing."""
    env = os.environ.get("EMOJI_PRIVACY_SHARED")
    base = Path(env) if env else REPO.parent / "shared"
    if not base.is_dir():
        pytest.skip("shared data folder (../shared or $EMOJI_PRIVACY_SHARED) is absent")
    p = base.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


def video_frames(name: str, step: int = 10, limit: int = 10) -> list[np.ndarray]:
    """Every ``step``-th frame of a shared video, at most ``limit``."""
    cap = cv2.VideoCapture(str(shared_path("data", "videos", name)))
    frames, i = [], 0
    while len(frames) < limit:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    return frames
