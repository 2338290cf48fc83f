"""The anonymizer: detection -> tracking -> landmarks -> emotion -> emoji, on one frame.

`Anonymizer.process(frame) -> (anonymized_frame, faces)`. It never returns the input
unmodified when a face was found or is being held; when a stage fails it raises, and the
caller (the ROS node) publishes a masked frame or nothing instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from . import EMOTIONS, UNKNOWN_INDEX, emotion_name
from .config import PipelineConfig
from .detection import Detections, FaceDetector, detector_from_config
from .emoji import EmojiRenderer
from .emotion.classifiers import EmotionClassifier, load_emotion_classifier
from .emotion.reliability import READ, SMALL, ReadingRule, crop_contrast
from .landmarks.align import LandmarkDetector, align_face, load_landmark_detector
from .landmarks.geometry import apply_affine, covering_circle, face_region, head_roll, head_turn, similarity_transform
from .landmarks.head_pose import HeadPoseEstimator, camera_matrix_from
from .tracking import FaceTracker

HOLD_GROWTH = 0.1
"""Relative growth of a held face's cover per missed frame."""

NOMINAL_FRAME_S = 1 / 30
"""Time step assumed between frames that come without a stamp."""

MAX_STEP_S = 1.0
"""Longest time step a prediction extrapolates over (a stalled stream does not fling covers away)."""

FOLLOW_WAIT_S = 60.0
"""Longest ``detect`` waits for the track boxes of the frame it follows (``follow_lag`` frames back) to be published
by ``finish``; past it the frame fails (a frame detected and never finished: a caller's bug, not a slow machine)."""

KEPT_TRACK_BOXES = 8
"""Frames of published track boxes kept for ``detect`` (it follows at most a few frames back)."""


@dataclass
class FaceResult:
    """One detected face of one frame, as published in FaceEmotion."""

    track_id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    probabilities: np.ndarray  # (7,) this frame's raw probabilities
    emotion_index: int  # shown emotion (FaceTracker.smooth; UNKNOWN_INDEX: not classified or not settled yet)
    confidence: float  # smoothed probability of the shown emotion
    roll_deg: float  # eye line's angle on screen, counter-clockwise positive (geometry.head_roll; turns the emoji)
    landmarks: np.ndarray  # (68, 2)
    center: tuple[float, float]
    radius: float
    # head pose from solvePnP of the landmarks (landmarks/head_pose.py has the convention): yaw > 0 the person
    # turns to their left (nose to the image right), pitch > 0 looks up; 0, 0 = facing the camera. NaN: unknown
    yaw_deg: float = float("nan")
    pitch_deg: float = float("nan")
    # whether this face's latest reading was reliable (emotion.reliability: READ) or why not (SMALL, TURNED, FAINT,
    # UNCERTAIN); the shown emotion is then its track's last reliable one (unknown until there is one)
    reading: str = READ
    confirmed: bool = True  # its track is confirmed (tracking.confirmed): listed; False: covered but not listed

    @property
    def emotion(self) -> str:
        return emotion_name(self.emotion_index)


@dataclass
class HeldFace:
    """A face the detector missed this frame, covered at its track's predicted position."""

    track_id: int
    box: np.ndarray  # (4,) predicted box
    center: tuple[float, float]
    radius: float  # grown with every missed frame
    misses: int  # consecutive frames without a detection
    emotion_index: int  # the last emoji shown for it (UNKNOWN_INDEX: never classified or not settled)
    confirmed: bool = True  # its track is confirmed: listed (in the faces JSON); False: covered, not listed


class Listable(Protocol):
    confirmed: bool


F = TypeVar("F", bound=Listable)


def listed_faces(faces: Iterable[F]) -> list[F]:
    """The faces to list (FaceEmotion, faces JSON, website, evaluate_bag): those of confirmed tracks (FaceResult,
    HeldFace, or evaluation records of them).

    Every face ``process`` returns or holds is covered; a face seen only by the detector's dark pass (which also
    accepts dark background) is listed once its track is confirmed (tracking.confirmed, tracking.confirm_hits).
    The one filter every consumer applies, so they all list the same faces."""
    return [f for f in faces if f.confirmed]


@dataclass
class DetectedFrame:
    """A frame after the detection stage, waiting for the rest of the pipeline."""

    frame: np.ndarray
    detections: Detections
    detect_ms: float
    index: int = 0  # frames given to ``detect`` since the last reset before this one (failed ones too)


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


KEYPOINT_LANDMARKS = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))
"""The landmarks at the detector's 5 keypoints: the eye centres, the nose tip and the mouth corners."""


def keypoint_points(landmarks: np.ndarray) -> np.ndarray:
    """(5, 2): where a 68-point set has the detector's 5 keypoints."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 2)
    return np.array([lm[list(ix)].mean(0) for ix in KEYPOINT_LANDMARKS])


def sketch_landmarks(mean_shape: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """68 landmarks of a face too small for the landmark model: the frontal mean face placed on its 5 detector
    keypoints by a similarity. Enough for its cover (which also holds the detector's box); no expression."""
    m = similarity_transform(keypoint_points(mean_shape), keypoints)
    return apply_affine(m, mean_shape).astype(np.float32)


def carry_landmarks(landmarks: np.ndarray, before: np.ndarray, now: np.ndarray) -> np.ndarray:
    """A face's landmarks moved with it from one frame to the next: the similarity that takes its detector
    keypoints ``before`` onto ``now`` (translation, scale and roll; an expression change waits for a refresh)."""
    return apply_affine(similarity_transform(before, now), landmarks).astype(np.float32)


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
        self.detector = detector or detector_from_config(cfg.detector)
        lm_opts: dict[str, object] = {}
        if cfg.landmarks.backend == "facemesh":
            lm_opts["num_threads"] = cfg.landmarks.threads
        if cfg.landmarks.model_path:
            lm_opts["model_path"] = cfg.landmarks.model_path
        self.landmarker = landmarker or load_landmark_detector(cfg.landmarks.backend, **lm_opts)
        self.classifier = classifier or load_emotion_classifier(
            cfg.emotion.backend, model_path=cfg.emotion.model_path or None, threads=cfg.emotion.threads,
            engine=cfg.emotion.engine)
        self.renderer = renderer or EmojiRenderer(png_dir=cfg.emoji.png_dir or None, style=cfg.emoji.style)
        self.reading_rule = ReadingRule(**cfg.emotion.reading_rule())
        self.head_pose = HeadPoseEstimator()  # the 3D mean face (face3d_68.npz): missing -> ModelFileError now
        self.mean_shape = self.head_pose.model[:, :2].astype(np.float32)  # its frontal view (x right, y down)
        self._frames_in = 0  # frames given to detect since the last reset: the landmark refreshes' clock
        self._tracks_born = 0  # tracks started since the last reset: each one's refresh phase
        self.camera_matrix: np.ndarray | None = None  # None: the nominal camera (head_pose.nominal_camera_matrix)
        t = cfg.tracking
        self.tracker = self._new_tracker()
        self.times = StageTimes()
        self.held: list[HeldFace] = []
        self._last_stamp: float | None = None
        self._clock = 0.0  # seconds of stream since the last reset: the time the emotion filter runs on
        # A stream spreads the detector's small-face level over this many frames (a new small face is found
        # within them); a small face already tracked is searched around its track in every frame.
        self.small_face_period = max(1, t.hold_frames) if t.enabled else 1
        self._stream_index = 0  # frames detected since the last reset (0: the next one is searched whole)
        self._seeds: list[np.ndarray] = []
        self._seed_lock = threading.Lock()
        # the track boxes ``finish`` left after each recent frame (by its index), for ``detect`` to follow: a frame
        # is detected with the boxes of a fixed earlier frame, never with whatever the other stage has reached
        self._track_boxes: dict[int, np.ndarray] = {}
        self._unfinished: set[int] = set()  # indices whose detection failed: no ``finish`` will publish them
        self._boxes_cond = threading.Condition()

    def sharing_models(self) -> Anonymizer:
        """Another Anonymizer over these loaded models and this config, with its own tracking (one per stream:
        a webcam connection, a clip, a bag topic), so a second stream costs no model load."""
        return Anonymizer(self.config, detector=self.detector, landmarker=self.landmarker,
                          classifier=self.classifier, renderer=self.renderer)

    def _new_tracker(self) -> FaceTracker:
        t = self.config.tracking
        # Tracking off: every frame on its own (no hold, no emotion smoothing); ids are still given.
        on = t.enabled
        return FaceTracker(t.iou_threshold, t.hold_frames if on else 0, smoothing_s=t.smoothing_s if on else 0.0,
                           switch_margin=t.switch_margin if on else 0.0, switch_dwell_s=t.switch_dwell_s if on else 0.0,
                           confirm_hits=t.confirm_hits, confirm_window=t.confirm_window,
                           reid_frames=t.reid_frames if on else 0)

    def warm_up(self, width: int = 640, height: int = 480) -> int:
        """Run every stage on two frames of the demo scene (three faces) at the stream's frame size, then forget
        them as if they never came (tracks, ids, stage times); returns how many faces its second frame found.

        The first calls of each model (memory arenas, kernels for a new input shape) and the tracker's first
        assignment of several faces cost a few hundred milliseconds: a service's start-up should pay them, not
        its first camera frames or its first visitor. A model that fails on its first real input fails here,
        before any frame is taken."""
        from .sources import DemoScene

        scene = DemoScene(width, height)
        faces: list[FaceResult] = []
        for i in range(2):
            _, faces = self.process(scene.frame(i, 150), i * NOMINAL_FRAME_S)
        self.reset(new_stream=True)
        self.times = StageTimes()
        return len(faces)

    def set_camera_matrix(self, k: object | None) -> None:
        """The camera's intrinsics for the head pose: 3x3 or the 9 values of CameraInfo.K; None (or an all-zero
        K, an uncalibrated camera) returns to the nominal pinhole camera (focal length = image width)."""
        self.camera_matrix = camera_matrix_from(k)

    def reset(self, new_stream: bool = False) -> None:
        """Forget tracks (e.g. when the input stream jumps back in time). ``new_stream``: an unrelated stream
        starts (a file): track ids start from 1 again, as in a fresh Anonymizer, so a file's results do not depend
        on what this Anonymizer saw before it; otherwise ids keep counting up (a live stream never reuses one)."""
        if new_stream:
            self.tracker = self._new_tracker()
        self.tracker.reset()
        self._last_stamp = None
        self._clock = 0.0
        self.held = []
        self._stream_index = 0
        self._frames_in = 0
        self._tracks_born = 0
        with self._seed_lock:
            self._seeds = []
        with self._boxes_cond:
            self._track_boxes, self._unfinished = {}, set()

    def _time_step(self, stamp: float | None) -> float:
        """Seconds since the previous frame, from the stamps when there are any. A stamp earlier
        than the previous one (a bag played again, a camera restarted) forgets all tracks."""
        if stamp is None:
            return NOMINAL_FRAME_S
        last, self._last_stamp = self._last_stamp, stamp
        if last is None:
            return NOMINAL_FRAME_S
        if stamp < last:
            self.tracker.reset()
            return NOMINAL_FRAME_S
        return min(stamp - last, MAX_STEP_S) or NOMINAL_FRAME_S

    def add_seeds(self, boxes: np.ndarray) -> None:
        """Small faces found by a background search (streaming.SmallFaceScanner) on a recent frame: the next
        ``detect`` searches around each, and from then on tracking keeps them followed."""
        with self._seed_lock:
            self._seeds.extend(np.asarray(boxes, np.float32).reshape(-1, 4))

    def detect(self, frame: np.ndarray, small_in_background: bool = False, follow_lag: int = 1) -> DetectedFrame:
        """The first stage alone: faces of one BGR frame. It never changes the tracks, so frame t+1 can be
        detected while ``finish`` works on frame t (see streaming.PipelinedAnonymizer).

        The small faces already tracked are searched around (``follow``) where the tracks were after frame
        t - ``follow_lag`` (the boxes ``finish`` published for that frame; waited for when it has not yet): 1, the
        previous frame, when the stages run one after the other (``process``); 2 when they overlap, so that what
        is searched never depends on how far the other stage has got (the result is the same run after run,
        whatever the machine's load). ``small_in_background``: the small-face level is left to a background
        search that seeds it (live streams; the seeds arrive when that search finds them)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"process() wants an (H, W, 3) uint8 BGR frame, got {frame.shape} {frame.dtype}")
        if not 1 <= follow_lag < KEPT_TRACK_BOXES:
            raise ValueError(f"follow_lag must be 1 to {KEPT_TRACK_BOXES - 1} frames, got {follow_lag}")
        t0 = time.perf_counter()
        index, self._frames_in = self._frames_in, self._frames_in + 1  # counted even when detection fails
        try:
            k, n = self._stream_index, self.small_face_period
            if k == 0 or n == 1:  # the first frame after a reset (and every still image) is searched whole
                dets = self.detector.detect(frame)
            else:
                limit = self.detector.follow_width(frame.shape)
                boxes = self._tracks_after(index - follow_lag)
                follow = list(boxes[boxes[:, 2] - boxes[:, 0] < limit])
                with self._seed_lock:
                    follow += self._seeds
                    self._seeds = []
                follow_boxes = np.array(follow, np.float32).reshape(-1, 4)
                if small_in_background:
                    dets = self.detector.detect(frame, (k, n), follow_boxes, levels="regular")
                else:
                    dets = self.detector.detect(frame, (k, n), follow_boxes)
        except BaseException:
            with self._boxes_cond:  # no finish comes for this frame: a later one follows the frame before it
                self._unfinished.add(index)
                self._boxes_cond.notify_all()
            raise
        self._stream_index += 1
        return DetectedFrame(frame, dets, (time.perf_counter() - t0) * 1e3, index)

    def _tracks_after(self, index: int) -> np.ndarray:
        """(N, 4): the track boxes ``finish`` left after frame ``index`` (of this stream's ``detect`` clock; a
        frame whose detection failed had no finish: the frame before it counts), waited for if not yet there."""
        end = time.monotonic() + FOLLOW_WAIT_S
        with self._boxes_cond:
            while True:
                i = index
                while i in self._unfinished:
                    i -= 1
                if i < 0:
                    return np.zeros((0, 4), np.float32)
                if i in self._track_boxes:
                    return self._track_boxes[i]
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"frame {i} was detected but not finished within {FOLLOW_WAIT_S:g} s: "
                                       "the detection of a later frame follows its tracks")
                self._boxes_cond.wait(left)

    def _publish_tracks(self, index: int) -> None:
        """The track boxes as this frame's ``finish`` left them, for the detection of a later frame."""
        boxes = np.array([tr.box for tr in self.tracker.tracks], np.float32).reshape(-1, 4)
        with self._boxes_cond:
            self._track_boxes[index] = boxes
            for old in [i for i in self._track_boxes if i <= index - KEPT_TRACK_BOXES]:
                del self._track_boxes[old]
            self._unfinished = {i for i in self._unfinished if i > index - KEPT_TRACK_BOXES}
            self._boxes_cond.notify_all()

    def process(self, frame: np.ndarray, stamp: float | None = None,
                still: bool = False) -> tuple[np.ndarray, list[FaceResult]]:
        """Anonymize one BGR frame; returns a new frame and the faces found in it.

        ``stamp`` (seconds, e.g. the image header's) lets the tracker predict over the real time
        between frames, so frames dropped upstream do not break tracks. The faces held this frame
        (missed by the detector but still covered) are in ``self.held`` afterwards. ``still``: a picture on
        its own (call ``reset`` before it), whose faces show their first emotion at once; in a stream a new
        face shows unknown until its emotion has led for ``tracking.switch_dwell_s`` (FaceTracker.smooth).
        """
        return self.finish(self.detect(frame), stamp, still)

    def finish(self, detected: DetectedFrame, stamp: float | None = None,
               still: bool = False) -> tuple[np.ndarray, list[FaceResult]]:
        """Everything after detection, in frame order: tracking, landmarks, emotion and the covers. The track
        boxes it leaves are then published for the detection of a later frame (``detect``'s ``follow_lag``),
        also when it fails."""
        try:
            return self._finish(detected, stamp, still)
        finally:
            self._publish_tracks(detected.index)

    def _finish(self, detected: DetectedFrame, stamp: float | None,
                still: bool) -> tuple[np.ndarray, list[FaceResult]]:
        frame, dets = detected.frame, detected.detections
        times = StageTimes(detect=detected.detect_ms)
        dt = self._time_step(stamp)
        self._clock += dt
        t1 = time.perf_counter()
        n = len(dets)
        tracks, held = self.tracker.update(dets.boxes, dt, dets.scores, dets.normal)
        lms, modelled, sketched, fresh = self._landmarks(frame, dets, tracks, detected.index)
        t2 = time.perf_counter()
        size = self.classifier.input_size
        probs = np.zeros((n, len(EMOTIONS)), np.float32)
        # a face's emotion is classified at its refresh (bench/results/emotion_refresh.md: how often the shown
        # emotion agrees with every frame's); in between it keeps its last probabilities
        contrast = np.zeros(n, np.float32)
        if fresh:
            crops = np.stack([align_face(frame, lms[i], size) for i in fresh])
            probs[fresh] = self.classifier.predict(crops)
            contrast[fresh] = crop_contrast(crops)
        for i in range(n):
            if i in fresh:
                tracks[i].raw = probs[i].copy()
            elif tracks[i].raw is not None:
                probs[i] = tracks[i].raw
        t3 = time.perf_counter()

        out = frame.copy()
        faces: list[FaceResult] = []
        margin = self.config.emoji.margin
        size_wh = (frame.shape[1], frame.shape[0])
        for i in range(n):
            box, lm, track = dets.boxes[i], lms[i], tracks[i]
            region = np.concatenate([face_region(lm), ellipse_points(box)], 0)
            (cx, cy), r = covering_circle(region)
            roll = head_roll(lm)
            if i in modelled:
                pose = self.head_pose.estimate(lm, size_wh, self.camera_matrix)
                track.pose, track.turn = (pose.yaw_deg, pose.pitch_deg), head_turn(lm)
            elif i in sketched:
                track.pose, track.turn = (float("nan"), float("nan")), float("nan")
            if i in fresh:  # a reading the rule rejects leaves the track's emotion as it was (unknown if none yet)
                track.reading = self.reading_rule.judge(probs[i], float(contrast[i]), track.turn)
                shown = self.tracker.smooth(track, probs[i], self._clock, reliable=track.reading == READ,
                                            settle=not still)
            else:  # between refreshes, or too small to read: the emotion shown so far (unknown until one settles)
                shown = track.shown
                if box[2] - box[0] < self.config.emotion.min_face:
                    track.reading = SMALL
            known = shown != UNKNOWN_INDEX
            bx, by = track.center()
            track.cover = (cx - bx, cy - by, r * margin, roll)
            faces.append(FaceResult(track.track_id, box.copy(), float(dets.scores[i]),
                                    probs[i].copy() if track.raw is not None else np.zeros(0, np.float32), shown,
                                    float(track.probs[shown]) if known and track.probs is not None else 0.0, roll,
                                    lm, (cx, cy), r * margin, *track.pose, track.reading, track.confirmed))
        # Held tracks first so that real detections are drawn on top of stale predictions.
        self.held = []
        for track in held:
            if track.cover is None:
                continue
            # The last emoji, moved with the track's predicted box (constant velocity) and grown
            # while the face is unseen: the prediction gets less certain.
            dx, dy, r, roll = track.cover
            bx, by = track.center()
            center = (float(bx + dx), float(by + dy))
            grown = r * (1.0 + HOLD_GROWTH * track.misses)
            self.renderer.cover(out, center, grown, roll, track.shown)
            self.held.append(HeldFace(track.track_id, track.box.copy(), center, grown, track.misses, track.shown,
                                      track.confirmed))
        for f in faces:
            self.renderer.cover(out, f.center, f.radius, f.roll_deg, f.emotion_index)
        t4 = time.perf_counter()
        times.landmarks = (t2 - t1) * 1e3
        times.emotion, times.render = (t3 - t2) * 1e3, (t4 - t3) * 1e3
        times.total = times.detect + (t4 - t1) * 1e3
        self.times = times
        return out, faces

    def _landmarks(self, frame: np.ndarray, dets: Detections, tracks: list,
                   index: int) -> tuple[np.ndarray, list[int], list[int], list[int]]:
        """The 68 landmarks of each detection at the level of detail its size and its track call for, and which
        faces to classify now: (landmarks (N, 68, 2), by the landmark model, sketched, to classify).

        A face is due for a refresh when its track is new and then every ``emotion.refresh_frames`` frames (of the
        stream's clock ``index``, so a frame that failed does not shift it), the tracks taking turns so every
        frame pays about the same. By width:

        - ``landmarks.min_face`` and wider: the landmark model when due (or when it just grew past that width;
          at most ``landmarks.per_frame`` faces a frame), in between its last landmarks carried with its keypoints
          (``carry_landmarks``); classified when due;
        - narrower: sketched from the detector's keypoints (``sketch_landmarks``: a few percent of the model's
          cost, and at this size the model's detail is not in the pixels), classified from that alignment
          when due, if at least ``emotion.min_face`` wide: narrower still, its emotion is unknown.
        The cover always holds the detector's own box as well, so a carried or sketched shape never shrinks it.
        """
        n = len(dets)
        lms = np.zeros((n, 68, 2), np.float32)
        if not n:
            return lms, [], [], []
        widths = dets.boxes[:, 2] - dets.boxes[:, 0]
        every = max(1, self.config.emotion.refresh_frames)
        for track in tracks:
            if track.phase < 0:  # the tracks born in one frame (a scene's start) take turns
                track.phase, self._tracks_born = self._tracks_born % every, self._tracks_born + 1
        due = [tracks[i].raw is None or (index + tracks[i].phase) % every == 0 for i in range(n)]
        wide = widths >= self.config.landmarks.min_face
        asking = [i for i in range(n) if wide[i] and (due[i] or tracks[i].sketched or tracks[i].landmarks is None)]
        # at most landmarks.per_frame model calls: faces without model landmarks yet first, then the largest; the
        # others are carried (or, never modelled, sketched) until a later frame, so a frame full of new faces (a
        # scene cut) costs no more than any other
        asking.sort(key=lambda i: (not (tracks[i].sketched or tracks[i].landmarks is None), -widths[i]))
        modelled = asking[:self.config.landmarks.per_frame] if self.config.landmarks.per_frame else asking
        sketched = [i for i in range(n) if i not in modelled and (not wide[i] or tracks[i].sketched
                                                                   or tracks[i].landmarks is None)]
        if modelled:
            keypoints = with_track_roll(dets.keypoints[modelled],
                                        [tracks[i].cover[3] if tracks[i].cover else None for i in modelled])
            lms[modelled] = self.landmarker.detect(frame, dets.boxes[modelled], keypoints)
        for i in range(n):
            track = tracks[i]
            if i in sketched:
                lms[i] = sketch_landmarks(self.mean_shape, dets.keypoints[i])
            elif i not in modelled:
                lms[i] = carry_landmarks(track.landmarks, track.keypoints, dets.keypoints[i])
            track.landmarks, track.keypoints, track.sketched = lms[i], dets.keypoints[i].copy(), i in sketched
        readable = widths >= self.config.emotion.min_face
        fresh = [i for i in range(n) if readable[i] and (i in modelled or due[i])]
        return lms, modelled, sketched, fresh
