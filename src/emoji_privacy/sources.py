"""Frame sources for the camera talker: a V4L2 device, a video file, a folder of images, a
stream URL, or the built-in demo scene. Opening failures raise SourceError saying which
source and why; a device or stream that drops out is reopened.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError
from .image_io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

STREAM_PREFIXES = ("http://", "https://", "rtsp://", "rtmp://", "udp://", "tcp://", "gst:")


class FrameSource:
    """Yields BGR frames; ``read()`` returns None when the source has ended."""

    description = "source"
    fps: float = 30.0
    live = False  # live sources (devices, streams) are reopened when they drop out

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def reopen(self) -> None:
        raise SourceError(f"{self.description} cannot be reopened")

    def close(self) -> None:
        pass


class CaptureSource(FrameSource):
    """cv2.VideoCapture over a device, file or stream."""

    def __init__(self, target: int | str, description: str, live: bool, width: int = 0, height: int = 0,
                 loop: bool = False) -> None:
        self.target, self.description, self.live, self.loop = target, description, live, loop
        self.width, self.height = width, height
        self._cap: cv2.VideoCapture | None = None
        self.reopen()

    def reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
        if isinstance(self.target, int) or str(self.target).startswith("/dev/video"):
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise SourceError(f"cannot open {self.description}: {self._why()}")
        if self.width > 0 and self.height > 0 and self.live:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self._cap = cap

    def _why(self) -> str:
        t = self.target
        if isinstance(t, int) or str(t).startswith("/dev/video"):
            dev = f"/dev/video{t}" if isinstance(t, int) else t
            if not os.path.exists(dev):
                return f"{dev} does not exist (is the camera plugged in? list devices with `ls /dev/video*`)"
            if not os.access(dev, os.R_OK | os.W_OK):
                return f"no permission on {dev} (add your user to the 'video' group)"
            return f"{dev} exists but V4L2 refused it (busy in another program, or not a capture device)"
        if self.live:
            return "the stream did not answer or its format is not supported by OpenCV's FFmpeg backend"
        return "the file is not a video OpenCV can decode (corrupt or unsupported codec)"

    def read(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok and self.loop and not self.live:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return _resize(frame, self.width, self.height) if not self.live else frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class FolderSource(FrameSource):
    """Images of a folder in name order."""

    def __init__(self, folder: Path, width: int = 0, height: int = 0, loop: bool = False, fps: float = 10.0) -> None:
        self.description = f"image folder {folder}"
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(f"cannot open {self.description}: it holds no images ({kinds})")
        self.width, self.height, self.loop, self.fps = width, height, loop, fps
        self._i = 0

    def read(self) -> np.ndarray | None:
        while True:
            if self._i >= len(self.files):
                if not self.loop:
                    return None
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return _resize(frame, self.width, self.height)
            log.warning("skipping %s: not a readable image", path)


class DemoSource(FrameSource):
    """A generated scene of public-domain faces (skimage's astronaut photo) that move, turn
    and change size, so the whole pipeline can run with no camera and no data set."""

    description = "built-in demo scene"

    def __init__(self, width: int = 640, height: int = 480, loop: bool = True, frames: int = 150,
                 fps: float = 30.0) -> None:
        self.width, self.height = width or 640, height or 480
        self.loop, self.frames, self.fps = loop, frames, fps
        self._i = 0
        self._scene = DemoScene(self.width, self.height)

    def read(self) -> np.ndarray | None:
        if self._i >= self.frames:
            if not self.loop:
                return None
            self._i = 0
        frame = self._scene.frame(self._i, self.frames)
        self._i += 1
        return frame


class DemoScene:
    """Draws frame t of the demo: the astronaut photo panning and turning, plus two smaller
    copies of her face crossing the image.

    The talker shares the CPU with the listener, so each layer is warped and blended only inside
    its bounding box (the rest of the frame would be the untouched background), and the flipped
    face and its alpha are prepared once instead of being copied by OpenCV on every frame."""

    SMALL_FACES = ((110, 0.25, 1.0, False), (90, 0.72, -1.0, True))  # (height px, y, speed, mirrored)

    def __init__(self, width: int, height: int) -> None:
        from skimage import data

        self.width, self.height = width, height
        self.photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        # The face region of the astronaut photo (approximately x 165-285, y 40-195) with a soft oval mask.
        self.face = self.photo[30:210, 150:300].copy()
        fh, fw = self.face.shape[:2]
        mask = np.zeros((fh, fw), np.float32)
        cv2.ellipse(mask, (fw // 2, fh // 2), (fw // 2 - 4, fh // 2 - 4), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        self.face_alpha = cv2.GaussianBlur(mask, (0, 0), 4)[:, :, None]
        self._sprites = {
            flip: (np.ascontiguousarray(self.face[:, ::-1] if flip else self.face),
                   np.ascontiguousarray((self.face_alpha[:, ::-1] if flip else self.face_alpha)[:, :, 0]))
            for flip in (False, True)
        }
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        bg = np.stack([90 + 60 * xs / width, 110 + 40 * ys / height, 140 - 50 * xs / width], -1)
        self.background = bg.astype(np.uint8)

    def _box(self, m: np.ndarray, src_w: int, src_h: int) -> tuple[int, int, int, int] | None:
        """Pixels of the frame that a bilinear warp by ``m`` of a src_w x src_h image can reach
        (x0, y0, x1, y1), or None when it falls outside the frame."""
        corners = np.array([[-1, -1, 1], [src_w, -1, 1], [-1, src_h, 1], [src_w, src_h, 1]], np.float64) @ m.T
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def frame(self, t: int, period: int) -> np.ndarray:
        phase = 2 * np.pi * t / max(period, 1)
        out = self.background.copy()
        # Main face: the whole photo, scaled, turning by up to +-20 degrees, drifting sideways.
        scale = 0.62 + 0.12 * np.sin(phase)
        angle = 20 * np.sin(2 * phase)
        cx = self.width * (0.32 + 0.08 * np.sin(phase))
        cy = self.height * 0.5
        m = cv2.getRotationMatrix2D((256, 150), angle, scale)
        m[:, 2] += (cx - 256, cy - 150)
        box = self._box(m, self.photo.shape[1], self.photo.shape[0])
        if box is not None:
            x0, y0, x1, y1 = box
            m[:, 2] -= (x0, y0)
            roi = np.ascontiguousarray(out[y0:y1, x0:x1])
            cv2.warpAffine(self.photo, m, (x1 - x0, y1 - y0), roi, borderMode=cv2.BORDER_TRANSPARENT)
            out[y0:y1, x0:x1] = roi
        # Two smaller faces crossing in opposite directions (one mirrored).
        for k, (size, y, speed, flip) in enumerate(self.SMALL_FACES):
            face, alpha = self._sprites[flip]
            s = size / face.shape[0]
            fx = (0.55 + 0.3 * np.sin(speed * phase + k)) * self.width
            fy = y * self.height
            a = -12 * np.sin(phase + k)
            m = cv2.getRotationMatrix2D((face.shape[1] / 2, face.shape[0] / 2), a, s)
            m[:, 2] += (fx - face.shape[1] / 2, fy - face.shape[0] / 2)
            box = self._box(m, face.shape[1], face.shape[0])
            if box is None:
                continue
            x0, y0, x1, y1 = box
            m[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(face, m, (x1 - x0, y1 - y0))
            wa = cv2.warpAffine(alpha, m, (x1 - x0, y1 - y0))[:, :, None]
            roi = out[y0:y1, x0:x1]
            roi[:] = (roi * (1 - wa) + warped * wa).astype(np.uint8)
        return out


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if width > 0 and height > 0 and (frame.shape[1], frame.shape[0]) != (width, height):
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return frame


def open_source(spec: str, width: int = 0, height: int = 0, loop: bool = False,
                cwd: str | Path | None = None) -> FrameSource:
    """Open ``spec``: 'demo', a device index or /dev/videoN, a video file, an image folder or a URL.

    A relative file or folder path is taken from ``cwd`` (default: this process's folder): a node started
    by roslaunch runs in ROS_HOME, not in the folder where the user typed ``source:=clip.mp4``."""
    spec = str(spec).strip()
    if not spec:
        raise SourceError("empty source: give a device index (0), /dev/videoN, a video file, a folder or a URL")
    if spec == "demo":
        return DemoSource(width, height, loop=loop or True)
    if spec.isdigit():
        return CaptureSource(int(spec), f"camera {spec} (/dev/video{spec})", True, width, height)
    if spec.startswith("/dev/video"):
        return CaptureSource(spec, f"camera {spec}", True, width, height)
    if spec.startswith(STREAM_PREFIXES):
        return CaptureSource(spec, f"stream {spec}", True, width, height)
    path = Path(cwd or ".") / os.path.expanduser(spec)
    if path.is_dir():
        return FolderSource(path, width, height, loop)
    if path.is_file():
        return CaptureSource(str(path), f"video file {path}", False, width, height, loop)
    raise SourceError(f"cannot open source '{spec}': no such file or folder, and not a device index or URL")


def reopen_with_retry(source: FrameSource, retry_s: float, should_stop: callable = lambda: False) -> bool:
    """Reopen a live source that dropped out, every ``retry_s`` seconds until it works or stop."""
    while not should_stop():
        try:
            source.reopen()
            return True
        except SourceError as e:
            log.warning("%s; retrying in %.1f s", e, retry_s)
            time.sleep(retry_s)
    return False
