"""The anonymizer: detection -> tracking -> landmarks -> emotion -> emoji, on one frame.

`Anonymizer.process(frame) -> (anonymized_frame, faces)`. It never returns the input
unmodified when a face was found or is being held; when a stage fails it raises, and the
caller (the ROS node) publishes a masked frame or nothing instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from . import EMOTIONS
from .config import PipelineConfig
from .detection import FaceDetector, load_face_detector
from .emoji import EmojiRenderer
from .emotion import EmotionClassifier, load_emotion_classifier
from .landmarks import LandmarkDetector, align_face, covering_circle, face_region, head_roll, load_landmark_detector
from .tracking import FaceTracker

HOLD_GROWTH = 0.1
"""Relative growth of a held face's cover per missed frame."""


@dataclass
class FaceResult:
    """One detected face of one frame, as published in FaceEmotion."""

    track_id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    probabilities: np.ndarray  # (7,) this frame's raw probabilities
    emotion_index: int  # shown emotion (smoothed per track)
    confidence: float  # smoothed probability of the shown emotion
    roll_deg: float
    landmarks: np.ndarray  # (68, 2)
    center: tuple[float, float]
    radius: float

    @property
    def emotion(self) -> str:
        return EMOTIONS[self.emotion_index]


@dataclass
class StageTimes:
    """Milliseconds spent in each stage of the last frame (for diagnostics and benchmarks)."""

    detect: float = 0.0
    landmarks: float = 0.0
    emotion: float = 0.0
    render: float = 0.0
    total: float = 0.0


def ellipse_points(box: np.ndarray, n: int = 16) -> np.ndarray:
    """Points on the ellipse inscribed in ``box``: the detector's own idea of the face."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + (box[2] - box[0]) / 2 * np.cos(a), cy + (box[3] - box[1]) / 2 * np.sin(a)], 1)


def with_track_roll(keypoints: np.ndarray, rolls: list[float | None]) -> np.ndarray:
    """Turn each face's eye keypoints to its track's roll from the previous frame.

    The detector's eye keypoints stay near level on tilted faces, so the landmark crop would be
    under-rotated and need a second pass; the previous frame's roll is a much better prior.
    """
    out = keypoints.copy()
    for i, roll in enumerate(rolls):
        if roll is None:
            continue
        mid = out[i, :2].mean(0)
        half = max(float(np.linalg.norm(out[i, 1] - out[i, 0])) / 2, 1.0)
        a = np.radians(-roll)  # roll is counter-clockwise on screen; image y points down
        d = half * np.array([np.cos(a), np.sin(a)], np.float32)
        out[i, 0], out[i, 1] = mid - d, mid + d
    return out


class Anonymizer:
    """Composes the stages chosen in a PipelineConfig."""

    def __init__(self, config: PipelineConfig | None = None, detector: FaceDetector | None = None,
                 landmarker: LandmarkDetector | None = None, classifier: EmotionClassifier | None = None,
                 renderer: EmojiRenderer | None = None) -> None:
        self.config = cfg = config or PipelineConfig()
        self.detector = detector or load_face_detector(
            cfg.detector.backend, score_threshold=cfg.detector.score_threshold, max_side=cfg.detector.max_side,
            model_path=cfg.detector.model_path or None, threads=cfg.detector.threads)
        lm_opts: dict[str, object] = {}
        if cfg.landmarks.backend == "facemesh":
            lm_opts["num_threads"] = cfg.landmarks.threads
        if cfg.landmarks.model_path:
            lm_opts["model_path"] = cfg.landmarks.model_path
        self.landmarker = landmarker or load_landmark_detector(cfg.landmarks.backend, **lm_opts)
        self.classifier = classifier or load_emotion_classifier(
            cfg.emotion.backend, model_path=cfg.emotion.model_path or None, threads=cfg.emotion.threads)
        self.renderer = renderer or EmojiRenderer(png_dir=cfg.emoji.png_dir or None)
        t = cfg.tracking
        self.tracker = FaceTracker(t.iou_threshold, t.hold_frames if t.enabled else 0, t.smoothing, t.hysteresis)
        self.times = StageTimes()

    def reset(self) -> None:
        """Forget tracks (e.g. when the input stream jumps back in time)."""
        self.tracker.reset()

    def process(self, frame: np.ndarray) -> tuple[np.ndarray, list[FaceResult]]:
        """Anonymize one BGR frame; returns a new frame and the faces found in it."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"process() wants an (H, W, 3) uint8 BGR frame, got {frame.shape} {frame.dtype}")
        times = StageTimes()
        t0 = time.perf_counter()
        dets = self.detector.detect(frame)
        t1 = time.perf_counter()
        n = len(dets)
        tracks, held = self.tracker.update(dets.boxes)
        keypoints = with_track_roll(dets.keypoints, [t.cover[3] if t.cover else None for t in tracks])
        lms = self.landmarker.detect(frame, dets.boxes, keypoints) if n else np.zeros((0, 68, 2), np.float32)
        t2 = time.perf_counter()
        size = self.classifier.input_size
        if n:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            crops = np.stack([align_face(gray, lm, size) for lm in lms])
            probs = self.classifier.predict(crops)
        else:
            probs = np.zeros((0, len(EMOTIONS)), np.float32)
        t3 = time.perf_counter()

        out = frame.copy()
        faces: list[FaceResult] = []
        margin = self.config.emoji.margin
        for i in range(n):
            box, lm = dets.boxes[i], lms[i]
            region = np.concatenate([face_region(lm), ellipse_points(box)], 0)
            (cx, cy), r = covering_circle(region)
            roll = head_roll(lm)
            track = tracks[i]
            shown = self.tracker.smooth(track, probs[i])
            track.cover = (cx, cy, r * margin, roll)
            faces.append(FaceResult(track.track_id, box.copy(), float(dets.scores[i]), probs[i].copy(), shown,
                                    float(track.probs[shown]), roll, lm, (cx, cy), r * margin))
        # Held tracks first so that real detections are drawn on top of stale predictions.
        for track in held:
            if track.cover is None:
                continue
            # Move the last emoji with the track's predicted centre (constant velocity).
            cx, cy, r, roll = track.cover
            cx += float(track.velocity[0] + track.velocity[2]) / 2
            cy += float(track.velocity[1] + track.velocity[3]) / 2
            track.cover = (cx, cy, r, roll)
            # Grow the cover while the face is unseen: the prediction gets less certain.
            grown = r * (1.0 + HOLD_GROWTH * track.misses)
            self.renderer.cover(out, (cx, cy), grown, roll, max(track.shown, 0))
        for f in faces:
            self.renderer.cover(out, f.center, f.radius, f.roll_deg, f.emotion_index)
        t4 = time.perf_counter()
        times.detect, times.landmarks = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        times.emotion, times.render = (t3 - t2) * 1e3, (t4 - t3) * 1e3
        times.total = (t4 - t0) * 1e3
        self.times = times
        return out, faces
