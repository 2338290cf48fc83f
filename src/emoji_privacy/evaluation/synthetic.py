"""Test scenes made from real faces, with known face boxes, for coverage and low-light measurement.

Real 300-W faces (image + 68 landmarks) are cut out with a margin and pasted, blended softly,
into generated scenes: many small faces in a large frame (`small_faces_frame`), or an audience in a
dim hall as a cheap camera sees it (`dark_scene_frame`, `dark_scene_sequence`, and `low_light`,
which video_to_bag also applies to real videos). Each scene comes with the ground-truth face
boxes, so `uncovered_faces` can tell, without any detector, which faces an anonymizer left visible.

Everything is deterministic for a seed (pass an ``np.random.Generator`` or an int).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..landmarks.geometry import head_turn, read_pts
from ..model_files import shared_dir
from .leaks import visible_share

EVAL_SETS = ("helen_test", "afw")
"""300-W sets for measurement (helen_train is for fitting landmark models, never for evaluation)."""

FOREHEAD_SHARE = 0.3
"""Face box top above the highest landmark, as a share of the landmarks' height. Measured: YuNet and
CenterFace boxes on 60 helen_test faces reach 0.32 and 0.31 above the brows (medians), while their
sides and bottom stay within 2% of the landmark extent."""

CROP_MARGIN = 0.5
"""Context kept around the face box on every side when a face is cut out, as a share of the box size."""

PASTE_EXTENT = 0.8
"""Semi-axes of the pasted ellipse (hair, ears, some of the photo's background) as a share of the box size:
the paste is opaque out to 0.75 of it (the whole face box but its corners) and fades to nothing at its edge."""

FEATHER = 0.25
"""Share of the pasted ellipse's radius over which the paste fades out (no hard rectangle for a detector)."""

UNCOVERED_SHARE = 0.5
"""A face counts as uncovered when more than this share of its central ellipse is left unchanged. Measured
on 1920x1080 and 3840x2160 frames of 20-60 px faces (bench/bench_coverage.py): faces the pipeline covers
show 0.00-0.02, faces it misses 1.00, and faces deface blurs 0.00-0.22 (flat skin and hair stay within the
8 levels of visible_share under a blur). 0.5 lies in the middle of that gap, so no count hinges on it; a
cover that hides only half of a face (a stale held cover) still counts as uncovered."""

FACE_LEVELS = (10, 40)
"""Intended 8-bit levels of most face pixels in the dark scenes (a dim hall with faces lit by spill)."""


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """The box a face detector would draw from 68 landmarks: their extent, raised by the forehead."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    return np.array([x0, y0 - FOREHEAD_SHARE * (y1 - y0), x1, y1], np.float32)


@dataclass
class Face:
    """A real face cut out with its context: the crop (BGR) and the face box in crop pixels."""

    image: np.ndarray
    box: np.ndarray  # (4,) x0, y0, x1, y1 in crop pixels
    name: str
    turn: float = 0.0  # head turn from the landmarks (head_turn): 0 frontal, about +-1 a full profile

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def aspect(self) -> float:
        """Box height over width."""
        return float(self.box[3] - self.box[1]) / max(self.width, 1e-6)


def landmarks_dir() -> Path | None:
    """The shared 300-W folder (../shared/data/landmarks), or None when absent."""
    base = shared_dir()
    path = base / "data" / "landmarks" if base is not None else None
    return path if path is not None and path.is_dir() else None


def cut_face(image: np.ndarray, landmarks: np.ndarray, name: str = "", max_width: int = 0) -> Face:
    """Cut the face box plus ``CROP_MARGIN`` of context out of ``image`` (edge pixels repeated where the
    photo ends); with ``max_width`` the crop is scaled down so the face box is at most that wide."""
    box = face_box(landmarks)
    w, h = box[2] - box[0], box[3] - box[1]
    x0, y0 = int(math.floor(box[0] - CROP_MARGIN * w)), int(math.floor(box[1] - CROP_MARGIN * h))
    x1, y1 = int(math.ceil(box[2] + CROP_MARGIN * w)), int(math.ceil(box[3] + CROP_MARGIN * h))
    ih, iw = image.shape[:2]
    crop = image[max(y0, 0):min(y1, ih), max(x0, 0):min(x1, iw)]
    crop = cv2.copyMakeBorder(crop, max(-y0, 0), max(y1 - ih, 0), max(-x0, 0), max(x1 - iw, 0),
                              cv2.BORDER_REPLICATE)
    box = box - np.array([x0, y0, x0, y0], np.float32)
    if max_width and w > max_width:
        s = max_width / w
        size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
        box = box * np.array([size[0] / crop.shape[1], size[1] / crop.shape[0]] * 2, np.float32)
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return Face(np.ascontiguousarray(crop), box.astype(np.float32), name, head_turn(landmarks))


def load_faces(sets: Sequence[str] = EVAL_SETS, limit: int = 0, max_width: int = 200,
               root: str | Path | None = None) -> list[Face]:
    """Real 300-W faces of ``sets`` (default: the evaluation sets), ``limit`` per set (0 = all), in name
    order. ``root`` defaults to the shared data; raises FileNotFoundError when it is absent."""
    base = Path(root) if root is not None else landmarks_dir()
    if base is None or not base.is_dir():
        raise FileNotFoundError("the 300-W faces (../shared/data/landmarks or $EMOJI_PRIVACY_SHARED) are absent")
    faces = []
    for name in sets:
        pts = sorted((base / name).glob("*.pts"))
        if not pts:
            raise FileNotFoundError(f"no .pts files in {base / name}")
        for p in pts[:limit or None]:
            img = cv2.imread(str(p.with_suffix(".jpg")), cv2.IMREAD_COLOR)
            if img is not None:
                faces.append(cut_face(img, read_pts(p), f"{name}/{p.stem}", max_width))
    return faces


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _span(value: int | tuple[int, int], rng: np.random.Generator) -> int:
    if isinstance(value, int):
        return value
    return int(rng.integers(value[0], value[1] + 1))


# ----------------------------------------------------------------------------- backgrounds


def texture_background(width: int, height: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A textured indoor-like background (BGR uint8): colour noise at several scales, a light gradient,
    blurred rectangles and lines (walls, doors, furniture) and fine grain; never flat, and with no faces."""
    rng = _rng(rng)
    sw, sh = max(16, width // 4), max(16, height // 4)  # built at quarter size, then scaled up
    noise = np.zeros((sh, sw, 3), np.float32)
    amp = 1.0
    for octave in range(5):
        cols = 2 ** (octave + 1) + 1
        rows = max(2, round(cols * sh / sw) + 1)
        lum = rng.random((rows, cols, 1), dtype=np.float32)
        col = rng.random((rows, cols, 3), dtype=np.float32)
        noise += amp * cv2.resize(0.7 * lum + 0.3 * col, (sw, sh), interpolation=cv2.INTER_CUBIC)
        amp *= 0.55
    noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
    tint = rng.uniform(70, 180, 3).astype(np.float32)
    img = tint * (0.5 + 0.9 * (noise - 0.5))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    ramp = (np.cos(angle) * xx / sw + np.sin(angle) * yy / sh)
    img *= (0.7 + 0.6 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))[..., None]
    overlay = img.copy()
    for _ in range(int(rng.integers(6, 15))):
        x0, y0 = int(rng.integers(0, sw)), int(rng.integers(0, sh))
        x1, y1 = x0 + int(rng.integers(sw // 20, sw // 3)), y0 + int(rng.integers(sh // 20, sh // 2))
        cv2.rectangle(overlay, (x0, y0), (x1, y1), rng.uniform(30, 200, 3).tolist(), -1)
    for _ in range(int(rng.integers(4, 10))):
        p0 = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        p1 = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        cv2.line(overlay, p0, p1, rng.uniform(20, 220, 3).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    img = 0.35 * img + 0.65 * overlay
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    img += 3.0 * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- placing and pasting faces


@dataclass
class _Placed:
    face: Face
    width: float  # face box width in the frame
    cx: float  # face box centre in the frame (before any drift)
    cy: float
    drift: tuple[float, float, float, float]  # amplitude x, y (px), phase x, y


def _extent(face: Face, width: float) -> tuple[float, float]:
    """Half width and half height of the pasted ellipse of a face box ``width`` px wide."""
    return PASTE_EXTENT * width, PASTE_EXTENT * width * face.aspect


def _place(faces: Sequence[Face], count: int, sizes: tuple[float, float], width: int, height: int,
           rng: np.random.Generator, drift: float = 0.0, gap: float = 2.0, tries: int = 200) -> list[_Placed]:
    """Random non-overlapping places (the whole pasted ellipse, its drift included, inside the frame and
    apart from the others); a face that finds no place in ``tries`` draws is left out."""
    chosen = rng.choice(len(faces), size=count, replace=count > len(faces))
    placed: list[_Placed] = []
    rects: list[tuple[float, float, float, float]] = []
    for k in chosen:
        face = faces[int(k)]
        w = float(rng.uniform(sizes[0], sizes[1]))
        ex, ey = _extent(face, w)
        ex, ey = ex + drift + gap, ey + drift + gap
        if 2 * ex >= width or 2 * ey >= height:
            continue
        for _ in range(tries):
            cx, cy = rng.uniform(ex, width - ex), rng.uniform(ey, height - ey)
            r = (cx - ex, cy - ey, cx + ex, cy + ey)
            if all(r[0] >= o[2] or r[2] <= o[0] or r[1] >= o[3] or r[3] <= o[1] for o in rects):
                rects.append(r)
                amp = rng.uniform(0.5, 1.0, 2) * drift
                phase = rng.uniform(0, 2 * np.pi, 2)
                placed.append(_Placed(face, w, cx, cy, (float(amp[0]), float(amp[1]), *map(float, phase))))
                break
    return placed


def _paste_alpha(w: int, h: int, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Soft elliptical alpha (h, w, 1): 1 inside (1 - FEATHER) of the ellipse, smoothly 0 at its edge."""
    yy, xx = np.ogrid[0:h, 0:w]
    r = np.sqrt(((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2)
    t = np.clip((1.0 - r) / FEATHER, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)[..., None]


def _paste(canvas: np.ndarray, face: Face, width: float, cx: float, cy: float) -> np.ndarray:
    """Blend ``face`` into the float canvas with its box ``width`` px wide centred at (cx, cy); returns the box."""
    s = width / face.width
    ch, cw = face.image.shape[:2]
    size = (max(1, round(cw * s)), max(1, round(ch * s)))
    sx, sy = size[0] / cw, size[1] / ch
    crop = cv2.resize(face.image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    box = face.box * np.array([sx, sy, sx, sy], np.float32)
    bcx, bcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ox, oy = int(round(cx - bcx)), int(round(cy - bcy))
    bw, bh = box[2] - box[0], box[3] - box[1]
    alpha = _paste_alpha(size[0], size[1], bcx, bcy, PASTE_EXTENT * bw, PASTE_EXTENT * bh)
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + size[0], W), min(oy + size[1], H)
    if x1 > x0 and y1 > y0:
        a = alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        src = crop[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
        roi = canvas[y0:y1, x0:x1]
        roi += a * (src - roi)
    return box + np.array([ox, oy, ox, oy], np.float32)


def _composite(background: np.ndarray, placed: list[_Placed], t: float = 0.0,
               period: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The faces pasted at time ``t`` of their sway: (float canvas, boxes (N, 4))."""
    canvas = background.astype(np.float32)
    boxes = []
    for p in placed:
        ax, ay, px, py = p.drift
        cx = p.cx + ax * math.sin(2 * math.pi * t / period + px)
        cy = p.cy + ay * math.sin(2 * math.pi * t / period + py)
        boxes.append(_paste(canvas, p.face, p.width, cx, cy))
    return canvas, np.array(boxes, np.float32).reshape(-1, 4)


def small_faces_frame(width: int, height: int, faces: Sequence[Face], sizes: tuple[float, float] = (20, 60),
                      rng: np.random.Generator | int | None = None,
                      count: int | tuple[int, int] = (20, 40)) -> tuple[np.ndarray, np.ndarray]:
    """Many small real faces (box widths drawn uniformly from ``sizes``) at random non-overlapping places
    on a textured background: the case a detector that downsizes large frames misses.
    Returns (frame BGR uint8, face boxes (N, 4) float32 in frame pixels)."""
    if not faces:
        raise ValueError("small_faces_frame needs at least one face")
    rng = _rng(rng)
    background = texture_background(width, height, rng)
    placed = _place(faces, _span(count, rng), sizes, width, height, rng)
    canvas, boxes = _composite(background, placed)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), boxes


# ----------------------------------------------------------------------------- the low-light camera


@dataclass(frozen=True)
class LowLightCamera:
    """How a small camera renders a dim hall, from scene to 8-bit frame.

    Scene pixels (sRGB) become linear radiance, are lit by an uneven light map and exposed (most faces
    end up a few hundredths of full scale), collect photo-electrons with shot noise (variance = signal)
    and read noise, per channel, plus faint colour blotches; the signal goes back through the sRGB curve
    with an extra gamma (darker mid-tones, crushed shadows) onto a lifted black level (contrast
    compressed into a few dozen levels), and through a JPEG round trip as a streaming camera sends it.
    """

    exposure: float = 0.04  # linear radiance x light -> share of the sensor's full scale
    gamma: float = 1.25  # exponent on top of the sRGB curve
    black: float = 7.0  # black level (levels); the range above it is 255 - black
    full_well: float = 1200.0  # photo-electrons at full scale: shot noise sd = sqrt(electrons)
    read_noise: float = 4.0  # electrons, per pixel and channel
    chroma: float = 0.7  # sd of the low-frequency colour noise, in levels
    softness: float = 0.7  # optical blur sigma (px) before the sensor
    jpeg_quality: int = 80  # 0 = no JPEG round trip
    noise: bool = True


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear radiance."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear radiance in [0, 1] -> sRGB values (with the curve's linear toe, so noise near black is not
    blown up)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def light_map(width: int, height: int, spot: tuple[float, float] = (0.85, 0.2), spot_gain: float = 40.0,
              spot_radius: float = 0.1, vignette: float = 0.55) -> np.ndarray:
    """Uneven light (H, W) float32: ambient 1.0 at the centre falling to 1 - ``vignette`` in the corners,
    plus a spotlight (a stage light, a lit doorway) at ``spot`` (frame fractions) of ``spot_gain`` times
    the ambient and radius ``spot_radius`` of the frame diagonal."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    diag = math.hypot(width, height)
    r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (diag / 2) ** 2
    light = 1.0 - vignette * r2
    d2 = ((xx - spot[0] * width) ** 2 + (yy - spot[1] * height) ** 2) / (spot_radius * diag) ** 2
    return (light + spot_gain * np.exp(-0.5 * d2)).astype(np.float32)


def low_light(image: np.ndarray, light: np.ndarray, camera: LowLightCamera | None = None,
              rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``image`` (a well-lit BGR uint8 scene) as ``camera`` sees it under ``light`` (H, W): dark, low in
    contrast, unevenly lit and noisy (see LowLightCamera)."""
    cam = camera or LowLightCamera()
    rng = _rng(rng)
    lin = srgb_to_linear(image.astype(np.float32) / 255.0)
    if cam.softness > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), cam.softness)
    signal = lin * (light[..., None] * cam.exposure)  # share of full scale
    h, w = image.shape[:2]
    if cam.noise:
        electrons = signal * cam.full_well
        electrons += np.sqrt(np.maximum(electrons, 0.0)) * rng.standard_normal((h, w, 3), dtype=np.float32)
        electrons += cam.read_noise * rng.standard_normal((h, w, 3), dtype=np.float32)
        signal = electrons / cam.full_well
    levels = cam.black + (255.0 - cam.black) * linear_to_srgb(signal) ** cam.gamma
    if cam.noise and cam.chroma > 0:
        blotch = rng.standard_normal((max(2, h // 16), max(2, w // 16), 3), dtype=np.float32)
        blotch -= blotch.mean(axis=2, keepdims=True)  # colour only, no brightness
        levels += cam.chroma * 1.6 * cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)
    out = np.clip(levels + 0.5, 0, 255).astype(np.uint8)
    if cam.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(cam.jpeg_quality)])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out
    return out


# ----------------------------------------------------------------------------- dark scenes


class DarkScene:
    """A dim hall with real faces in it: background, faces and light fixed, faces drifting slowly.

    ``render(t)`` gives frame ``t`` (new sensor noise each call) and the face boxes there; the
    spotlight is put where it is farthest from every face, so the faces stay dim."""

    def __init__(self, width: int, height: int, faces: Sequence[Face], sizes: tuple[float, float] = (40, 160),
                 rng: np.random.Generator | int | None = None, count: int | tuple[int, int] = (3, 6),
                 drift: float = 0.0, period: float = 90.0, camera: LowLightCamera | None = None,
                 reflectance: float = 0.7) -> None:
        if not faces:
            raise ValueError("a dark scene needs at least one face")
        self.rng = _rng(rng)
        self.width, self.height, self.period = width, height, period
        self.camera = camera or LowLightCamera()
        # a dim hall: darker walls than faces, so the faces are not lost in a bright background
        self.background = (texture_background(width, height, self.rng) * reflectance).astype(np.uint8)
        self.placed = _place(faces, _span(count, self.rng), sizes, width, height, self.rng, drift=drift)
        self.light = light_map(width, height, self._spot_place(), spot_gain=float(self.rng.uniform(40, 80)),
                               vignette=float(self.rng.uniform(0.4, 0.6)))

    def _spot_place(self) -> tuple[float, float]:
        cand = self.rng.uniform(0.05, 0.95, (64, 2))
        if not self.placed:
            return float(cand[0, 0]), float(cand[0, 1])
        faces = np.array([[p.cx / self.width, p.cy / self.height] for p in self.placed])
        d = np.linalg.norm((cand[:, None] - faces[None]) * [self.width, self.height], axis=2).min(axis=1)
        best = cand[int(np.argmax(d))]
        return float(best[0]), float(best[1])

    def render(self, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        canvas, boxes = _composite(self.background, self.placed, t, self.period)
        scene = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        return low_light(scene, self.light, self.camera, self.rng), boxes


def dark_scene_frame(width: int, height: int, faces: Sequence[Face], sizes: tuple[float, float] = (40, 160),
                     rng: np.random.Generator | int | None = None, count: int | tuple[int, int] = (3, 6),
                     camera: LowLightCamera | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real faces (box widths from ``sizes``) in a dark, low-contrast, unevenly lit, noisy scene, as a camera
    sees an audience in a dim hall (face pixels mostly at levels 10-40). Returns (frame, boxes (N, 4))."""
    return DarkScene(width, height, faces, sizes, rng, count, camera=camera).render(0.0)


def dark_scene_sequence(width: int, height: int, faces: Sequence[Face], frames: int,
                        sizes: tuple[float, float] = (40, 160), rng: np.random.Generator | int | None = None,
                        count: int | tuple[int, int] = (3, 6), drift: float = 30.0, period: float = 90.0,
                        camera: LowLightCamera | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``frames`` frames of one dark scene whose faces drift slowly (up to ``drift`` px from their place,
    one sway every ``period`` frames; never onto each other), with fresh sensor noise in every frame."""
    scene = DarkScene(width, height, faces, sizes, rng, count, drift, period, camera)
    for t in range(frames):
        yield scene.render(float(t))


# ----------------------------------------------------------------------------- measuring coverage


def uncovered_faces(original: np.ndarray, anonymized: np.ndarray, boxes: np.ndarray,
                    threshold: float = UNCOVERED_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Which ground-truth faces an anonymizer left visible: (uncovered (N,) bool, visible share (N,)),
    the share being that of each box's central ellipse left (nearly) unchanged (leaks.visible_share)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    share = np.array([visible_share(original, anonymized, b) for b in boxes], np.float32)
    return share > threshold, share
