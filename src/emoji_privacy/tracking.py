"""Per-face tracks: stable ids, a constant-velocity prediction, and a hold that keeps a
face covered for a few frames when the detector blinks.

Detections are assigned to tracks by an optimal (Hungarian) assignment on the IoU between each
detection and each track's *predicted* box (or its last detected box, whichever fits better: a
face that walks out of the picture and comes back where it left is the same face). A detection
that overlaps no track enough may still continue a track whose centre is close (a face that
grows quickly as it approaches), so such faces keep their id instead of being counted as new.

A track is *confirmed* (listed: in FaceEmotion, the faces JSON, the website) once a detection of it came from
the detector at the full score threshold (on the image as it is, or on the brightened copy of a dark one: a face as
sure as a normal one), or once it was detected in
``confirm_hits`` of its last ``confirm_window`` frames. Until then it is covered like any face but not listed:
the dark pass (a brightened copy at half the threshold) also accepts dark background, and such ghosts rarely
last. Once confirmed, a track stays confirmed.

Time is measured in whatever unit the caller passes as ``dt`` to :meth:`FaceTracker.update`
(the pipeline passes seconds from the image stamps, so a dropped frame doubles the predicted
step; tests pass the default 1 = one frame). The tracker adds well under a millisecond per frame.

The emoji a track shows is decided by :meth:`FaceTracker.smooth`, a filter in seconds (docs/shown_emotion.md):

- an exponentially time-weighted mean of the track's calibrated probabilities, time constant ``smoothing_s``:
  each classification weighs 1, earlier ones ``exp(-age / smoothing_s)``, and the mean is normalised by the
  summed weights, so the first reading of a track (or the first after a long gap) is not diluted by a prior;
- a switch rule: the shown emotion gives way only once another leads that mean by at least ``switch_margin``
  for ``switch_dwell_s`` seconds without interruption (two classifications at least that far apart), and a new
  track shows UNKNOWN until its first leader has held that long. One outlier classification can therefore
  never change the emoji; a sustained change shows within :func:`follow_time_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import UNKNOWN_INDEX
from .detection import box_iou
from .emotion.reliability import SMALL

NO_MATCH = 1e6
"""Assignment cost of a pair that must not be matched."""


def _min_cost_pairs(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cheapest one-to-one assignment. With one face or one track (most frames) that is
    the cheapest entry; only several of each need the Hungarian method (scipy, imported then: a few hundred
    milliseconds, which a service pays at start-up with ``Anonymizer.warm_up``)."""
    if cost.shape[0] == 1 or cost.shape[1] == 1:
        k = int(np.argmin(cost))
        return np.array([k // cost.shape[1]]), np.array([k % cost.shape[1]])
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)


@dataclass
class Track:
    """One face followed over frames."""

    track_id: int
    box: np.ndarray  # (4,) current estimate: the last detection, or the prediction while missed
    seen: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # (4,) the last detected box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box change per unit of time
    hits: int = 1  # frames with a detection
    misses: int = 0  # consecutive frames without one
    unseen: float = 0.0  # time since the last detection
    probs: np.ndarray | None = None  # smoothed emotion probabilities (the time-weighted mean of FaceTracker.smooth)
    weight: float = 0.0  # the summed, decayed weights behind ``probs`` (each classification weighs 1 when new)
    heard_at: float = 0.0  # stream time (s) of the last classification folded into ``probs``
    beaten_since: float | None = None  # stream time since which another emotion leads the shown one (None: it leads)
    shown: int = -1  # emotion index currently shown; -1 = UNKNOWN_INDEX: never classified, or not yet settled
    raw: np.ndarray | None = None  # the last classified (unsmoothed) probabilities
    cover: tuple[float, float, float, float] | None = None  # last emoji drawn: (dx, dy) from box centre, radius, roll
    landmarks: np.ndarray | None = None  # (68, 2) of the last frame, to carry between landmark refreshes
    keypoints: np.ndarray | None = None  # (5, 2) detector keypoints of the last frame
    pose: tuple[float, float] = (float("nan"), float("nan"))  # yaw, pitch of the last landmark refresh
    sketched: bool = True  # the last landmarks were sketched from keypoints (not the landmark model's)
    phase: int = -1  # its turn in the pipeline's landmark refreshes (-1: not given yet)
    turn: float = float("nan")  # head_turn of the last landmark refresh (NaN: sketched landmarks)
    reading: str = SMALL  # the reliability rule's verdict on its latest reading (emotion.reliability)
    score: float = 0.0  # detector score of its last detection
    recent: list[bool] = field(default_factory=list)  # detected or not in each of its last frames, newest last
    confirmed: bool = False  # listed from now on (FaceTracker: a normal-pass detection, or k of the last n frames)

    def predicted_box(self, dt: float = 1.0) -> np.ndarray:
        return self.box + self.velocity * np.float32(dt)

    def center(self) -> np.ndarray:
        return box_centers(self.box[None])[0]


def box_sides(boxes: np.ndarray) -> np.ndarray:
    """(N,4) boxes -> (N,) longer sides (at least 1e-6)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1e-6)


def center_distance(boxes: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(N, M) distances between the centres of ``boxes`` and ``refs``, in face sizes: the longer side of the
    larger box of each pair. A partly hidden face's box shrinks to its visible part (a third of the face, its
    centre moved) and grows back when it reappears: measured in the small box's size, that step looked like
    another face and started a new track."""
    size = np.maximum(box_sides(boxes)[:, None], box_sides(refs)[None])
    return np.linalg.norm(box_centers(boxes)[:, None] - box_centers(refs)[None], axis=2) / size


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """(N,4) boxes -> (N,2) centres."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)


class FaceTracker:
    """Assigns detections to tracks; reports which tracks are held (missed but still covered).

    ``max_center_shift``: a detection whose centre is within this many track sizes (the larger
    side of the predicted box) of a predicted centre may continue that track even without IoU.
    ``smoothing_s``, ``switch_margin``, ``switch_dwell_s``: the emotion filter of :meth:`smooth` (seconds,
    a probability lead, seconds); all 0 show each classification's argmax at once.
    ``confirm_hits``, ``confirm_window``: a track is confirmed (listed) when detected in this many of its last
    this many frames, or at once by a normal-pass detection (``confirm_hits`` 1: every track at once).
    ``reid_frames``: a track (detected twice or more) missed for longer than ``hold_frames`` is no longer covered but
    remembered (``lost``) up to this many missed frames; a new detection near where it was last seen (IoU, or its
    centre within ``reid_shift`` face sizes, at half to twice its size) takes its id back instead of starting a new
    one (a face hidden for a while by someone walking in front). Covering is unchanged: only ``hold_frames`` decides
    it.
    """

    def __init__(self, iou_threshold: float = 0.3, hold_frames: int = 8, smoothing_s: float = 0.3,
                 switch_margin: float = 0.1, switch_dwell_s: float = 0.3, max_center_shift: float = 0.5,
                 confirm_hits: int = 3, confirm_window: int = 5, reid_frames: int = 0, reid_shift: float = 1.0) -> None:
        self.iou_threshold = iou_threshold
        self.hold_frames = hold_frames
        self.smoothing_s = smoothing_s
        self.switch_margin = switch_margin
        self.switch_dwell_s = switch_dwell_s
        self.max_center_shift = max_center_shift
        self.confirm_hits = confirm_hits
        self.confirm_window = max(confirm_window, confirm_hits)
        self.reid_frames = reid_frames
        self.reid_shift = reid_shift
        self.tracks: list[Track] = []
        self.lost: list[Track] = []  # tracks missed beyond hold_frames: not covered, kept for re-identification
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks; ids keep counting up so an id is never reused."""
        self.tracks = []
        self.lost = []

    def _costs(self, boxes: np.ndarray, dt: float) -> np.ndarray:
        """Cost of each (detection, track) pair: 1 - IoU for overlapping pairs, then 1 + the
        relative centre distance for close ones, NO_MATCH for the rest. Each track is compared
        by its predicted box and by its last detected box; the better fit counts."""
        iou = np.zeros((len(boxes), len(self.tracks)), np.float32)
        dist = np.full(iou.shape, np.inf, np.float32)
        for ref in (np.array([t.predicted_box(dt) for t in self.tracks], np.float32),
                    np.array([t.seen for t in self.tracks], np.float32)):
            iou, dist = np.maximum(iou, box_iou(boxes, ref)), np.minimum(dist, center_distance(boxes, ref))
        cost = np.full(iou.shape, NO_MATCH)
        close = dist <= self.max_center_shift
        cost[close] = 1.0 + dist[close]
        overlap = iou >= self.iou_threshold
        cost[overlap] = 1.0 - iou[overlap]
        return cost

    def update(self, boxes: np.ndarray, dt: float = 1.0, scores: np.ndarray | None = None,
               normal: np.ndarray | None = None) -> tuple[list[Track], list[Track]]:
        """Match ``boxes`` (N,4), seen ``dt`` after the previous update, to tracks. ``scores`` and ``normal``
        (Detections.scores, .normal; None: 0 and all normal) are kept on the tracks and confirm them.

        Returns (the track of each box, in box order; tracks held this frame: missed for at most
        ``hold_frames`` frames, their box moved to the predicted position).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.zeros(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
        normal = np.ones(len(boxes), bool) if normal is None else np.asarray(normal, bool)
        assigned: list[Track | None] = [None] * len(boxes)
        if len(boxes) and self.tracks:
            cost = self._costs(boxes, dt)
            for d, t in zip(*_min_cost_pairs(cost), strict=True):
                if cost[d, t] < NO_MATCH:
                    assigned[d] = self.tracks[t]
        matched = {id(a) for a in assigned if a is not None}
        held: list[Track] = []
        survivors: list[Track] = []
        just_lost: list[Track] = []
        for t in self.tracks:
            if id(t) in matched:
                survivors.append(t)
                continue
            t.misses += 1
            t.unseen += dt
            self._remember(t, False)
            t.box = t.predicted_box(dt)
            if t.misses <= self.hold_frames:
                held.append(t)
                survivors.append(t)
            elif t.hits >= 2 and self.reid_frames > self.hold_frames:
                just_lost.append(t)
        self._reidentify(boxes, assigned, survivors, just_lost, dt)
        for d, box in enumerate(boxes):
            t = assigned[d]
            if t is None:
                t = Track(self._next_id, box.copy(), box.copy())
                self._next_id += 1
                survivors.append(t)
                assigned[d] = t
                self._seen(t, float(scores[d]), bool(normal[d]))
                continue
            # Velocity from the last detected box, averaged with the previous estimate to damp
            # detector jitter.
            measured = (box - t.seen) / np.float32(max(t.unseen + dt, 1e-6))
            t.velocity = measured if t.hits == 1 else 0.5 * t.velocity + 0.5 * measured
            t.box, t.seen = box.copy(), box.copy()
            t.hits += 1
            t.misses = 0
            t.unseen = 0.0
            self._seen(t, float(scores[d]), bool(normal[d]))
        self.tracks = survivors
        return [a for a in assigned if a is not None], held

    def _reidentify(self, boxes: np.ndarray, assigned: list[Track | None], survivors: list[Track],
                    just_lost: list[Track], dt: float) -> None:
        """Give the detections no live track took to ``lost`` tracks last seen where they are (in place:
        ``assigned``, ``survivors``); the lost tracks not seen for ``reid_frames`` are forgotten."""
        for t in self.lost:
            t.misses += 1
            t.unseen += dt
        self.lost = [t for t in self.lost if t.misses <= self.reid_frames] + just_lost
        free = [d for d in range(len(boxes)) if assigned[d] is None]
        if not free or not self.lost:
            return
        new, seen = boxes[free], np.array([t.seen for t in self.lost], np.float32)
        ratio = box_sides(new)[:, None] / np.maximum(box_sides(seen)[None], 1e-6)
        dist, iou = center_distance(new, seen), box_iou(new, seen)
        cost = np.full(iou.shape, NO_MATCH)
        close = (dist <= self.reid_shift) & (ratio > 0.5) & (ratio < 2.0)  # a partly hidden face: a smaller box
        cost[close] = 1.0 + dist[close]
        overlap = iou >= self.iou_threshold
        cost[overlap] = 1.0 - iou[overlap]
        for i, j in zip(*_min_cost_pairs(cost), strict=True):
            if cost[i, j] < NO_MATCH:
                t = self.lost[j]
                # its motion and landmarks are stale: predicted from here on, landmarks found afresh
                t.velocity = np.zeros(4, np.float32)
                t.landmarks = t.keypoints = None
                assigned[free[i]] = t
                survivors.append(t)
        taken = {id(t) for t in survivors}
        self.lost = [t for t in self.lost if id(t) not in taken]

    def _remember(self, track: Track, detected: bool) -> None:
        track.recent = [*track.recent, detected][-self.confirm_window:]

    def _seen(self, track: Track, score: float, normal: bool) -> None:
        """A detection of ``track`` this frame: its score, and whether it confirms the track (``confirmed``)."""
        track.score = score
        self._remember(track, True)
        track.confirmed = confirmed(track, normal, self.confirm_hits)

    def smooth(self, track: Track, probs: np.ndarray, now: float, reliable: bool = True, settle: bool = True) -> int:
        """Fold one classification (``probs``, calibrated, made at stream time ``now`` seconds) into the track's
        time-weighted mean and return the emotion to show (see the module's docstring for why this rule).

        ``reliable=False`` (a frame too dark, a profile, a low confidence): the classification is ignored, so the
        track keeps the emotion it shows (UNKNOWN_INDEX if it never had a reliable one). ``settle=False`` (a still
        image: no frame follows to settle on): a track's first emotion is shown at once."""
        if not reliable:
            return track.shown
        p = np.asarray(probs, np.float32)
        if track.probs is None:
            track.probs, track.weight = p.copy(), 1.0
        else:
            age = max(now - track.heard_at, 0.0)
            kept = track.weight * (float(np.exp(-age / self.smoothing_s)) if self.smoothing_s > 0 else 0.0)
            track.probs = (track.probs * np.float32(kept) + p) / np.float32(kept + 1.0)
            track.weight = kept + 1.0
        track.heard_at = now
        best = int(np.argmax(track.probs))
        shown = track.shown
        if shown == UNKNOWN_INDEX and not settle:
            track.shown = best
            return best
        if best == shown or (shown != UNKNOWN_INDEX and track.probs[best] < track.probs[shown] + self.switch_margin):
            track.beaten_since = None
            return shown
        if track.beaten_since is None:
            track.beaten_since = now
        if now - track.beaten_since >= self.switch_dwell_s:
            track.shown, track.beaten_since = best, None
        return track.shown


def follow_time_s(smoothing_s: float, switch_margin: float, switch_dwell_s: float, refresh_s: float) -> float:
    """The longest a track takes to show a sustained change of emotion, from a steady one-hot emotion to another
    classified every ``refresh_s`` seconds: the time-weighted mean leads by ``switch_margin`` after
    ``smoothing_s * ln(2 / (1 - switch_margin))`` (one classification later at worst), then the new emotion must
    lead for ``switch_dwell_s`` (one classification later at worst)."""
    return smoothing_s * float(np.log(2.0 / (1.0 - switch_margin))) + switch_dwell_s + 2 * refresh_s


def confirmed(track: Track, normal: bool, hits: int) -> bool:
    """The listing rule: whether ``track``, detected this frame (``normal``: by the detector's normal pass), is
    confirmed: it already was, the detection is a normal one, or it was detected in ``hits`` of its ``recent``
    frames. The one place that decides which faces are listed (pipeline.listed_faces reads its result)."""
    return track.confirmed or normal or sum(track.recent) >= hits
