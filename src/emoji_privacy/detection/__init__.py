"""Face detection backends behind one small interface.

`FaceDetector.detect(image_bgr) -> Detections`; backends are chosen by name from config
(`load_face_detector("yunet")`, `detector_from_config(cfg.detector)`). Both backends return five
keypoints per face (eyes, nose, mouth corners; the eye on the image's left first) so the landmark
stage can de-rotate its crop.

A backend only runs its network on one image (`_detect_raw`); the base class decides where to look:
a pyramid from the frame fitted into ``max_side`` up to a 2x level for faces of ``min_face`` px,
large levels in tiles, windows around small faces already known, and a brightened second pass on
dark frames (``low_light``). Every constant of ``pyramid`` says what it was measured on.

Modules: ``base`` (``FaceDetector``, ``Detections``, ``nms``, ``box_iou``, ``clip_boxes``),
``pyramid`` (pyramid levels, tiles, windows, the dark pass and their constants), the backends
``yunet`` and ``centerface``; this package holds the registry (``DETECTOR_BACKENDS``,
``load_face_detector``, ``detector_from_config``) and re-exports the interface, the helpers and the
backend classes (``from emoji_privacy.detection import box_iou``); the search's own names stay in ``pyramid``.
"""

from __future__ import annotations

from ..config import DetectorConfig
from ..errors import ConfigError
from .base import Detections, FaceDetector, box_iou, clip_boxes, nms
from .centerface import CenterFaceDetector
from .yunet import YuNetDetector

__all__ = ["DETECTOR_BACKENDS", "CenterFaceDetector", "Detections", "FaceDetector", "YuNetDetector", "box_iou",
           "clip_boxes", "detector_from_config", "load_face_detector", "nms"]


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
