"""Synthetic test scenes from real faces: deterministic, boxes where and as large as asked, dark frames
dark and noisy, and the uncovered-face check failing and passing where it should."""

from __future__ import annotations

import math

import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy.emoji import EmojiRenderer
from emoji_privacy.evaluation import synthetic
from emoji_privacy.evaluation.video_to_bag import PERTURBATIONS, low_light_perturbation


@pytest.fixture(scope="module")
def faces() -> list[synthetic.Face]:
    root = shared_path("data", "landmarks", "helen_test").parent
    return synthetic.load_faces(("helen_test", "afw"), limit=12, max_width=160, root=root)


def ellipse_pixels(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixels (K, 3) inside the central ellipse of ``box`` (the part visible_share checks)."""
    h, w = frame.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = 0.4 * (box[2] - box[0]), 0.4 * (box[3] - box[1])
    ys, xs = np.mgrid[0:h, 0:w]
    return frame[((xs + 0.5 - cx) / ax) ** 2 + ((ys + 0.5 - cy) / ay) ** 2 <= 1]


def check_boxes(boxes: np.ndarray, width: int, height: int, sizes: tuple[float, float]) -> None:
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    widths = boxes[:, 2] - boxes[:, 0]
    assert widths.min() >= sizes[0] - 0.5 and widths.max() <= sizes[1] + 0.5, widths
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    for i in range(len(boxes)):
        for j in range(i):
            a, b = boxes[i], boxes[j]
            assert a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3], "faces overlap"


def test_face_box_includes_the_forehead() -> None:
    lm = np.array([[10, 40], [50, 40], [30, 100]], np.float32)
    box = synthetic.face_box(lm)
    np.testing.assert_allclose(box, [10, 40 - synthetic.FOREHEAD_SHARE * 60, 50, 100])


def test_small_faces_are_deterministic_and_as_asked(faces) -> None:
    a, boxes = synthetic.small_faces_frame(800, 600, faces, (20, 60), rng=5, count=15)
    b, boxes_b = synthetic.small_faces_frame(800, 600, faces, (20, 60), rng=np.random.default_rng(5), count=15)
    c, _ = synthetic.small_faces_frame(800, 600, faces, (20, 60), rng=6, count=15)
    assert a.shape == (600, 800, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(boxes, boxes_b)
    assert not np.array_equal(a, c)
    assert len(boxes) == 15
    check_boxes(boxes, 800, 600, (20, 60))
    assert a.std() > 15, "the background is textured, not flat"


def test_dark_frames_have_dim_noisy_faces_and_uneven_light(faces) -> None:
    for width, height in ((640, 480), (1280, 720)):
        frame, boxes = synthetic.dark_scene_frame(width, height, faces, rng=3, count=(3, 6))
        clean, clean_boxes = synthetic.dark_scene_frame(width, height, faces, rng=3, count=(3, 6),
                                                        camera=synthetic.LowLightCamera(noise=False))
        assert np.array_equal(boxes, clean_boxes), "the noise does not move the faces"
        check_boxes(boxes, width, height, (40, 160))
        levels = np.concatenate([ellipse_pixels(frame, b).mean(axis=1) for b in boxes])
        lo, hi = synthetic.FACE_LEVELS
        assert lo <= np.median(levels) <= hi
        assert ((levels >= lo - 3) & (levels <= hi + 5)).mean() > 0.8, np.percentile(levels, [5, 50, 95])
        noise = np.concatenate([ellipse_pixels(frame, b).astype(float) - ellipse_pixels(clean, b) for b in boxes])
        assert 1.5 < noise.std() < 6, noise.std()
        assert np.percentile(frame, 99.9) > 2 * hi, "a spotlight somewhere: the frame is not uniformly dark"


def test_dark_sequence_drifts_slowly_with_fresh_noise(faces) -> None:
    seq = list(synthetic.dark_scene_sequence(640, 480, faces, 6, rng=9, count=3, drift=20, period=12))
    again = list(synthetic.dark_scene_sequence(640, 480, faces, 6, rng=9, count=3, drift=20, period=12))
    assert all(np.array_equal(f, g) and np.array_equal(b, c) for (f, b), (g, c) in zip(seq, again, strict=True))
    first = seq[0][1]
    for _, boxes in seq[1:]:
        check_boxes(boxes, 640, 480, (40, 160))
        step = np.abs(boxes - first).max()
        assert step <= 2 * 20 + 1
    assert np.abs(seq[3][1] - first).max() > 2, "the faces move"
    assert not np.array_equal(seq[0][0], seq[1][0])


def test_uncovered_faces_both_ways(faces) -> None:
    frame, boxes = synthetic.small_faces_frame(640, 480, faces, (30, 60), rng=2, count=8)
    unc, share = synthetic.uncovered_faces(frame, frame, boxes)
    assert unc.all() and np.allclose(share, 1.0)
    renderer = EmojiRenderer()
    covered = frame.copy()
    for b in boxes[::2]:  # every other face
        center = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        renderer.cover(covered, center, math.hypot(b[2] - b[0], b[3] - b[1]) / 2, 0.0, 3)
    unc, share = synthetic.uncovered_faces(frame, covered, boxes)
    assert not unc[::2].any() and share[::2].max() < 0.02
    assert unc[1::2].all() and share[1::2].min() > 0.98


def test_low_light_camera_on_a_photo(astronaut) -> None:
    light = synthetic.light_map(512, 512, spot=(0.85, 0.15))
    assert light[int(0.15 * 512), int(0.85 * 512)] > 5 * light[256, 256] > 5 * light[0, 0] * 1.5
    dim = synthetic.low_light(astronaut, light, rng=1)
    assert np.array_equal(dim, synthetic.low_light(astronaut, light, rng=1))
    face = ellipse_pixels(dim, np.array([175, 50, 275, 190])).mean(axis=1)
    assert synthetic.FACE_LEVELS[0] <= np.median(face) <= synthetic.FACE_LEVELS[1]
    assert np.median(astronaut) > 3 * np.median(dim)


def test_the_low_light_perturbation(astronaut) -> None:
    assert PERTURBATIONS["lowlight"] is low_light_perturbation
    a, b = low_light_perturbation(astronaut, 4), low_light_perturbation(astronaut, 4)
    assert np.array_equal(a, b) and a.shape == astronaut.shape
    assert not np.array_equal(a, low_light_perturbation(astronaut, 5)), "fresh sensor noise per frame"
    face = ellipse_pixels(a, np.array([175, 50, 275, 190])).mean(axis=1)
    assert synthetic.FACE_LEVELS[0] <= np.median(face) <= synthetic.FACE_LEVELS[1]
