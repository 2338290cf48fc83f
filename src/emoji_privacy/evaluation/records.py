"""What an evaluation records per frame, and the statistics drawn from it: faces, tracks and
their lifetimes, emotion changes, processing time or live latency, dropped frames.

Plain data and arithmetic (no ROS, no models): `evaluate_bag` fills it from a bag, `report`
writes it out, and the benchmarks read the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import emotion_name
from ..pipeline import FaceResult, HeldFace
from .leaks import FrameLeaks, LeakSummary, summarize_leaks


@dataclass
class FaceObservation:
    """A face of one anonymized frame, as the pipeline returned it or the listener published it."""

    track_id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    probabilities: np.ndarray  # (7,) this frame's raw probabilities; empty for a held face
    emotion_index: int  # the emoji shown (smoothed per track)
    confidence: float
    held: bool = False  # missed by the detector, covered at the track's predicted position
    confirmed: bool = True  # listed (pipeline.listed_faces); False: covered but its track is not confirmed yet
    reading: str = "read"  # the reliability rule's verdict on these probabilities (emotion.reliability)

    @staticmethod
    def detected(f: FaceResult) -> FaceObservation:
        return FaceObservation(f.track_id, f.box.copy(), f.score, f.probabilities.copy(), f.emotion_index,
                               f.confidence, confirmed=f.confirmed, reading=f.reading)

    @staticmethod
    def held_face(h: HeldFace) -> FaceObservation:
        return FaceObservation(h.track_id, h.box.copy(), 0.0, np.zeros(0, np.float32), h.emotion_index, 0.0,
                               held=True, confirmed=h.confirmed)


@dataclass
class FrameRecord:
    """One evaluated frame."""

    index: int
    stamp: float  # header stamp, seconds
    faces: list[FaceObservation]
    process_ms: float = math.nan  # offline: time of Anonymizer.process
    latency_ms: float = math.nan  # live: output receipt minus input receipt (or minus the stamp)
    leaks: FrameLeaks | None = None

    @property
    def detected(self) -> list[FaceObservation]:
        return [f for f in self.faces if not f.held]


@dataclass
class TrackSummary:
    """One pipeline track over the evaluated frames."""

    track_id: int
    first_index: int
    last_index: int
    first_stamp: float
    last_stamp: float
    detected: int = 0  # frames with a detection
    held: int = 0  # frames covered by the hold
    shown: Counter = field(default_factory=Counter)  # emoji shown -> frames
    shown_changes: int = 0  # times the emoji changed (after smoothing)
    raw_changes: int = 0  # times the per-frame argmax changed (what an unsmoothed emoji would do)

    @property
    def lifetime_s(self) -> float:
        return self.last_stamp - self.first_stamp

    @property
    def frames(self) -> int:
        return self.last_index - self.first_index + 1

    @property
    def main_emotion(self) -> str:
        return emotion_name(self.shown.most_common(1)[0][0]) if self.shown else "-"


def summarize_tracks(records: list[FrameRecord]) -> list[TrackSummary]:
    """Tracks in order of first appearance, with lifetimes and emotion changes."""
    tracks: dict[int, TrackSummary] = {}
    last_shown: dict[int, int] = {}
    last_raw: dict[int, int] = {}
    for r in records:
        for f in r.faces:
            t = tracks.get(f.track_id)
            if t is None:
                t = tracks[f.track_id] = TrackSummary(f.track_id, r.index, r.index, r.stamp, r.stamp)
            t.last_index, t.last_stamp = r.index, r.stamp
            if f.held:
                t.held += 1
                continue
            t.detected += 1
            t.shown[f.emotion_index] += 1
            if f.track_id in last_shown and last_shown[f.track_id] != f.emotion_index:
                t.shown_changes += 1
            last_shown[f.track_id] = f.emotion_index
            if len(f.probabilities):
                raw = int(np.argmax(f.probabilities))
                if f.track_id in last_raw and last_raw[f.track_id] != raw:
                    t.raw_changes += 1
                last_raw[f.track_id] = raw
    return list(tracks.values())


def frame_interval(stamps: list[float]) -> float:
    """Median time between consecutive stamps (the source's frame period); 1/30 s if unknown."""
    d = np.diff(np.asarray(stamps, np.float64))
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1 / 30


def rate(times: list[float]) -> float:
    """Events per second over the span of ``times`` (0 when fewer than two). The times need not be in
    order: an output whose faces message was never recorded is evaluated after the others."""
    if len(times) < 2 or max(times) <= min(times):
        return 0.0
    return (len(times) - 1) / (max(times) - min(times))


@dataclass
class Evaluation:
    """Everything measured on one bag."""

    bag: str
    mode: str  # "offline": the pipeline ran here; "listener": the bag holds the listener's output
    image_topic: str  # offline: the input topic; listener: the anonymized image topic
    records: list[FrameRecord]
    width: int = 0
    height: int = 0
    input_topic: str | None = None  # listener mode: the recorded input frames, if any
    input_frames: int = 0  # frames offered to the pipeline or the listener
    input_times: list[float] = field(default_factory=list)  # listener mode: receipt times of inputs
    output_times: list[float] = field(default_factory=list)  # listener mode: receipt times of outputs
    dropped_at_start: int = 0  # listener mode: inputs played before its first output
    output_first: int = 0  # listener mode: outputs the recorder received before their input (latency counted 0)
    undecodable: int = 0
    first_error: str = ""
    wall_s: float = 0.0  # time the evaluation took
    settings: dict[str, str] = field(default_factory=dict)  # what was evaluated with what (for the report)
    diagnostics: dict[str, str] = field(default_factory=dict)  # listener mode: its last /diagnostics values
    leak_detector: str = ""  # "" when the leak metric did not run

    @property
    def frames(self) -> int:
        return len(self.records)

    @property
    def dropped(self) -> int:
        return max(self.input_frames - self.frames - self.undecodable, 0)

    @property
    def source_fps(self) -> float:
        return 1.0 / frame_interval([r.stamp for r in self.records])

    @property
    def duration_s(self) -> float:
        return self.records[-1].stamp - self.records[0].stamp if self.records else 0.0

    def tracks(self) -> list[TrackSummary]:
        return summarize_tracks(self.records)

    def leak_summary(self) -> LeakSummary | None:
        return summarize_leaks([r.leaks for r in self.records if r.leaks is not None]) if self.leak_detector else None

    def process_ms(self) -> np.ndarray:
        v = np.array([r.process_ms for r in self.records], np.float64)
        return v[~np.isnan(v)]

    def latency_ms(self) -> np.ndarray:
        v = np.array([r.latency_ms for r in self.records], np.float64)
        return v[~np.isnan(v)]

    def pipeline_fps(self) -> float:
        """Offline: frames per second of Anonymizer.process alone."""
        ms = self.process_ms()
        return 1000.0 / float(ms.mean()) if len(ms) else 0.0

    def evaluation_fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def output_fps(self) -> float:
        """Listener mode: frames per second the listener published (from receipt times)."""
        return rate(self.output_times)

    def input_fps(self) -> float:
        return rate(self.input_times)

    def faces_per_frame(self) -> float:
        return sum(len(r.detected) for r in self.records) / max(self.frames, 1)

    def held_face_frames(self) -> int:
        return sum(len(r.faces) - len(r.detected) for r in self.records)
