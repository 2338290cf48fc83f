"""The interface every 68-point landmark backend implements."""

from __future__ import annotations

import numpy as np


class LandmarkDetector:
    """Base class: 68 landmarks for faces given by boxes (and optionally 5 keypoints) from our detector."""

    name: str = "base"

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """boxes (N,4), optional keypoints (N,5,2) (eyes first; used to de-rotate the crop) -> (N,68,2) float32."""
        raise NotImplementedError
