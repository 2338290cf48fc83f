"""Leak counting on synthetic frame sequences: runs per person, id switches, hidden faces."""

import numpy as np

from emoji_privacy.emoji import EmojiRenderer
from emoji_privacy.evaluation.leaks import FrameLeaks, independent_backend, summarize_leaks, visible_share

BOX = np.array([[100, 60, 200, 180]], np.float32)


def frame(leaked: list[bool], ids: list[int], covered: list, visible: list[float] | None = None) -> FrameLeaks:
    n = len(ids)
    boxes = np.repeat(BOX, n, axis=0)
    return FrameLeaks(boxes, ids, leaked, covered, np.zeros((0, 4), np.float32),
                      visible if visible is not None else [0.5] * sum(leaked))


def test_longest_run_per_person_and_id_switches() -> None:
    seq = [
        frame([False, True], [1, 2], [7, None]),
        frame([True, True], [1, 2], [7, 9]),
        frame([True, False], [1, 2], [8, 9]),  # person 1 now covered by track 8: one switch
        frame([False, True], [1, 2], [8, 9]),
        frame([True, True], [1, 2], [8, 9], visible=[0.0, 0.3]),
        frame([True], [1], [8], visible=[0.01]),
        frame([True], [1], [8]),
    ]
    s = summarize_leaks(seq)
    assert s.face_frames == 12 and s.leaked == 9 and s.frames_with_leak == 7
    assert s.longest_run == {1: 3, 2: 2}, "person 1: frames 4-6; person 2: frames 0-1"
    assert s.frames_per_person == {1: 7, 2: 5}
    assert s.id_switches == 1 and s.uncovered == 1
    assert s.leaked_hidden == 2 and s.max_run == 3
    assert abs(s.rate - 9 / 12) < 1e-9


def test_a_gap_breaks_a_run() -> None:
    s = summarize_leaks([frame([True], [1], [3]), frame([], [], []), frame([True], [1], [3])])
    assert s.longest_run == {1: 1}


def test_visible_share(astronaut) -> None:
    box = np.array([175, 50, 275, 190], np.float32)
    assert visible_share(astronaut, astronaut, box) == 1.0
    covered = astronaut.copy()
    EmojiRenderer().cover(covered, (225, 120), 90, 0.0, 3)
    assert visible_share(astronaut, covered, box) < 0.02
    half = astronaut.copy()
    half[:, 225:] = 0
    assert 0.3 < visible_share(astronaut, half, box) < 0.7


def test_the_independent_detector_is_the_other_backend() -> None:
    assert independent_backend("yunet") == "centerface"
    assert independent_backend("centerface") == "yunet"
