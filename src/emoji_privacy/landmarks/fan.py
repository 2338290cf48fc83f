"""The ``fan`` landmark backend: face-alignment's 2D-FAN fed our detector's boxes (its detector
'folder', so only the FAN weights are needed). face-alignment would download those weights at first
use; this backend never does: it reads them from ``$TORCH_HOME/hub/checkpoints/`` (or ``model_path``)
and raises ModelFileError saying where to put them when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..image_io import as_bgr
from .base import LandmarkDetector
from .geometry import N_POINTS, check_boxes


def fan_weights_path(network_size: int = 4) -> tuple[Path, str]:
    """Where face-alignment looks for the 2D-FAN weights ($TORCH_HOME/hub/checkpoints/<file>) and their URL."""
    from urllib.parse import urlparse

    import torch.hub
    from face_alignment.api import models_urls

    url = models_urls[f"2DFAN-{int(network_size)}"]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path), url


class FanLandmarks(LandmarkDetector):
    """face-alignment's 2D-FAN on our boxes (detector 'folder': boxes are given, so only FAN weights are needed)."""

    name = "fan"

    def __init__(self, device: str = "cpu", flip_input: bool = False, network_size: int = 4,
                 model_path: str | os.PathLike | None = None, warmup: bool = True) -> None:
        import face_alignment
        import torch
        from face_alignment.models import FAN

        default, url = fan_weights_path(network_size)
        path = Path(os.path.expanduser(str(model_path))) if model_path else default
        if not path.is_file():
            raise ModelFileError(f"FAN weights not found at {path}; on a connected machine download {url} "
                                 f"and copy it there (or set TORCH_HOME to the folder holding hub/checkpoints/)")

        class _LocalFaceAlignment(face_alignment.FaceAlignment):
            """Loads the state dict from ``path`` the way face-alignment 1.5 does, but never downloads."""

            def _load_native(self, network_name: str, size: int, dev: str, dtype: torch.dtype) -> FAN:
                net = FAN(size)
                net.load_state_dict(torch.load(str(path), map_location=dev, weights_only=True))
                return net.to(dev, dtype=dtype).eval()

        try:
            self._fa = _LocalFaceAlignment(
                face_alignment.LandmarksType.TWO_D, network_size=network_size, device=device,
                flip_input=flip_input, face_detector="folder", compile=False)
        except Exception as e:  # torch.load of a wrong file raises anything from EOFError to UnpicklingError
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelFileError(f"FAN weights at {path} cannot be loaded ({why}); replace the file with {url}") from e
        if warmup:  # face-alignment's numba decoding compiles on first use (~10 s): pay it here, not mid-stream
            self.detect(np.zeros((64, 64, 3), np.uint8), np.array([[8, 8, 56, 56]], np.float32))

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        boxes, _ = check_boxes(boxes, keypoints)
        if len(boxes) == 0:
            return np.zeros((0, N_POINTS, 2), np.float32)
        rgb = np.ascontiguousarray(as_bgr(image_bgr)[..., ::-1])
        faces = [np.array([*b, 1.0], np.float32) for b in boxes]
        res = self._fa.get_landmarks_from_image(rgb, detected_faces=faces)
        out = np.asarray(res, dtype=np.float32).reshape(len(boxes), N_POINTS, -1)[..., :2]
        return np.ascontiguousarray(out)
