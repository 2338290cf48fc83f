"""The interface every face detection backend implements: ``FaceDetector`` (it runs a backend's
``_detect_raw`` over the search of ``pyramid``), ``Detections``, and the helpers the backends share
(``nms``, ``box_iou``, ``clip_boxes``, ``empty_raw``, ``dynamic_onnx_session``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError
from .pyramid import (
    CLOSEUP_MIN_PX,
    DARK_SCORE_FACTOR,
    DARK_SHARE,
    FINE_LEVEL_MAX_PX,
    FINE_SHARE,
    FOLLOW_SIDE,
    LOW_LIGHT_MODES,
    NIGHT_SHARE,
    RELIABLE_FACE_PX,
    SHARED_TILE,
    SMALL_FACE_PX,
    TILE,
    brighten,
    closeup_scale,
    dark_share,
    enlarged_window,
    pyramid_scales,
    tile_spans,
    to_frame,
)


@dataclass
class Detections:
    """Faces found in one image: boxes (N,4) x0,y0,x1,y1, scores (N,), keypoints (N,5,2).

    ``normal`` (N,) bool: the face was found at the full score threshold, by a pass on the image as it is or on the
    brightened copy. False: only the dark pass found it, under the full threshold (it searches a brightened copy at
    DARK_SCORE_FACTOR of it), where dark background passes for faces too: such a face is covered at once but listed
    only once its track is confirmed (tracking.FaceTracker). None (a detector that does not say): every face counts
    as normal."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    normal: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.normal is None:
            self.normal = np.ones(len(self.boxes), bool)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.keypoints[keep], self.normal[keep])


def empty_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)


class FaceDetector:
    """Finds faces in a BGR image, at every size from ``min_face`` px wide up, in dim frames too.

    Backends implement ``_detect_raw`` for one image at its own size; ``detect`` runs it on a pyramid
    (``pyramid_scales``) whose large levels are cut into overlapping tiles, plus a close-up level for faces that
    fill much of the frame (``closeup_scale``); a dark frame (``low_light``: auto) is searched on a brightened
    copy. All boxes are merged by non-maximum suppression.
    """

    name = "base"
    max_side: int = 640
    min_face: int = RELIABLE_FACE_PX
    low_light: str = "auto"
    nms_threshold: float = 0.3
    closeup_level: bool = False
    """Search the close-up level too (``closeup_scale``): for a backend that misses faces much larger than its
    training faces (YuNet). At that coarse scale a drawn emoji passes for a face, so a probe looking for faces
    left in anonymized frames turns it off."""

    score_threshold: float = 0.5

    def _detect_raw(self, image_bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N,4), scores (N,), keypoints (N,5,2) with a score of at least ``threshold``, in the pixels of
        ``image_bgr``, before NMS across calls."""
        raise NotImplementedError

    def _set_search(self, max_side: int, min_face: int, low_light: str) -> None:
        if int(max_side) < 64:
            raise ConfigError(f"{self.name} max_side must be >= 64, got {max_side}")
        if int(min_face) < 0:
            raise ConfigError(f"{self.name} min_face must be >= 0 (0: only the max_side level), got {min_face}")
        if low_light not in LOW_LIGHT_MODES:
            raise ConfigError(f"{self.name} low_light must be one of {', '.join(LOW_LIGHT_MODES)}, got '{low_light}'")
        self.max_side, self.min_face, self.low_light = int(max_side), int(min_face), low_light
        self.last_levels: list[float] = []
        self.last_dark = False

    def detect(self, image_bgr: np.ndarray, share: tuple[int, int] | None = None,
               follow: np.ndarray | None = None, levels: str = "all") -> Detections:
        """Faces of one frame, searched at every level of ``pyramid_scales``.

        ``share`` (k, n): a stream's frame k. Only every n-th tile of the small-face level is searched (those whose
        index is k mod n), so the stream spreads that level over n frames; a finer regular level that is cut into
        tiles (native size above max_side: 1280x720 and up) is spread the same way over FINE_SHARE frames (the
        coarse level, the close-up level and the follow windows still search every frame). None: the whole
        pyramid (a still image). ``follow``: boxes (N,4) of small faces already tracked; each
        is searched at the small-face scale in a window around it, so a small face, once found, does not wait
        for its tile's turn. ``levels``: "all"; "regular" (all but the small-face level, for a stream whose
        small-face level is searched in the background); "small" (that level alone, the background's part).
        """
        h, w = image_bgr.shape[:2]
        if h == 0 or w == 0:
            return Detections.empty()
        scales = pyramid_scales(image_bgr.shape, self.max_side, self.min_face)
        share_dark = dark_share(image_bgr) if self.low_light != "off" else 0.0
        dark = self.low_light == "always" or share_dark >= DARK_SHARE
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if levels not in ("all", "regular", "small"):
            raise ValueError(f"levels must be all, regular or small, got {levels!r}")
        # a dark frame is searched on a brightened copy; a partly dark one on the original too (its lit faces can
        # wash out when brightened: one 25 px face of bench_coverage's 4K frames, 58% dark, was lost), a frame
        # nearly all dark (a dim hall) only on the copy: the second pass doubled its cost and found no face more
        # on the dark crowd clips (bench/results/pipeline_crowd.md)
        passes = [(image_bgr, self.score_threshold)] if share_dark < NIGHT_SHARE else []
        if dark:
            passes.append((brighten(image_bgr), DARK_SCORE_FACTOR * self.score_threshold))
        normal_parts = 0  # the first parts come from the pass on the image as it is (when there is one)
        for k, (source, threshold) in enumerate(passes):
            parts.extend(self._search_levels(source, scales, share, follow, levels, threshold))
            if k == 0 and share_dark < NIGHT_SHARE:
                normal_parts = len(parts)
        source, threshold = passes[-1]
        closeup = closeup_scale(image_bgr.shape, self.max_side) if self.closeup_level and levels != "small" else None
        if closeup is not None:  # a face right in front of the camera
            boxes, scores, kps = self._detect_raw(self._level_image(source, closeup), threshold)
            keep = (boxes[:, 2] - boxes[:, 0]) >= CLOSEUP_MIN_PX
            if keep.any():
                parts.append(to_frame(boxes[keep], scores[keep], kps[keep], closeup, 0, 0))
                normal_parts += not dark  # without a dark pass the close-up level searched the image as it is
        self.last_levels, self.last_dark = scales, dark
        normal_boxes = [p[0] for p in parts[:normal_parts] if len(p[0])]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return Detections.empty()
        boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        kps = np.concatenate([p[2] for p in parts]).astype(np.float32)
        if len(parts) > 1:
            keep = nms(boxes, scores, self.nms_threshold)
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
            keep = not_contained(boxes)
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        # a face the normal pass found counts as normal even when the dark pass's box of it won the NMS
        normal = np.zeros(len(boxes), bool)
        if normal_boxes:
            normal = (box_iou(boxes, np.concatenate(normal_boxes).astype(np.float32)) >= self.nms_threshold).any(1)
        normal |= scores >= self.score_threshold  # a dark-pass face as sure as a normal one: a face, not a ghost
        boxes = clip_boxes(boxes, w, h)
        inside = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
        return Detections(boxes[inside], scores[inside], kps[inside], normal[inside])

    def _search_levels(self, source: np.ndarray, scales: list[float], share: tuple[int, int] | None,
                       follow: np.ndarray | None, levels: str,
                       threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One pass of ``detect`` over the pyramid and the follow windows of one image (original or brightened)."""
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for i, scale in enumerate(scales):
            if (scale > 1 and levels == "regular") or (scale <= 1 and levels == "small"):
                continue
            if scale > 1:
                level_share, tile = share, SHARED_TILE if share is not None else TILE
            else:
                level_share = (share[0], FINE_SHARE) if share is not None and i > 0 else None
                tile = TILE
            parts.extend(self._search_level(source, scale, i == 0, len(scales) > 1, level_share, threshold, tile))
        if follow is not None and len(follow) and scales[-1] > 1:
            parts.extend(self._search_windows(source, follow, threshold))
        return parts

    @staticmethod
    def _level_image(image_bgr: np.ndarray, scale: float) -> np.ndarray:
        return image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale,
                                                         interpolation=cv2.INTER_AREA)

    def _search_level(self, image_bgr: np.ndarray, scale: float, coarsest: bool, tiled: bool,
                      share: tuple[int, int] | None, threshold: float,
                      tile: int = TILE) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One pyramid level, in tiles of at most TILE px when it is larger, mapped back to frame pixels.

        Levels up to native size are resized whole and cut; an enlarged level is never built whole (a 4K frame
        at 2x would take 400 MB): each of its tiles is warped from the frame on its own. A finer level keeps only
        faces up to FINE_LEVEL_MAX_PX wide (in its pixels): larger ones are the coarser levels' job, and at high
        resolution large textures (a shirt's print) pass for faces.
        """
        h, w = image_bgr.shape[:2]
        iw, ih = max(1, round(w * scale)), max(1, round(h * scale))
        if not tiled:
            origins = [(0, 0, iw, ih)]
        else:  # tiles share FINE_LEVEL_MAX_PX so that every face this level keeps lies whole in one of them
            origins = [(x, y, tw, th) for y, th in tile_spans(ih, tile, FINE_LEVEL_MAX_PX)
                       for x, tw in tile_spans(iw, tile, FINE_LEVEL_MAX_PX)]
        if share is not None and len(origins) > 1:
            origins = [o for k, o in enumerate(origins) if k % share[1] == share[0] % share[1]]
        level = self._level_image(image_bgr, scale) if scale <= 1.0 and origins else None
        out = []
        for x, y, tw, th in origins:
            tile = level[y:y + th, x:x + tw] if level is not None else enlarged_window(image_bgr, scale, x, y, tw, th)
            boxes, scores, kps = self._detect_raw(tile, threshold)
            if not coarsest and len(boxes):
                keep = (boxes[:, 2] - boxes[:, 0]) <= FINE_LEVEL_MAX_PX
                # a face cut by an inner tile edge lies whole in the neighbouring tile: its cut box must not win
                keep &= ((boxes[:, 0] > 1) | (x == 0)) & ((boxes[:, 1] > 1) | (y == 0))
                keep &= ((boxes[:, 2] < tw - 1) | (x + tw >= iw)) & ((boxes[:, 3] < th - 1) | (y + th >= ih))
                boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
            if len(boxes):
                out.append(to_frame(boxes, scores, kps, scale, x, y))
        return out

    def follow_width(self, shape: tuple[int, ...]) -> float:
        """Tracked faces narrower than this are searched around in every frame of a stream (``follow``): those
        the levels searched whole in every frame may miss (up to twice ``min_face``, and, when the finer regular
        level is spread over frames, up to 1.5x what the coarse level finds reliably)."""
        coarse = pyramid_scales(shape, self.max_side, self.min_face)[0]
        return max(2.0 * self.min_face, 1.5 * RELIABLE_FACE_PX / coarse if coarse < 1.0 else 0.0)

    def _detect_raw_batch(self, images: np.ndarray,
                          threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``_detect_raw`` of each of the equal-sized ``images`` (B, H, W, 3); a backend that can run them as
        one batch overrides this (one model call instead of B)."""
        return [self._detect_raw(img, threshold) for img in images]

    def _search_windows(self, image_bgr: np.ndarray, boxes: np.ndarray,
                        threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each of ``boxes`` searched in a window of FOLLOW_WINDOW face sizes around it, scaled so the face is
        SMALL_FACE_PX wide (where the detector finds every 20-24 px face): all windows are FOLLOW_SIDE px, so
        they go through the model as one batch, whatever the number of small faces followed."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        windows, places = [], []
        for b in boxes:
            scale = SMALL_FACE_PX / max(float(b[2] - b[0]), float(b[3] - b[1]), 1.0)
            x0 = (b[0] + b[2]) / 2 * scale - FOLLOW_SIDE / 2
            y0 = (b[1] + b[3]) / 2 * scale - FOLLOW_SIDE / 2
            windows.append(enlarged_window(image_bgr, scale, x0, y0, FOLLOW_SIDE, FOLLOW_SIDE))
            places.append((scale, x0, y0))
        out = []
        for (found, scores, kps), (scale, x0, y0) in zip(self._detect_raw_batch(np.stack(windows), threshold),
                                                         places, strict=True):
            if len(found):
                out.append(to_frame(found, scores, kps, scale, x0, y0))
        return out


CONTAINED_SHARE = 0.7
"""A box lying this much inside a higher-scoring one is a piece of that face (a window around a small face found
its mouth and chin at the threshold inside the whole face, a fourth face in a 3-face demo frame), not another
face: it is dropped. The whole face's cover holds it."""


def not_contained(boxes: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` (sorted best first, after NMS) that do not lie CONTAINED_SHARE or more inside a
    better one."""
    keep: list[int] = []
    for i in range(len(boxes)):
        if keep:
            b, k = boxes[i], boxes[keep]
            iw = np.clip(np.minimum(b[2], k[:, 2]) - np.maximum(b[0], k[:, 0]), 0, None)
            ih = np.clip(np.minimum(b[3], k[:, 3]) - np.maximum(b[1], k[:, 1]), 0, None)
            area = max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-9)
            if (iw * ih / area).max() >= CONTAINED_SHARE:
                continue
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the image so downstream crops never index outside it."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def dynamic_onnx_session(path: object, output_dims: dict[int, str], threads: int) -> object:
    """An onnxruntime session of a fixed-size image model whose batch size, input height and width
    (and the output dimensions named in ``output_dims``) are made dynamic."""
    import onnx

    from ..onnx_session import cpu_session

    model = onnx.load(str(path))
    shape = model.graph.input[0].type.tensor_type.shape
    shape.dim[0].dim_param, shape.dim[2].dim_param, shape.dim[3].dim_param = "B", "H", "W"
    for out in model.graph.output:
        for i, name in {0: "B", **output_dims}.items():
            out.type.tensor_type.shape.dim[i].dim_param = name
    del model.graph.value_info[:]  # stale fixed shapes of intermediate tensors
    return cpu_session(model.SerializeToString(), threads)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of boxes kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        rest = order[1:]
        ious = box_iou(boxes[i:i + 1], boxes[rest])[0]
        order = rest[ious < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU between boxes a (N,4) and b (M,4)."""
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
