"""Tracker on synthetic box sequences with exact expected ids and hold behaviour."""

import numpy as np

from emoji_privacy.tracking import FaceTracker


def boxes(*xs: float, y: float = 100, size: float = 50) -> np.ndarray:
    return np.array([[x, y, x + size, y + size] for x in xs], np.float32).reshape(-1, 4)


def ids(tracks) -> list[int]:
    return [t.track_id for t in tracks]


def test_stable_ids_while_moving() -> None:
    tr = FaceTracker(hold_frames=2)
    seen = [ids(tr.update(boxes(100 + 5 * t, 400 - 5 * t))[0]) for t in range(10)]
    assert all(s == [1, 2] for s in seen)


def test_missed_frame_is_held_at_predicted_position_then_dropped() -> None:
    tr = FaceTracker(hold_frames=2)
    for t in range(5):
        tr.update(boxes(100 + 10 * t))
    matched, held = tr.update(boxes())
    assert matched == [] and ids(held) == [1]
    assert abs(held[0].box[0] - 150) < 1e-3, "constant-velocity prediction"
    assert ids(tr.update(boxes())[1]) == [1]
    assert tr.update(boxes())[1] == [], "dropped after hold_frames misses"
    assert ids(tr.update(boxes(300))[0]) == [2], "a new face gets a new id"


def test_reacquired_after_a_miss_keeps_id() -> None:
    tr = FaceTracker(hold_frames=3)
    for t in range(4):
        tr.update(boxes(100 + 10 * t))
    tr.update(boxes())
    assert ids(tr.update(boxes(150))[0]) == [1]


def test_crossing_faces_keep_their_ids() -> None:
    tr = FaceTracker(hold_frames=2)
    for t in range(12):
        a = boxes(100 + 20 * t, y=100)  # face 1 moving right
        b = boxes(340 - 20 * t, y=120)  # face 2 moving left, crossing face 1 at t = 6
        dets, want = (np.concatenate([a, b]), [1, 2]) if t % 2 == 0 else (np.concatenate([b, a]), [2, 1])
        matched, _ = tr.update(dets)
        assert ids(matched) == want, f"frame {t}"


def test_leaving_and_reentering_gets_new_id() -> None:
    tr = FaceTracker(hold_frames=1)
    tr.update(boxes(100))
    tr.update(boxes())
    tr.update(boxes())
    assert ids(tr.update(boxes(100))[0]) == [2]


def test_smoothing_with_hysteresis() -> None:
    tr = FaceTracker(smoothing=0.5, hysteresis=0.1)
    t = tr.update(boxes(0))[0][0]
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    assert tr.smooth(t, happy) == 3
    assert tr.smooth(t, 0.45 * happy + 0.55 * sad) == 3, "a small swing does not flip the emoji"
    assert tr.smooth(t, sad) == 4
