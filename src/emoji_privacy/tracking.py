"""Per-face tracks: stable ids, a constant-velocity prediction, and a hold that keeps a
face covered for a few frames when the detector blinks.

The tracker is deliberately small (greedy IoU matching on predicted boxes) so it adds well
under a millisecond per frame; faces in a robot's view are few.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detection import box_iou


@dataclass
class Track:
    """One face followed over frames."""

    track_id: int
    box: np.ndarray  # (4,) last estimated box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box change per frame
    hits: int = 1
    misses: int = 0
    probs: np.ndarray | None = None  # smoothed emotion probabilities
    shown: int = -1  # emotion index currently shown (hysteresis state)
    cover: tuple[float, float, float, float] | None = None  # last (cx, cy, radius, roll) drawn

    def predicted_box(self) -> np.ndarray:
        return self.box + self.velocity


class FaceTracker:
    """Assigns detections to tracks; reports which tracks are held (missed but still covered)."""

    def __init__(self, iou_threshold: float = 0.3, hold_frames: int = 5, smoothing: float = 0.5,
                 hysteresis: float = 0.1) -> None:
        self.iou_threshold = iou_threshold
        self.hold_frames = hold_frames
        self.smoothing = smoothing
        self.hysteresis = hysteresis
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []

    def update(self, boxes: np.ndarray) -> tuple[list[Track], list[Track]]:
        """Match ``boxes`` (N,4) to tracks. Returns (track per box, in box order; held tracks)."""
        preds = np.array([t.predicted_box() for t in self.tracks], np.float32).reshape(-1, 4)
        assigned: list[Track | None] = [None] * len(boxes)
        if len(boxes) and len(preds):
            iou = box_iou(np.asarray(boxes, np.float32), preds)
            for flat in np.argsort(-iou, axis=None):
                d, t = divmod(int(flat), iou.shape[1])
                if iou[d, t] < self.iou_threshold:
                    break
                track = self.tracks[t]
                if assigned[d] is not None or any(a is track for a in assigned):
                    continue
                assigned[d] = track
        matched = {id(a) for a in assigned if a is not None}
        held: list[Track] = []
        survivors: list[Track] = []
        for t in self.tracks:
            if id(t) in matched:
                survivors.append(t)
                continue
            t.misses += 1
            t.box = t.predicted_box()
            if t.misses <= self.hold_frames:
                held.append(t)
                survivors.append(t)
        for d, box in enumerate(boxes):
            box = np.asarray(box, np.float32)
            t = assigned[d]
            if t is None:
                t = Track(self._next_id, box.copy())
                self._next_id += 1
                survivors.append(t)
                assigned[d] = t
            else:
                # Velocity from the last observed box, averaged to damp detector jitter.
                steps = t.misses + 1
                measured = (box - t.box + t.velocity * t.misses) / steps
                t.velocity = measured if t.hits == 1 else 0.5 * t.velocity + 0.5 * measured
                t.box = box.copy()
                t.hits += 1
                t.misses = 0
        self.tracks = survivors
        return [a for a in assigned if a is not None], held

    def smooth(self, track: Track, probs: np.ndarray) -> int:
        """Fold ``probs`` into the track's running average; return the emotion to show."""
        p = np.asarray(probs, np.float32)
        track.probs = p.copy() if track.probs is None else (1 - self.smoothing) * track.probs + self.smoothing * p
        best = int(np.argmax(track.probs))
        if track.shown < 0 or track.probs[best] > track.probs[track.shown] + self.hysteresis:
            track.shown = best
        return track.shown
