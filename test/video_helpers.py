"""Video clips made for the tests (a face panning across frames, written as H.264, with an AAC tone when asked),
and every frame of a video read back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TONE_HZ, AUDIO_RATE = 440, 16000


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10, tone: bool = True,
               metadata: dict[str, str] | None = None) -> Path:
    """An H.264 MP4 of ``frames`` (BGR) with, when ``tone``, a 440 Hz sine as an AAC track of the same length."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        c.metadata.update(metadata or {})
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=AUDIO_RATE, layout="mono") if tone else None
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        c.mux(v.encode(None))
        if a is not None:
            n = AUDIO_RATE * len(frames) // fps
            samples = (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / AUDIO_RATE)).astype(np.float32)
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = AUDIO_RATE, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def moving(img: np.ndarray, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` frames of ``img`` scaled to ``size`` (w, h), panning slowly (the tracker follows the face)."""
    base = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of the video at ``path``, BGR, in order."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames
