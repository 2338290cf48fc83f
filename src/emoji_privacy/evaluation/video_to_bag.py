"""Make a test bag from a video, an image folder or the demo scene.

Each frame becomes a sensor_msgs/Image in the chosen encoding, or a CompressedImage for
``jpeg``/``png``, stamped at the source's own frame rate (``--fps`` to override) from a start
time (default: now); the bag time of each message is its stamp. Optional perturbations make
harder variants of the same footage for the privacy benchmarks.

    python -m emoji_privacy.evaluation video_to_bag clip.mp4 clip.bag
    rosrun emoji_privacy video_to_bag clip.mp4 clip.bag --encoding jpeg --perturb blur
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import EmojiPrivacyError
from ..image_io import ENCODINGS
from ..sources import DemoSource, open_source
from .synthetic import light_map, low_light

BLUR_PERIOD = 40  # frames of one motion-blur cycle
DIP_PERIOD, DIP_FRAMES, DIP_GAIN = 45, 8, 0.3  # brightness drops: 8 of every 45 frames at 30% brightness
DROP_FRACTION = 0.3  # share of frames the 'drop' perturbation removes
LOW_LIGHT_SEED = 7  # seed of the 'lowlight' sensor noise (with the frame index)


def motion_blur(frame: np.ndarray, index: int) -> np.ndarray:
    """Linear motion blur whose length (3 to 21 px) and direction change over time, as from a
    turning robot head."""
    length = int(round(12 + 9 * np.sin(2 * np.pi * index / BLUR_PERIOD)))
    if length < 3:
        return frame
    angle = 180.0 * ((index // BLUR_PERIOD) % 4) / 4
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return cv2.filter2D(frame, -1, kernel / max(float(kernel.sum()), 1e-6))


def brightness_drop(frame: np.ndarray, index: int) -> np.ndarray:
    """Short drops to 30% brightness (auto-exposure hunting, a light switched off and on)."""
    if index % DIP_PERIOD >= DIP_PERIOD - DIP_FRAMES:
        return cv2.convertScaleAbs(frame, alpha=DIP_GAIN)
    return frame


def downscale(frame: np.ndarray, index: int) -> np.ndarray:
    """A 320x240 camera."""
    return cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=4)
def _hall_light(width: int, height: int) -> np.ndarray:
    return light_map(width, height)


def low_light_perturbation(frame: np.ndarray, index: int) -> np.ndarray:
    """A dim hall through a small camera (synthetic.low_light): face levels ~10-40 through a gamma curve,
    lifted blacks, light falling off to the corners with a spotlight at the top right, shot and read
    noise per channel and a JPEG round trip; the noise is new in every frame. Not a uniform brightness
    scale: detectors that cope with 'dark' can still fail here."""
    h, w = frame.shape[:2]
    return low_light(frame, _hall_light(w, h), rng=np.random.default_rng([LOW_LIGHT_SEED, index]))


PERTURBATIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "blur": motion_blur, "dark": brightness_drop, "downscale": downscale, "lowlight": low_light_perturbation,
}
"""Name -> frame transform; 'drop' (removing frames, stamps unchanged) is handled by the writer."""

PERTURBATION_NAMES = (*PERTURBATIONS, "drop")


def kept(index: int, drop: bool, seed: int = 0) -> bool:
    """Whether frame ``index`` survives the 'drop' perturbation (a fixed pseudo-random 30%, often
    several in a row, is removed)."""
    if not drop:
        return True
    return np.random.default_rng([seed, index]).random() >= DROP_FRACTION


def convert(source: str, out: str | Path, topic: str = "/camera/image_raw", encoding: str = "bgr8",
            fps: float = 0.0, width: int = 0, height: int = 0, start: float | None = None, frame_id: str = "camera",
            max_frames: int = 0, perturb: tuple[str, ...] = (), seed: int = 0, progress: bool = True) -> int:
    """Write ``source`` to the bag ``out``; returns the number of frames written."""
    from ..ros import bags as bag_io  # rosbag imports rospy: only this tool's entry point loads it
    from ..ros.messages import bgr_to_message, make_header

    if encoding not in ENCODINGS and encoding not in ("jpeg", "png"):
        raise EmojiPrivacyError(f"unknown encoding '{encoding}'; choose one of {', '.join(ENCODINGS)}, jpeg, png")
    unknown = [p for p in perturb if p not in PERTURBATION_NAMES]
    if unknown:
        raise EmojiPrivacyError(f"unknown perturbation {', '.join(unknown)}; "
                                f"choose from {', '.join(PERTURBATION_NAMES)}")
    src = open_source(source, width, height, loop=False)
    if src.live and max_frames <= 0:
        src.close()
        raise EmojiPrivacyError(f"{src.description} never ends: give --max-frames")
    if isinstance(src, DemoSource) and max_frames <= 0:
        max_frames = src.frames
    period = 1.0 / (fps or src.fps)
    t0 = time.time() if start is None else start
    written = index = 0
    bar = tqdm(total=max_frames or None, unit="frame", desc=f"video_to_bag {Path(out).name}", disable=not progress)
    try:
        with bag_io.BagWriter(out) as bag:
            while max_frames <= 0 or index < max_frames:
                frame = src.read()
                if frame is None:
                    break
                if kept(index, "drop" in perturb, seed):
                    for name in perturb:
                        if name in PERTURBATIONS:
                            frame = PERTURBATIONS[name](frame, index)
                    stamp = t0 + index * period
                    bag.write(topic, bgr_to_message(frame, make_header(stamp, frame_id, index), encoding), stamp)
                    written += 1
                index += 1
                bar.update()
    finally:
        bar.close()
        src.close()
    if index == 0:
        raise EmojiPrivacyError(f"{src.description} delivered no frame (corrupt or unsupported file?)")
    return written
