"""How steady the shown emoji is, and whether it still says what the face shows: the two figures of
``bench_emotion_timeline`` (issue 34, part 4).

- **Shown changes per track-minute**: times a track's shown emotion changes from one emotion to another
  (the first emotion of a track, after UNKNOWN, is its first reading, not a change), over the track's
  lifetime in minutes (first to last frame, held frames included).
- **Agreement with the 1 s majority**: the share of a track's detected frames, with a known emotion shown,
  whose shown emotion is the argmax of the *sum* of the track's published per-frame calibrated probabilities
  over the frames of a 1 s window whose reading the reliability rule accepted (``reading`` "read": a profile, a
  face in near darkness or an uncertain reading is not a vote; a window without one has no majority).
  The window is *trailing* (``t - 1 s < stamp <= t``): it holds what a live
  system can know at frame t, so a causal filter is judged against the best a causal filter could say, not
  against the future. ``centred=True`` (``t - 0.5 s < stamp <= t + 0.5 s``) is there for comparison. Frames
  between two refreshes publish the probabilities of the last refresh, so they count as often as they show.

Plain arithmetic over ``FrameRecord``s (no models).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import UNKNOWN_INDEX
from ..emotion.reliability import READ
from .records import FrameRecord

WINDOW_S = 1.0
"""The majority window, seconds."""


@dataclass
class Steadiness:
    """One track's (or, summed, several tracks') steadiness figures."""

    minutes: float = 0.0  # track lifetime
    changes: int = 0  # shown emotion changed from one known emotion to another
    frames: int = 0  # detected frames judged (a known emotion shown, a probability in the window)
    agree: int = 0  # of those, frames whose shown emotion is the window's majority
    unknown: int = 0  # detected frames with a probability in the window but UNKNOWN shown (a track settling)
    majority_changes: int = 0  # changes of the window majority itself (what a perfect follower would show)

    @property
    def changes_per_minute(self) -> float:
        return self.changes / self.minutes if self.minutes > 0 else 0.0

    @property
    def majority_changes_per_minute(self) -> float:
        return self.majority_changes / self.minutes if self.minutes > 0 else 0.0

    @property
    def agreement(self) -> float:
        return self.agree / self.frames if self.frames else float("nan")

    @property
    def unknown_share(self) -> float:
        return self.unknown / (self.frames + self.unknown) if self.frames + self.unknown else 0.0

    def __add__(self, other: Steadiness) -> Steadiness:
        return Steadiness(self.minutes + other.minutes, self.changes + other.changes, self.frames + other.frames,
                          self.agree + other.agree, self.unknown + other.unknown,
                          self.majority_changes + other.majority_changes)


def _changes(seq: list[int]) -> int:
    """Changes between consecutive known values (UNKNOWN -> known is a first reading)."""
    known = [v for v in seq if v != UNKNOWN_INDEX]
    return sum(a != b for a, b in zip(known, known[1:], strict=False))


def track_steadiness(records: list[FrameRecord], window_s: float = WINDOW_S,
                     centred: bool = False) -> dict[int, Steadiness]:
    """Per track id, its steadiness over ``records`` (one stream, frames in order)."""
    span: dict[int, list[float]] = {}
    seen: dict[int, list[tuple[float, np.ndarray, int]]] = {}
    for r in records:
        for f in r.faces:
            span.setdefault(f.track_id, [r.stamp, r.stamp])[1] = r.stamp
            if not f.held:
                votes = f.probabilities if f.reading == READ else np.zeros(0, np.float32)
                seen.setdefault(f.track_id, []).append((r.stamp, np.asarray(votes, np.float64), f.emotion_index))
    lo, hi = (window_s / 2, window_s / 2) if centred else (window_s, 0.0)
    out: dict[int, Steadiness] = {}
    for tid, (first, last) in span.items():
        frames = seen.get(tid, [])
        stamps = np.array([s for s, _, _ in frames])
        probs = [p for _, p, _ in frames]
        majority: list[int] = []
        st = Steadiness(minutes=(last - first) / 60, changes=_changes([e for _, _, e in frames]))
        for stamp, _, shown in frames:
            inside = [probs[j] for j in np.flatnonzero((stamps > stamp - lo) & (stamps <= stamp + hi)) if len(probs[j])]
            best = int(np.argmax(np.sum(inside, 0))) if inside else UNKNOWN_INDEX
            majority.append(best)
            if best == UNKNOWN_INDEX:
                continue
            st.frames += shown != UNKNOWN_INDEX
            st.agree += shown == best
            st.unknown += shown == UNKNOWN_INDEX
        st.majority_changes = _changes(majority)
        out[tid] = st
    return out


def total(stats: dict[int, Steadiness] | list[Steadiness]) -> Steadiness:
    """The figures of several tracks together: changes over their summed minutes, agreement over all frames."""
    values = list(stats.values()) if isinstance(stats, dict) else stats
    return sum(values, Steadiness())
