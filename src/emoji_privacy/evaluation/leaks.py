"""The privacy leak metric: does any face of the original frame survive anonymization?

An independent detector (another backend than the pipeline's) finds the faces of each
*original* frame at its normal threshold; the same backend then looks for faces in the
*anonymized* frame at a low threshold. A low-threshold detection overlapping an original face
(IoU >= ``overlap``) is a leaked face-frame. Original faces are tracked on their own (their ids
do not come from the pipeline) so that leaks can be counted as runs of consecutive frames per
person, and so that the pipeline's track id covering each person can be checked for switches.

A low-threshold detector can also fire on the emoji itself (it is a drawn face, exactly where the
face was). Each leak therefore also records how much of the original face is still visible: the
share of pixels inside the face box's central ellipse left (nearly) unchanged. A leak with none
visible is counted as a leak all the same, and reported apart so a reader can tell the two kinds.
And a face left partly visible (PARTIAL_SHARE or more unchanged) is a leak even when the probe no
longer recognises it: a too-small or misplaced cover must not pass for a good one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..detection import box_iou, load_face_detector
from ..tracking import FaceTracker

TRUTH_HOLD_FRAMES = 10
"""Frames the reference tracker bridges when the reference detector misses a face."""
UNCHANGED_LEVEL = 8
"""A pixel differing from the original by at most this much (every channel) counts as still visible."""
HIDDEN_SHARE = 0.02
"""A leaked face with less than this share of its central ellipse visible counts as hidden."""
PARTIAL_SHARE = 0.05
"""A face with at least this share of its central ellipse left unchanged is leaked even when no detector
finds it any more: a cover that hides the face's middle but leaves an eye or the mouth out is a leak
(covers drawn by the pipeline leave 0.00-0.02 visible; see bench/results/coverage.md)."""


def visible_share(original: np.ndarray, anonymized: np.ndarray, box: np.ndarray) -> float:
    """Share of the pixels in the ellipse inscribed in the central 80% of ``box`` that the
    anonymization left (nearly) unchanged."""
    h, w = original.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = 0.4 * (box[2] - box[0]), 0.4 * (box[3] - box[1])
    x0, x1 = int(max(cx - ax, 0)), int(min(np.ceil(cx + ax), w))
    y0, y1 = int(max(cy - ay, 0)), int(min(np.ceil(cy + ay), h))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    ys, xs = np.mgrid[y0:y1, x0:x1]
    inside = ((xs + 0.5 - cx) / max(ax, 1e-6)) ** 2 + ((ys + 0.5 - cy) / max(ay, 1e-6)) ** 2 <= 1.0
    diff = np.abs(original[y0:y1, x0:x1].astype(np.int16) - anonymized[y0:y1, x0:x1].astype(np.int16)).max(axis=2)
    return float((diff[inside] <= UNCHANGED_LEVEL).mean()) if inside.any() else 0.0


def independent_backend(pipeline_backend: str) -> str:
    """The detector backend that did not produce the boxes being checked."""
    return "yunet" if pipeline_backend == "centerface" else "centerface"


@dataclass
class FrameLeaks:
    """The leak check of one frame, one entry per face of the original frame."""

    truth: np.ndarray  # (N,4) faces the reference detector finds in the original frame
    truth_ids: list[int]  # their reference track ids
    leaked: list[bool]  # still found in the anonymized frame
    covered_by: list[int | None]  # pipeline track id whose face (detected or held) overlaps it
    probe: np.ndarray  # (M,4) low-threshold detections in the anonymized frame
    visible: list[float] = field(default_factory=list)  # per leaked face: share of it left unchanged

    @property
    def hidden(self) -> int:
        """Leaks where (almost) nothing of the original face is visible: the detector found the emoji."""
        return sum(v < HIDDEN_SHARE for v in self.visible)

    @property
    def count(self) -> int:
        return int(sum(self.leaked))


class LeakMeter:
    """Runs the reference and probe detectors on each (original, anonymized) pair."""

    def __init__(self, backend: str = "centerface", truth_threshold: float = 0.5, probe_threshold: float = 0.2,
                 overlap: float = 0.3, max_side: int = 640, threads: int = 2,
                 partial_share: float = PARTIAL_SHARE) -> None:
        self.backend = backend
        self.partial_share = partial_share
        self.truth_threshold, self.probe_threshold, self.overlap = truth_threshold, probe_threshold, overlap
        # One level of max_side and no brightened pass, as the meter always was: the shared clips show large
        # faces (a pyramid would make every checked frame several times slower), and a dark pass at half the
        # threshold would take background blur for faces and the emoji for a leak. Dim faces left visible are
        # caught by the pixels (partial_share), and the low-light bags bring their own reference faces.
        self.reference = load_face_detector(backend, score_threshold=truth_threshold, max_side=max_side,
                                            threads=threads, min_face=0, low_light="off")
        self.probe = load_face_detector(backend, score_threshold=probe_threshold, max_side=max_side, threads=threads,
                                        min_face=0, low_light="off")
        # and no close-up level: at that coarse scale the drawn emoji passes for a face (the reference keeps it,
        # to find a face right in front of the camera on the original)
        self.probe.closeup_level = False
        self.tracker = FaceTracker(hold_frames=TRUTH_HOLD_FRAMES)

    def describe(self) -> str:
        return (f"{self.backend}: original faces at score >= {self.truth_threshold:g}, leaks at score >= "
                f"{self.probe_threshold:g} overlapping one (IoU >= {self.overlap:g}) or with >= "
                f"{100 * self.partial_share:g}% of the face unchanged")

    def reset(self) -> None:
        self.tracker.reset()

    def measure(self, original: np.ndarray, anonymized: np.ndarray, covered: list[tuple[int, np.ndarray]],
                dt: float = 1.0, truth: np.ndarray | None = None) -> FrameLeaks:
        """Check one frame. ``covered``: (pipeline track id, box) of every face the pipeline covered.
        ``truth``: the reference boxes of this original frame when already known (they depend
        only on the original, so benchmarks reuse them across configurations)."""
        if truth is None:
            truth = self.reference.detect(original).boxes
        tracks, _ = self.tracker.update(truth, dt)
        ids = [t.track_id for t in tracks]
        n = len(truth)
        probe = self.probe.detect(anonymized).boxes if n else np.zeros((0, 4), np.float32)
        found = [False] * n
        if n and len(probe):
            found = [bool(v) for v in (box_iou(truth, probe) >= self.overlap).any(axis=1)]
        shares = [visible_share(original, anonymized, truth[i]) for i in range(n)]
        leaked = [f or v >= self.partial_share for f, v in zip(found, shares, strict=True)]
        visible = [v for v, leak in zip(shares, leaked, strict=True) if leak]
        covered_by: list[int | None] = [None] * n
        if n and covered:
            iou = box_iou(truth, np.array([b for _, b in covered], np.float32).reshape(-1, 4))
            for i in range(n):
                j = int(np.argmax(iou[i]))
                if iou[i, j] >= self.overlap:
                    covered_by[i] = covered[j][0]
        return FrameLeaks(truth, ids, leaked, covered_by, probe, visible)


@dataclass
class LeakSummary:
    """Leaks over a sequence of frames."""

    face_frames: int = 0  # original faces over all frames
    leaked: int = 0  # of those, still found after anonymization or partly visible
    leaked_hidden: int = 0  # of the leaked, those with (almost) nothing of the face visible
    frames_with_leak: int = 0
    longest_run: dict[int, int] = field(default_factory=dict)  # reference track id -> longest run of leaked frames
    frames_per_person: dict[int, int] = field(default_factory=dict)  # reference track id -> frames present
    id_switches: int = 0  # changes of the pipeline track id covering one person
    uncovered: int = 0  # original faces that no pipeline face (detected or held) overlapped

    @property
    def rate(self) -> float:
        return self.leaked / self.face_frames if self.face_frames else 0.0

    @property
    def max_run(self) -> int:
        return max(self.longest_run.values(), default=0)


def summarize_leaks(frames: list[FrameLeaks]) -> LeakSummary:
    """Count leaked face-frames, the longest run of consecutive leaked frames per person, and
    the track id switches of the pipeline on each person."""
    s = LeakSummary()
    run: dict[int, int] = {}
    last_frame: dict[int, int] = {}
    last_cover: dict[int, int] = {}
    for k, f in enumerate(frames):
        s.face_frames += len(f.truth)
        s.leaked += f.count
        s.leaked_hidden += f.hidden
        s.frames_with_leak += f.count > 0
        for tid, leaked, cover in zip(f.truth_ids, f.leaked, f.covered_by, strict=True):
            s.frames_per_person[tid] = s.frames_per_person.get(tid, 0) + 1
            s.longest_run.setdefault(tid, 0)
            if leaked:
                run[tid] = run.get(tid, 0) + 1 if last_frame.get(tid) == k - 1 else 1
                last_frame[tid] = k
                s.longest_run[tid] = max(s.longest_run[tid], run[tid])
            if cover is None:
                s.uncovered += 1
                continue
            if tid in last_cover and last_cover[tid] != cover:
                s.id_switches += 1
            last_cover[tid] = cover
    return s
