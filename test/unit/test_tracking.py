"""Tracker on synthetic box sequences with exact expected ids and hold behaviour."""

import numpy as np
import pytest

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
    matched, held = tr.update(boxes())
    assert ids(held) == [1] and abs(held[0].box[0] - 160) < 1e-3
    assert tr.update(boxes())[1] == [], "dropped after hold_frames misses"
    assert ids(tr.update(boxes(300))[0]) == [2], "a new face gets a new id"


def test_no_hold_when_hold_frames_is_zero() -> None:
    tr = FaceTracker(hold_frames=0)
    tr.update(boxes(100))
    assert tr.update(boxes()) == ([], [])
    assert ids(tr.update(boxes(100))[0]) == [2]


def test_reacquired_after_a_miss_keeps_id_and_velocity() -> None:
    tr = FaceTracker(hold_frames=3)
    for t in range(4):
        tr.update(boxes(100 + 10 * t))
    tr.update(boxes())  # missed at x = 140
    matched, held = tr.update(boxes(150))
    assert ids(matched) == [1] and held == []
    assert abs(matched[0].velocity[0] - 10) < 1e-3, "velocity measured over the missed frame"


def test_crossing_faces_keep_their_ids() -> None:
    tr = FaceTracker(hold_frames=2)
    for t in range(12):
        a = boxes(100 + 20 * t, y=100)  # face 1 moving right
        b = boxes(340 - 20 * t, y=120)  # face 2 moving left, crossing face 1 at t = 6
        dets, want = (np.concatenate([a, b]), [1, 2]) if t % 2 == 0 else (np.concatenate([b, a]), [2, 1])
        matched, _ = tr.update(dets)
        assert ids(matched) == want, f"frame {t}"


def test_crossing_with_a_missed_face_at_the_crossing() -> None:
    """Face 2 (smaller, in front) is missed for two frames right where the faces overlap; both
    keep their ids, and face 2 is held meanwhile."""
    tr = FaceTracker(hold_frames=3)
    for t in range(14):
        a = boxes(100 + 15 * t, y=100, size=60)
        b = boxes(310 - 15 * t, y=110, size=45)
        if t in (7, 8):
            matched, held = tr.update(a)
            assert ids(matched) == [1] and ids(held) == [2], f"frame {t}"
        else:
            matched, held = tr.update(np.concatenate([a, b] if t == 0 else [b, a]))
            assert ids(matched) == ([1, 2] if t == 0 else [2, 1]) and held == [], f"frame {t}"


def test_optimal_assignment_where_greedy_would_start_a_new_track() -> None:
    """Detection A overlaps both tracks, B only track 1: the best overall match gives A to track 2
    and B to track 1 (greedy would give A to track 1 and open a new track for B)."""
    tr = FaceTracker(hold_frames=2)
    tr.update(np.array([[0, 0, 100, 100], [40, 0, 140, 100]], np.float32))
    matched, _ = tr.update(np.array([[15, 0, 115, 100], [-30, 0, 70, 100]], np.float32))
    assert ids(matched) == [2, 1]


def test_face_doubling_in_size_keeps_its_id() -> None:
    """IoU 0.25 (below the threshold) but the same centre: still the same face."""
    tr = FaceTracker(hold_frames=2, iou_threshold=0.3)
    tr.update(np.array([[100, 100, 150, 150]], np.float32))
    assert ids(tr.update(np.array([[75, 75, 175, 175]], np.float32))[0]) == [1]


def test_dropped_frames_predicted_over_real_time() -> None:
    """Frames dropped upstream: with dt the prediction jumps as far as the face moved."""
    tr = FaceTracker(hold_frames=2)
    for t in range(4):
        assert ids(tr.update(boxes(100 + 30 * t, size=60), dt=1.0)[0]) == [1]  # 30 px per frame
    matched, _ = tr.update(boxes(100 + 30 * 6, size=60), dt=3.0)  # frames 4 and 5 never arrived
    assert ids(matched) == [1]
    plain = FaceTracker(hold_frames=2)
    for t in range(4):
        plain.update(boxes(100 + 30 * t, size=60))
    assert ids(plain.update(boxes(100 + 30 * 6, size=60))[0]) == [2], "without dt the jump looks like a new face"


def test_leaving_and_reentering_gets_new_id() -> None:
    tr = FaceTracker(hold_frames=1)
    tr.update(boxes(100))
    tr.update(boxes())
    tr.update(boxes())
    assert ids(tr.update(boxes(100))[0]) == [2]


def test_leaving_and_reentering_within_the_hold_keeps_id() -> None:
    """A face walks out of the left edge (boxes clipped, then gone) and comes back while held."""
    tr = FaceTracker(hold_frames=4)
    for x in (40, 20, 0):
        assert ids(tr.update(boxes(x))[0]) == [1]
    assert ids(tr.update(np.array([[0, 100, 30, 150]], np.float32))[0]) == [1]
    for _ in range(3):
        matched, held = tr.update(boxes())
        assert matched == [] and ids(held) == [1]
    assert ids(tr.update(boxes(0))[0]) == [1]


def test_ids_are_never_reused_after_reset() -> None:
    tr = FaceTracker()
    tr.update(boxes(100, 300))
    tr.reset()
    assert ids(tr.update(boxes(100))[0]) == [3]


@pytest.mark.parametrize("stamps, same", [((10.0, 10.04), True), ((10.0, 4.0), False)])
def test_pipeline_forgets_tracks_when_time_goes_back(pipeline, astronaut, stamps, same) -> None:
    """A bag played again (stamps jump back) starts fresh tracks; forward time keeps them."""
    pipeline.reset()
    first = pipeline.process(astronaut, stamps[0])[1][0].track_id
    second = pipeline.process(astronaut, stamps[1])[1][0].track_id
    assert (first == second) is same


def test_one_face_or_one_track_assignment_equals_the_hungarian_method() -> None:
    from scipy.optimize import linear_sum_assignment

    from emoji_privacy.tracking import _min_cost_pairs

    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 5), (4, 1), (3, 3), (2, 5)]:
        for _ in range(20):
            cost = rng.uniform(0, 1, shape)
            cost[rng.uniform(size=shape) < 0.3] = 1e6
            got, want = _min_cost_pairs(cost), linear_sum_assignment(cost)
            assert cost[got].sum() == cost[want].sum() and len(got[0]) == len(want[0]) == min(shape)


def test_a_dark_pass_track_is_listed_after_k_of_n_frames() -> None:
    """Dark-pass detections (normal False) confirm a track only once it was detected in confirm_hits of its last
    confirm_window frames; a missed frame counts against it."""
    tr = FaceTracker(hold_frames=8, confirm_hits=3, confirm_window=5)
    dark = np.array([False])
    states = []
    for present in (True, False, True, True):
        matched, held = tr.update(boxes(100) if present else boxes(), normal=dark if present else None)
        states.append((matched or held)[0].confirmed)
    assert states == [False, False, False, True]


def test_a_normal_detection_confirms_at_once_and_stays_confirmed() -> None:
    tr = FaceTracker(confirm_hits=3, confirm_window=5)
    assert tr.update(boxes(100), normal=np.array([True]))[0][0].confirmed
    for _ in range(6):
        assert tr.update(boxes(100), normal=np.array([False]))[0][0].confirmed


def test_a_one_frame_ghost_is_never_confirmed() -> None:
    """A dark-pass box that appears in one frame of every few (dark background flickering at the threshold) stays
    unconfirmed: never 3 detections within 5 frames."""
    tr = FaceTracker(hold_frames=8, confirm_hits=3, confirm_window=5)
    for t in range(20):
        present = t % 3 == 0
        matched, held = tr.update(boxes(300) if present else boxes(), normal=np.array([False]) if present else None)
        assert not any(x.confirmed for x in matched + held)


def test_confirm_hits_one_lists_every_track_at_once() -> None:
    tr = FaceTracker(confirm_hits=1, confirm_window=1)
    assert tr.update(boxes(100), normal=np.array([False]))[0][0].confirmed


def test_a_face_hidden_beyond_the_hold_keeps_its_id_but_is_not_covered_meanwhile() -> None:
    """Someone walks in front of a face for 20 frames (hold 8): it is held 8 frames, then not covered (the hold
    alone decides covering), and when it reappears near where it was it takes its old id back."""
    tr = FaceTracker(hold_frames=8, reid_frames=90)
    for _ in range(5):
        tr.update(boxes(100, 300))
    held_frames = 0
    for _ in range(20):
        matched, held = tr.update(boxes(300))
        held_frames += any(t.track_id == 1 for t in held)
    assert held_frames == 8
    matched, _ = tr.update(boxes(104, 300))
    assert ids(matched) == [1, 2]


def test_without_reid_a_face_back_after_the_hold_gets_a_new_id() -> None:
    tr = FaceTracker(hold_frames=8, reid_frames=0)
    for _ in range(5):
        tr.update(boxes(100))
    for _ in range(20):
        tr.update(boxes())
    assert ids(tr.update(boxes(104))[0]) == [2]


def test_a_partly_hidden_face_growing_back_keeps_its_track() -> None:
    """A face's box shrinks to its visible part (a third of it) while someone passes in front, then grows back:
    the centre step, measured in the larger box's size, continues the track instead of starting another."""
    tr = FaceTracker(hold_frames=8)
    tr.update(np.array([[444, 97, 468, 123]], np.float32))
    assert ids(tr.update(np.array([[435, 97, 491, 151]], np.float32))[0]) == [1]
