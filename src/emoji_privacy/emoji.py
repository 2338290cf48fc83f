"""Draw emotion emoji and paste them over faces so that no skin of a face shows.

The emoji are drawn by this module with OpenCV vector primitives (no third-party images)
at ``supersample`` times the target size and downscaled with ``INTER_AREA``. The face disk
of every drawn sprite fills the sprite, and its alpha is computed analytically, so the
coverage guarantee of :meth:`EmojiRenderer.cover` can be proven, not just hoped for:
every frame pixel whose center lies within ``radius`` of the face center ends up opaque
emoji, for any roll angle, sub-pixel center or clipping.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from . import EMOTIONS, UNKNOWN, UNKNOWN_INDEX, emotion_name
from .errors import ConfigError

log = logging.getLogger(__name__)

Color = tuple[int, int, int]

_SHIFT = 4  # sub-pixel bits for cv2 drawing calls
_ONE = 1 << _SHIFT
_MAX_COVER_D = 512  # larger faces are covered by scaling a 512 px sprite up in the warp
_MAX_SS_SIDE = 1536  # supersampled canvas side limit: bounds the one-off drawing time (~60 ms)
_CACHE_SIZE = 64


def _ladder() -> tuple[int, ...]:
    """Sprite diameters cover() uses: multiples of 4 about 8 % apart, so few sizes get drawn and cached."""
    sizes = [8]
    while sizes[-1] < _MAX_COVER_D:
        sizes.append(min(_MAX_COVER_D, max(sizes[-1] + 4, 4 * math.ceil(sizes[-1] * 1.08 / 4))))
    return tuple(sizes)


_LADDER = _ladder()
# Source-space margin that keeps bilinear sampling inside the opaque disk: a sample point
# at distance r from the center reads neighbours up to r + sqrt(2) (+ 1/32 px fixed-point
# rounding of cv2.warpAffine) away; opaque pixels reach d/2 - 0.5, so r <= d/2 - 2 is safe.
_MARGIN = 2.0

_DARK: Color = (0, 55, 95)  # features: dark brown like common emoji sets
_WHITE: Color = (255, 255, 255)
_TEAR: Color = (245, 190, 90)
_TEAR_EDGE: Color = (200, 130, 40)
_TONGUE: Color = (90, 80, 225)
_YELLOW_TOP: Color = (110, 225, 255)
_YELLOW_BOTTOM: Color = (40, 185, 255)

# Face gradient per emotion: top color, bottom color, and the fractions of the height
# where the blend from top to bottom color starts and ends.
_FACE: dict[str, tuple[Color, Color, float, float]] = {
    "angry": ((40, 40, 215), (40, 140, 255), 0.0, 1.0),
    "disgust": ((70, 190, 110), (80, 215, 190), 0.0, 1.0),
    "fear": ((235, 165, 90), _YELLOW_BOTTOM, 0.22, 0.6),
    "happy": (_YELLOW_TOP, _YELLOW_BOTTOM, 0.0, 1.0),
    "sad": (_YELLOW_TOP, _YELLOW_BOTTOM, 0.0, 1.0),
    "surprise": (_YELLOW_TOP, _YELLOW_BOTTOM, 0.0, 1.0),
    "neutral": (_YELLOW_TOP, _YELLOW_BOTTOM, 0.0, 1.0),
    UNKNOWN: ((200, 200, 200), (150, 150, 150), 0.0, 1.0),
}


class _Sprite(NamedTuple):
    straight: np.ndarray  # (d, d, 4) BGRA, straight alpha (what sprite() returns)
    premult: np.ndarray  # (d, d, 4) BGRA, color premultiplied by alpha (for warp + blend)


class _Pen:
    """Maps face units (center 0,0; radius 1; y down) to shifted sub-pixel canvas coordinates."""

    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        side = img.shape[0]
        self.c = (side - 1) / 2.0  # pixel-center convention, consistent with INTER_AREA
        self.r = side / 2.0

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return round((self.c + x * self.r) * _ONE), round((self.c + y * self.r) * _ONE)

    def ln(self, v: float) -> int:
        return max(1, round(v * self.r * _ONE))

    def th(self, v: float) -> int:
        return max(1, round(v * self.r))

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, a0: float, a1: float,
                color: Color, thick: float | None = None, angle: float = 0.0) -> None:
        t = -1 if thick is None else self.th(thick)
        cv2.ellipse(self.img, self.pt(cx, cy), (self.ln(ax), self.ln(ay)), angle, a0, a1, color, t,
                    cv2.LINE_AA, _SHIFT)

    def line(self, pts: list[tuple[float, float]], color: Color, thick: float) -> None:
        arr = np.array([self.pt(x, y) for x, y in pts], np.int32)
        cv2.polylines(self.img, [arr], False, color, self.th(thick), cv2.LINE_AA, _SHIFT)

    def poly(self, pts: list[tuple[float, float]] | np.ndarray, color: Color) -> None:
        arr = np.array([self.pt(float(x), float(y)) for x, y in pts], np.int32)
        cv2.fillPoly(self.img, [arr], color, cv2.LINE_AA, _SHIFT)


def _eyes(p: _Pen, y: float = -0.18, ax: float = 0.1, ay: float = 0.16) -> None:
    for sx in (-1, 1):
        p.ellipse(sx * 0.33, y, ax, ay, 0, 360, _DARK)


def _wide_eyes(p: _Pen, y: float = -0.16) -> None:
    """White eyes with small pupils: the 'wide open' look of fear."""
    for sx in (-1, 1):
        p.ellipse(sx * 0.33, y, 0.17, 0.19, 0, 360, _WHITE)
        p.ellipse(sx * 0.33, y, 0.17, 0.19, 0, 360, _DARK, 0.045)
        p.ellipse(sx * 0.33, y + 0.02, 0.065, 0.065, 0, 360, _DARK)


def _brows(p: _Pen, inner_y: float, outer_y: float, thick: float = 0.075) -> None:
    for sx in (-1, 1):
        p.line([(sx * 0.58, outer_y), (sx * 0.14, inner_y)], _DARK, thick)


def _half_ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0.0, math.pi, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def _draw_happy(p: _Pen) -> None:
    # Smiling closed eyes (upward arcs) and a wide open grin with teeth.
    for sx in (-1, 1):
        p.ellipse(sx * 0.33, -0.12, 0.15, 0.13, 180, 360, _DARK, 0.085)
    cx, cy, ax, ay = 0.0, 0.12, 0.58, 0.52
    p.poly(_half_ellipse(cx, cy, ax, ay), _DARK)
    h = 0.15  # teeth band height
    ys = np.linspace(cy, cy + h, 12)
    xs = ax * np.sqrt(np.clip(1.0 - ((ys - cy) / ay) ** 2, 0.0, 1.0))
    inset = 0.05
    teeth = np.concatenate([np.stack([xs - inset, ys + inset * 0.6], 1),
                            np.stack([-(xs - inset), ys + inset * 0.6], 1)[::-1]])
    p.poly(teeth, _WHITE)
    # Tongue: top of an ellipse resting on the bottom of the mouth, clipped to the mouth.
    tw, th, ty = 0.34, 0.16, cy + ay * 0.8
    xs = np.linspace(-tw, tw, 32)
    top_y = ty - th * np.sqrt(np.clip(1.0 - (xs / tw) ** 2, 0.0, 1.0))
    bot_y = cy + (ay - 0.03) * np.sqrt(np.clip(1.0 - (xs / (ax - 0.03)) ** 2, 0.0, 1.0))
    keep = top_y < bot_y
    tongue = np.concatenate([np.stack([xs[keep], top_y[keep]], 1), np.stack([xs[keep], bot_y[keep]], 1)[::-1]])
    p.poly(tongue, _TONGUE)


def _draw_sad(p: _Pen) -> None:
    _brows(p, inner_y=-0.58, outer_y=-0.44, thick=0.07)
    _eyes(p, y=-0.16)
    p.ellipse(0.0, 0.62, 0.33, 0.2, 180, 360, _DARK, 0.09)
    # Tear below the right eye (viewer's right): a drop = circle + pointed top.
    tx, ty, tr = 0.52, 0.26, 0.11
    t = np.linspace(-math.pi * 0.15, math.pi * 1.15, 24)
    drop = np.stack([tx + tr * np.cos(t), ty + tr * np.sin(t)], 1)
    drop = np.concatenate([drop, [[tx, ty - 0.26]]])
    p.poly(drop, _TEAR_EDGE)
    p.poly(drop * 0.78 + np.array([[tx, ty]]) * 0.22, _TEAR)  # lighter inside, shrunk toward center


def _draw_angry(p: _Pen) -> None:
    _brows(p, inner_y=-0.3, outer_y=-0.54, thick=0.09)
    _eyes(p, y=-0.12, ax=0.09, ay=0.12)
    p.ellipse(0.0, 0.66, 0.36, 0.22, 180, 360, _DARK, 0.09)


def _draw_disgust(p: _Pen) -> None:
    # Squinting eyes ('>' '<'), one brow lowered, wrinkled zigzag mouth.
    p.line([(-0.5, -0.32), (-0.22, -0.18), (-0.5, -0.04)], _DARK, 0.08)
    p.line([(0.5, -0.32), (0.22, -0.18), (0.5, -0.04)], _DARK, 0.08)
    p.line([(-0.58, -0.5), (-0.2, -0.44)], _DARK, 0.07)
    p.line([(0.2, -0.5), (0.58, -0.58)], _DARK, 0.07)
    xs = np.linspace(-0.46, 0.46, 7)
    ys = 0.5 + np.where(np.arange(7) % 2 == 0, 0.08, -0.06)
    p.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), _DARK, 0.08)


def _draw_fear(p: _Pen) -> None:
    _brows(p, inner_y=-0.62, outer_y=-0.5, thick=0.07)
    _wide_eyes(p, y=-0.18)
    p.ellipse(0.0, 0.5, 0.2, 0.27, 0, 360, _DARK)


def _draw_surprise(p: _Pen) -> None:
    for sx in (-1, 1):
        p.ellipse(sx * 0.33, -0.5, 0.17, 0.1, 200, 340, _DARK, 0.07)
    _eyes(p, y=-0.17, ax=0.11, ay=0.17)
    p.ellipse(0.0, 0.5, 0.18, 0.24, 0, 360, _DARK)


def _draw_neutral(p: _Pen) -> None:
    _eyes(p, y=-0.16)
    p.line([(-0.32, 0.46), (0.32, 0.46)], _DARK, 0.09)


def _draw_unknown(p: _Pen) -> None:
    """A grey face with a question mark: a face is there, its emotion is not known (no expression drawn)."""
    p.ellipse(0.0, -0.2, 0.26, 0.24, 180, 405, _DARK, 0.12)
    p.line([(0.18, -0.03), (0.0, 0.12), (0.0, 0.3)], _DARK, 0.12)
    p.ellipse(0.0, 0.55, 0.08, 0.08, 0, 360, _DARK)


_DRAW: dict[str, Callable[[_Pen], None]] = {
    "angry": _draw_angry,
    "disgust": _draw_disgust,
    "fear": _draw_fear,
    "happy": _draw_happy,
    "sad": _draw_sad,
    "surprise": _draw_surprise,
    "neutral": _draw_neutral,
    UNKNOWN: _draw_unknown,
}


def _disk_alpha(d: int) -> np.ndarray:
    """Analytic alpha of a disk of diameter d: 255 for pixel centers within d/2 - 0.5."""
    c = (d - 1) / 2.0
    yy, xx = np.ogrid[:d, :d]
    dist = np.sqrt((xx - c) ** 2 + (yy - c) ** 2)
    return np.rint(np.clip(d / 2.0 + 0.5 - dist, 0.0, 1.0) * 255.0).astype(np.uint8)


def _draw_face(name: str, d: int, supersample: int) -> np.ndarray:
    """Drawn BGRA emoji of diameter d (straight alpha)."""
    ss = max(1, min(supersample, _MAX_SS_SIDE // max(d, 1)))
    side = d * ss
    top, bottom, start, end = _FACE[name]
    # Vertical gradient, and a darker rim: the canvas outside the inner disk is 72 % bright.
    t = np.clip((np.linspace(0.0, 1.0, side, dtype=np.float32) - start) / (end - start), 0.0, 1.0)[:, None]
    grad = np.asarray(top, np.float32) * (1.0 - t) + np.asarray(bottom, np.float32) * t  # (side, 3)
    inner = np.zeros((side, side), np.uint8)
    pen = _Pen(inner)
    pen.ellipse(0.0, 0.0, 0.94, 0.94, 0, 360, (255, 255, 255))
    shade = (0.72 + 0.28 / 255.0 * inner.astype(np.float32))[:, :, None]
    img = np.ascontiguousarray(np.clip(grad[:, None, :] * shade, 0, 255).astype(np.uint8))
    _DRAW[name](_Pen(img))
    if ss > 1:
        img = cv2.resize(img, (d, d), interpolation=cv2.INTER_AREA)
    return np.dstack([img, _disk_alpha(d)])


def _premultiply(bgra: np.ndarray) -> np.ndarray:
    a = bgra[:, :, 3:4].astype(np.uint16)
    out = bgra.copy()
    out[:, :, :3] = ((bgra[:, :, :3].astype(np.uint16) * a + 127) // 255).astype(np.uint8)
    return out


def _load_png(path: Path) -> np.ndarray:
    """Read a user emoji as BGRA uint8; ConfigError when it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConfigError(f"cannot read emoji image {path}: replace it with a valid PNG or remove it")
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ConfigError(f"emoji image {path} has unsupported pixel type {img.dtype}: save it as 8-bit PNG")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    elif img.shape[2] != 4:
        raise ConfigError(f"emoji image {path} has {img.shape[2]} channels: save it as RGB or RGBA PNG")
    return np.ascontiguousarray(img)


def _user_face(png: np.ndarray, d: int) -> np.ndarray:
    """User PNG fitted into d x d over a disk of its mean opaque color.

    The disk underneath keeps the coverage guarantee for PNGs that are transparent or
    not round (same effect as filling the face disk in the frame, but paid once per size).
    """
    h, w = png.shape[:2]
    scale = d / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(png, (nw, nh), interpolation=interp)
    fg = np.zeros((d, d, 4), np.uint8)
    y0, x0 = (d - nh) // 2, (d - nw) // 2
    fg[y0:y0 + nh, x0:x0 + nw] = small
    opaque = png[:, :, 3] >= 128
    mean = png[:, :, :3][opaque].mean(axis=0) if opaque.any() else np.full(3, 128.0)
    a_f = fg[:, :, 3:4].astype(np.float32) / 255.0
    a_d = _disk_alpha(d)[:, :, None].astype(np.float32) / 255.0
    a_o = a_f + a_d * (1.0 - a_f)
    col = fg[:, :, :3].astype(np.float32) * a_f + mean.astype(np.float32) * a_d * (1.0 - a_f)
    col = col / np.maximum(a_o, 1e-6)
    out = np.empty((d, d, 4), np.uint8)
    out[:, :, :3] = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    out[:, :, 3] = np.clip(np.rint(a_o[:, :, 0] * 255.0), 0, 255).astype(np.uint8)
    return out


STYLES: tuple[str, ...] = ("emoji", "blur", "pixelate", "solid")
"""What ``EmojiRenderer.cover`` paints over a face (``emoji.style``): the emotion's emoji, or a neutral mask
of the same disk: a heavy blur, large blocks, or a flat gray."""

SOLID_GRAY: Color = (128, 128, 128)
BLUR_CELLS = 6.0
"""blur: the face disk's diameter is shrunk to this many pixels, blurred and enlarged again (a Gaussian of
about a sixth of the face): skin tone and the head's rough shape stay, eyes, nose and mouth do not."""
PIXEL_CELLS = 8
"""pixelate: about this many blocks across the face disk's diameter."""


def _neutral(roi: np.ndarray, style: str, radius: float) -> np.ndarray:
    """The neutral content of ``style`` for the frame region ``roi`` around a face disk of ``radius``."""
    h, w = roi.shape[:2]
    if style == "solid":
        return np.broadcast_to(np.array(SOLID_GRAY, np.uint8), roi.shape).copy()
    if style == "pixelate":
        block = max(2.0, 2.0 * radius / PIXEL_CELLS)
        small = cv2.resize(roi, (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    f = min(1.0, BLUR_CELLS / max(2.0 * radius, 1.0))  # blur
    small = cv2.resize(roi, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=1.5, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class EmojiRenderer:
    """Emoji sprites per emotion, and the in-place face cover that uses them."""

    def __init__(self, png_dir: str | None = None, supersample: int = 4, style: str = "emoji") -> None:
        """Use drawn emoji, or user PNGs named ``<emotion>.png`` from ``png_dir`` where present.

        ``style`` (one of STYLES): ``emoji``, or a neutral mask over exactly the same pixels (see ``cover``)."""
        if supersample < 1:
            raise ConfigError(f"supersample must be >= 1, got {supersample}: use e.g. 4")
        if style not in STYLES:
            raise ConfigError(f"emoji style {style!r} is unknown: use one of {', '.join(STYLES)}")
        self.supersample = int(supersample)
        self.style = style
        self._cache: OrderedDict[tuple[int, int], _Sprite] = OrderedDict()
        self._user: dict[int, np.ndarray] = {}
        if png_dir is not None:
            folder = Path(png_dir).expanduser()
            if not folder.is_dir():
                raise ConfigError(f"emoji folder {folder} does not exist: create it with <emotion>.png files "
                                  "or leave the emoji folder parameter empty to use the drawn emoji")
            for i, name in enumerate(EMOTIONS):
                path = folder / f"{name}.png"
                if path.is_file():
                    self._user[i] = _load_png(path)
            if (folder / f"{UNKNOWN}.png").is_file():
                self._user[UNKNOWN_INDEX] = _load_png(folder / f"{UNKNOWN}.png")
            missing = [name for i, name in enumerate(EMOTIONS) if i not in self._user]
            if missing:
                log.warning("emoji folder %s has no PNG for %s; using the drawn emoji for those",
                            folder, ", ".join(missing))

    def _get(self, emotion_index: int, diameter: int) -> _Sprite:
        if not (0 <= emotion_index < len(EMOTIONS) or emotion_index == UNKNOWN_INDEX):
            raise ValueError(f"emotion_index must be in 0..{len(EMOTIONS) - 1} or {UNKNOWN_INDEX} (unknown), "
                             f"got {emotion_index}")
        if diameter < 1:
            raise ValueError(f"diameter must be >= 1, got {diameter}")
        key = (int(emotion_index), int(diameter))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        user = self._user.get(key[0])
        bgra = (_user_face(user, key[1]) if user is not None
                else _draw_face(emotion_name(key[0]), key[1], self.supersample))
        bgra.setflags(write=False)
        sp = _Sprite(bgra, _premultiply(bgra))
        self._cache[key] = sp
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return sp

    def sprite(self, emotion_index: int, diameter: int) -> np.ndarray:
        """(d, d, 4) uint8 BGRA, straight alpha; read-only and cached per (emotion, diameter). UNKNOWN_INDEX: the
        grey question-mark face of a face whose emotion is not known (a user PNG folder may add unknown.png)."""
        return self._get(emotion_index, diameter).straight

    def cover(self, frame: np.ndarray, center: tuple[float, float], radius: float, roll_deg: float,
              emotion_index: int) -> None:
        """Paint the emoji over the face disk in place; every pixel within ``radius`` becomes opaque emoji.

        ``roll_deg`` follows cv2.getRotationMatrix2D (positive = counter-clockwise on screen).
        The sprite is chosen so its opaque disk, after bilinear rotation, still contains the
        face disk (see ``_MARGIN``); faces larger than 512 px are scaled up in the warp.
        A neutral ``style`` (blur, pixelate, solid) blends its content through the same warped alpha, so it
        replaces exactly the pixels the emoji would.
        """
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be an (H, W, 3) uint8 BGR image, got {frame.shape} {frame.dtype}")
        cx, cy, radius, roll = float(center[0]), float(center[1]), float(radius), float(roll_deg)
        if not all(math.isfinite(v) for v in (cx, cy, radius, roll)):
            raise ValueError(f"cover() needs finite values, got center={center} radius={radius} roll={roll_deg}")
        radius = max(radius, 0.0)
        # Smallest cached size whose opaque disk holds the face, then scale the warp so the face
        # disk maps exactly onto the sprite's safe radius d/2 - _MARGIN (scale <= 1 below 512 px).
        i = bisect.bisect_left(_LADDER, 2.0 * radius + 2.0 * _MARGIN)
        d = _LADDER[min(i, len(_LADDER) - 1)]
        scale = max(radius, 0.5) / (d / 2.0 - _MARGIN)
        h, w = frame.shape[:2]
        ext = scale * (d / 2.0 + 1.5)  # alpha is 0 beyond d/2 + 0.5 in sprite pixels
        x0, x1 = max(0, math.floor(cx - ext)), min(w, math.ceil(cx + ext) + 1)
        y0, y1 = max(0, math.floor(cy - ext)), min(h, math.ceil(cy + ext) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        spr = self._get(emotion_index, d).premult
        # Inverse map (frame region -> sprite): p_s = A^T (p - center) / scale + c_s, with A the
        # rotation of cv2.getRotationMatrix2D(angle=roll).
        th = math.radians(roll)
        a, b = math.cos(th) / scale, math.sin(th) / scale
        cs = (d - 1) / 2.0
        dx, dy = x0 - cx, y0 - cy
        m = np.array([[a, -b, a * dx - b * dy + cs], [b, a, b * dx + a * dy + cs]], np.float64)
        warped = cv2.warpAffine(spr, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        roi = frame[y0:y1, x0:x1]
        inv = cv2.cvtColor(cv2.bitwise_not(warped[:, :, 3]), cv2.COLOR_GRAY2BGR)
        # Premultiplied "over": alpha 255 -> roi * 0 + sprite color, i.e. replaced exactly.
        under = cv2.multiply(roi, inv, scale=1.0 / 255.0)
        if self.style == "emoji":
            color = cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR)
        else:  # the emoji's own (warped) alpha over neutral content: the very same pixels are replaced
            alpha = cv2.cvtColor(warped[:, :, 3], cv2.COLOR_GRAY2BGR)
            color = cv2.multiply(_neutral(roi, self.style, radius), alpha, scale=1.0 / 255.0)
        roi[...] = cv2.add(color, under)

