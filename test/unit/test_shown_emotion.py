"""The emotion a track shows (FaceTracker.smooth): a filter in seconds that one outlier classification cannot
flip, that follows a sustained change within its promised time, and that ignores unreliable frames."""

from __future__ import annotations

import numpy as np
import pytest

from emoji_privacy import UNKNOWN_INDEX
from emoji_privacy.config import TrackingConfig
from emoji_privacy.tracking import FaceTracker, Track, follow_time_s

HAPPY, SAD, FEAR = 3, 4, 2
CFG = TrackingConfig()  # the shipped setting: the promises below are about it


def shipped() -> FaceTracker:
    return FaceTracker(smoothing_s=CFG.smoothing_s, switch_margin=CFG.switch_margin,
                       switch_dwell_s=CFG.switch_dwell_s)


def leaning(index: int, share: float = 0.55, seed: int = 0) -> np.ndarray:
    """A calibrated-looking probability vector: ``share`` on ``index``, the rest spread at random."""
    rest = np.random.default_rng(seed).dirichlet(np.ones(6)) * (1 - share)
    return np.insert(rest, index, share).astype(np.float32)


def run(tracker: FaceTracker, track: Track, probs: list[np.ndarray], start: float, step: float) -> list[int]:
    """``probs`` classified every ``step`` seconds from ``start``: the emotion shown after each."""
    return [tracker.smooth(track, p, start + k * step) for k, p in enumerate(probs)]


def settled(tracker: FaceTracker, index: int, step: float = 2 / 30, seconds: float = 2.0) -> tuple[Track, float]:
    """A track that has shown ``index`` for ``seconds`` (noisy classifications every ``step`` s); and the time."""
    track = Track(1, np.zeros(4, np.float32))
    n = round(seconds / step)
    shown = run(tracker, track, [leaning(index, seed=k) for k in range(n)], 0.0, step)
    assert shown[-1] == index
    return track, n * step


@pytest.mark.parametrize("outlier", [FEAR, SAD])
@pytest.mark.parametrize("gap", [2 / 30, 5.0])
def test_one_outlier_classification_never_flips_the_emoji(outlier: int, gap: float) -> None:
    """A steady face classified once as something else, with full confidence, keeps its emoji; also when that
    outlier comes after a long gap (its old evidence has faded) and outweighs everything before it."""
    tracker = shipped()
    track, now = settled(tracker, HAPPY)
    now += gap - 2 / 30
    shown = [tracker.smooth(track, np.eye(7, dtype=np.float32)[outlier], now)]
    shown += run(tracker, track, [leaning(HAPPY, seed=100 + k) for k in range(30)], now + 2 / 30, 2 / 30)
    assert shown == [HAPPY] * len(shown)


@pytest.mark.parametrize("step", [1 / 30, 2 / 30, 1 / 10])
def test_a_sustained_change_is_shown_within_the_promised_time(step: float) -> None:
    """From a steady happy face to a steady sad one: the emoji turns sad no later than follow_time_s after the
    first sad classification, whatever the classification rate (the filter works in seconds), and not at once."""
    tracker = shipped()
    track, start = settled(tracker, HAPPY, step)
    times = start + step * np.arange(60)
    shown = run(tracker, track, [np.eye(7, dtype=np.float32)[SAD]] * 60, start, step)
    assert SAD in shown
    took = times[shown.index(SAD)] - start
    promise = follow_time_s(CFG.smoothing_s, CFG.switch_margin, CFG.switch_dwell_s, step)
    assert CFG.switch_dwell_s <= took <= promise
    assert shown[shown.index(SAD):] == [SAD] * (60 - shown.index(SAD)), "once turned it stays"


def test_promised_time_is_short() -> None:
    """The shipped setting follows a change within 0.7 s at the default refresh (every 2 frames at 30 fps)."""
    assert follow_time_s(CFG.smoothing_s, CFG.switch_margin, CFG.switch_dwell_s, 2 / 30) <= 0.7


def test_unreliable_classifications_keep_the_shown_emotion() -> None:
    tracker = shipped()
    track, now = settled(tracker, HAPPY)
    before = track.probs.copy()
    sad = np.eye(7, dtype=np.float32)[SAD]
    assert [tracker.smooth(track, sad, now + k / 15, reliable=False) for k in range(45)] == [HAPPY] * 45
    np.testing.assert_array_equal(track.probs, before)
    fresh = Track(2, np.zeros(4, np.float32))
    assert [tracker.smooth(fresh, sad, k / 15, reliable=False) for k in range(10)] == [UNKNOWN_INDEX] * 10
    assert fresh.probs is None


def test_a_new_track_shows_unknown_until_its_first_emotion_has_led_for_the_dwell() -> None:
    tracker = shipped()
    track = Track(1, np.zeros(4, np.float32))
    step = 2 / 30
    shown = run(tracker, track, [leaning(FEAR, seed=k) for k in range(20)], 0.0, step)
    first = shown.index(FEAR)
    assert shown[:first] == [UNKNOWN_INDEX] * first and first * step >= CFG.switch_dwell_s
    assert first * step <= CFG.switch_dwell_s + step


def test_no_filter_follows_every_classification() -> None:
    """All three 0 (tracking/enabled false): each classification's argmax, at once."""
    tracker = FaceTracker(smoothing_s=0.0, switch_margin=0.0, switch_dwell_s=0.0)
    track = Track(1, np.zeros(4, np.float32))
    happy, sad = np.eye(7)[HAPPY], np.eye(7)[SAD]
    assert run(tracker, track, [happy, 0.45 * happy + 0.55 * sad, happy], 0.0, 1 / 30) == [HAPPY, SAD, HAPPY]
