"""Helpers of the web demo tests: the real server as a subprocess, and image comparisons."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from emoji_privacy import processes


def wait_for_server(base_url: str, proc, log_path: Path, timeout: float = 120.0) -> dict:
    """Poll /api/info until the server answers (models loaded); fail with its log otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the web server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/api/info", timeout=2) as r:
                return json.load(r)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    processes.stop(proc)
    raise RuntimeError(f"the web server did not answer within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def decode_data_url(url: str) -> np.ndarray:
    head, b64 = url.split(",", 1)
    assert head == "data:image/jpeg;base64", head
    img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "the returned image is not a decodable JPEG"
    return img


def box_mask(shape: tuple[int, ...], box: list[float], scale: float = 1.0) -> np.ndarray:
    """True inside ``box`` grown by ``scale`` about its centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2 * scale, (box[3] - box[1]) / 2 * scale
    mask = np.zeros(shape[:2], bool)
    mask[max(int(cy - hh), 0):max(int(cy + hh), 0), max(int(cx - hw), 0):max(int(cx + hw), 0)] = True
    return mask


def box_diff(a: np.ndarray, b: np.ndarray, box: list[float]) -> tuple[float, float]:
    """Mean absolute difference of two same-size images inside the face ``box``, and far from it
    (outside the box grown 2.5 times: the emoji covers more than the detector's box)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    inside, far = d[box_mask(a.shape, box)], d[~box_mask(a.shape, box, 2.5)]
    return float(inside.mean()) if inside.size else 0.0, float(far.mean()) if far.size else 0.0
