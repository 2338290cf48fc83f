"""YuNet, the default face detection backend (OpenCV model zoo), through onnxruntime or cv2.FaceDetectorYN."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError, ModelFileError
from ..model_files import find_model_file
from .base import FaceDetector, dynamic_onnx_session, empty_raw, nms
from .pyramid import RELIABLE_FACE_PX


class YuNetDetector(FaceDetector):
    """YuNet (OpenCV model zoo): small, fast, 5 keypoints.

    ``engine="onnxruntime"`` (default) runs the model at the frame's own size (the file's fixed
    640x640 input is made dynamic) and decodes its outputs here; it is about 3x faster than
    ``engine="opencv"`` (cv2.FaceDetectorYN), which is kept as a reference.
    """

    name = "yunet"
    closeup_level = True  # it misses faces far above ~150 px, the more so in the dark (pyramid.CLOSEUP_SIDE)
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
                self._session = dynamic_onnx_session(path, {1: "N"}, threads)
        except Exception as e:  # noqa: BLE001 - cv2.error, onnx DecodeError, ORT errors
            raise ModelFileError(f"YuNet model {path} could not be loaded ({str(e).strip().splitlines()[-1][:120]}); "
                                 "the file is corrupt: delete it and run `make setup`") from e

    def _detect_raw(self, image_bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.engine == "opencv":
            self._net.setScoreThreshold(threshold)
            return self._detect_opencv(image_bgr)
        return self._detect_ort_one(image_bgr, threshold)

    def _detect_opencv(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(img)
        if faces is None or len(faces) == 0:
            return empty_raw()
        faces = faces.astype(np.float32)
        boxes = np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], 1)
        return boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)

    def _detect_raw_batch(self, images: np.ndarray,
                          threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self.engine == "opencv":
            return super()._detect_raw_batch(images, threshold)
        return self._detect_ort(images, threshold)

    def _detect_ort_one(self, img: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._detect_ort(img[None], threshold)[0]

    def _detect_ort(self, images: np.ndarray, threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The model on a batch of equal-sized images (B, H, W, 3), decoded per image."""
        ih, iw = images.shape[1:3]
        ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32  # the network's strides need multiples of 32
        blob = np.zeros((len(images), 3, ph, pw), np.float32)  # BGR, 0..255, as cv2.FaceDetectorYN feeds it
        blob[:, :, :ih, :iw] = images.transpose(0, 3, 1, 2)
        # the graph flattens its batch into one row of anchors (1, B * anchors, C): back to (B, anchors, C)
        outs = {o.name: v.reshape(len(images), -1, v.shape[-1]) for o, v in
                zip(self._session.get_outputs(), self._session.run(None, {"input": blob}), strict=True)}
        return [self._decode(outs, b, pw, threshold) for b in range(len(images))]

    def _decode(self, outs: dict[str, np.ndarray], b: int, pw: int,
                threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        all_boxes, all_scores, all_kps = [], [], []
        for st in self.STRIDES:
            cols = pw // st
            score = np.sqrt(np.clip(outs[f"cls_{st}"][b, :, 0], 0, 1) * np.clip(outs[f"obj_{st}"][b, :, 0], 0, 1))
            idx = np.nonzero(score >= threshold)[0]
            if len(idx) == 0:
                continue
            r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
            bb = outs[f"bbox_{st}"][b, idx]
            cx, cy = (c + bb[:, 0]) * st, (r + bb[:, 1]) * st
            bw, bh = np.exp(bb[:, 2]) * st, np.exp(bb[:, 3]) * st
            all_boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            kp = outs[f"kps_{st}"][b, idx].reshape(-1, 5, 2)
            all_kps.append(np.stack([(kp[..., 0] + c[:, None]) * st, (kp[..., 1] + r[:, None]) * st], -1))
            all_scores.append(score[idx])
        if not all_boxes:
            return empty_raw()
        boxes = np.concatenate(all_boxes).astype(np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        kps = np.concatenate(all_kps).astype(np.float32)
        keep = nms(boxes, scores, self.nms_threshold)[: self.top_k]
        return boxes[keep], scores[keep], kps[keep]
