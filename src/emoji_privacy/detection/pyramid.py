"""Where a frame is searched for faces, and the constants measured for it: the levels of the image pyramid
(``pyramid_scales``), the tiles a large level is cut into (``tile_spans``), the windows of an enlarged level
(``enlarged_window``, ``to_frame``) and the low-light check and brightened copy of the dark pass
(``dark_share``, ``brighten``). Pure numpy and OpenCV: no model, no backend.
"""

from __future__ import annotations

import cv2
import numpy as np

RELIABLE_FACE_PX = 20
"""Face width (in the detector's input) from which YuNet finds most faces: 24 px and wider ~99%, 20-24 px
~90% (300-W faces pasted into 1920x1080 frames, bench/bench_coverage.py); levels up to native resolution
are spaced for it."""
SMALL_FACE_PX = 40
"""Width the small-face level enlarges a ``min_face`` face to: at 2x, every 20-24 px face of the same
benchmark was found (1.4x: 3 of 361 missed, 1.7x: 1)."""
LEVEL_RATIO = 3.0
"""Largest scale step between two levels up to native resolution: a level finds faces from RELIABLE_FACE_PX
to well beyond LEVEL_RATIO times that, so neighbouring levels overlap in the face sizes they cover."""
FINE_LEVEL_MAX_PX = int(2 * LEVEL_RATIO * RELIABLE_FACE_PX)
"""Widest face a finer level reports: twice what the next coarser level already finds reliably."""
TILE = 1024
"""Largest tile side a level is cut into: bounded memory (a 4K frame at 2x is never built whole) and, for a
stream that spreads the small-face level over frames, steps of bounded cost. onnxruntime costs ~17 ms per
megapixel on 2 threads from 640x480 up to this size, so tiles are as large as allowed and equal (least overlap)."""
FINE_SHARE = 2
"""Frames a stream spreads a tiled finer regular level over (1280x720 at native size: its two tiles take turns).
At 1280x720 that level costs 22-30 ms whole; the faces it alone finds (20-40 px) are followed in every frame
once found, and held by tracking."""
SHARED_TILE = 512
"""Largest tile side of a small-face level spread over the frames of a stream: small steps keep every frame's
share of it (and so the latency) even; 640x480 at 2x is 9 tiles of ~4 ms."""
FOLLOW_WINDOW = 3.0
"""Side of the window searched around a followed small face, in face sizes (room for a frame's motion)."""
FOLLOW_SIDE = 32 * int(np.ceil(FOLLOW_WINDOW * SMALL_FACE_PX / 32))
"""That window's side in the detector's input (the face at SMALL_FACE_PX), a multiple of the network's stride."""
CLOSEUP_SIDE = 224
"""Longer side of the close-up level: a coarse look at the whole frame for faces right in front of the camera.
YuNet misses faces much above ~150 px in its input, the more so in the dark: a face 80% of a dark 640x360 frame's
height scored 0.0-0.25 at full size, 0.2-0.5 at half size and 0.8 at 224 px (crowd close-up clip, bright copy)."""
CLOSEUP_MIN_PX = 40
"""Narrowest face the close-up level reports, in its own pixels (a finer level finds the smaller ones)."""
DARK_LEVEL = 60
"""Luma under which a pixel counts as dark for the low-light check."""
DARK_SHARE = 0.5
"""A frame with at least this share of dark pixels is searched on a brightened copy (too)."""
NIGHT_SHARE = 0.85
"""A frame with at least this share of dark pixels (a dim hall: the dark crowd clips are 89-99% dark) is searched
on the brightened copy alone; a partly dark one on the original as well."""
DARK_SCORE_FACTOR = 0.5
"""A dark frame's search (on its brightened copy) accepts faces at this share of the score threshold (0.3 for
YuNet's 0.6): a dim face scores low even when brightened; on the dark scenes this found 99 of 103 faces with no
false one."""
LOW_LIGHT_MODES = ("auto", "always", "off")


def pyramid_scales(shape: tuple[int, ...], max_side: int, min_face: int) -> list[float]:
    """Scales at which a frame is searched, coarse to fine.

    The coarse level fits the frame into ``max_side`` (large faces). Up to native resolution, levels are
    spaced geometrically by at most LEVEL_RATIO, the finest making a ``min_face`` wide face RELIABLE_FACE_PX
    wide. Then a small-face level enlarges the frame so ``min_face`` becomes SMALL_FACE_PX (2x for 20 px):
    the only level above 1, and the costly one (``FaceDetector.detect`` can spread it over frames).
    """
    h, w = shape[:2]
    coarse = min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0
    if min_face <= 0:
        return [coarse]
    fine = min(1.0, RELIABLE_FACE_PX / min_face)
    scales = [coarse]
    if fine > coarse * 1.05:
        steps = int(np.ceil(np.log(fine / coarse) / np.log(LEVEL_RATIO) - 1e-9))
        scales = [float(coarse * (fine / coarse) ** (i / steps)) for i in range(steps + 1)]
    small = SMALL_FACE_PX / min_face
    if small > scales[-1] * 1.05:
        scales.append(float(small))
    return scales


def closeup_scale(shape: tuple[int, ...], max_side: int) -> float | None:
    """Scale of the close-up level (longer side CLOSEUP_SIDE), or None when the coarse level is already that
    small."""
    side = max(shape[:2])
    coarse = min(1.0, max_side / side) if max_side > 0 else 1.0
    scale = CLOSEUP_SIDE / side
    return scale if scale * 1.5 < coarse else None


def tile_spans(length: int, max_tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, size) of the fewest equal tiles of at most ``max_tile`` px that cover ``length`` px, neighbours
    sharing at least ``overlap`` px (equal tiles: no more overlap than needed)."""
    if length <= max_tile:
        return [(0, length)]
    n = int(np.ceil((length - overlap) / (max_tile - overlap)))
    size = int(np.ceil((length + (n - 1) * overlap) / n))
    return [(int(round(i * (length - size) / (n - 1))), size) for i in range(n)]


def brighten(image_bgr: np.ndarray, gamma: float = 0.5) -> np.ndarray:
    """A denoised, gamma-brightened copy: faces at pixel levels of 10-40 come up to 50-100, where the detector
    was trained to see them. The slight blur first matters as much as the gamma: brightening amplifies the
    sensor noise of a dark frame, which hides small faces (dark_scene frames: 77 of 103 faces found without
    the extra pass, 83 with gamma alone, 99 with the blur and the lower DARK_SCORE_FACTOR threshold)."""
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
    return cv2.LUT(cv2.GaussianBlur(image_bgr, (0, 0), 1.0), lut)


def dark_share(image_bgr: np.ndarray) -> float:
    """Share of pixels darker than DARK_LEVEL (luma), on a ~160 px subsample: the check costs ~0.1 ms."""
    step = max(1, max(image_bgr.shape[:2]) // 160)
    luma = cv2.cvtColor(np.ascontiguousarray(image_bgr[::step, ::step]), cv2.COLOR_BGR2GRAY)
    return float((luma < DARK_LEVEL).mean())


def enlarged_window(image_bgr: np.ndarray, scale: float, x: float, y: float, width: int, height: int) -> np.ndarray:
    """The ``width`` x ``height`` window at (x, y) of the frame scaled by ``scale``, warped straight from the frame
    (the scaled frame itself is never built)."""
    m = np.array([[scale, 0, -x], [0, scale, -y]], np.float64)
    return cv2.warpAffine(image_bgr, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_frame(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, scale: float, x: float,
             y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections in a window at (x, y) of the frame scaled by ``scale`` -> frame pixels."""
    s = np.float32(scale)
    return ((boxes + np.array([x, y, x, y], np.float32)) / s).astype(np.float32), scores, \
        ((kps + np.array([x, y], np.float32)) / s).astype(np.float32)
