"""Crowd scenes: the same people in every lighting, the difficulties the benchmark promises (small faces,
occlusion, profiles, a close-up, motion) really there, and a clip's ground truth read back as written."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy.evaluation import crowd, synthetic


@pytest.fixture(scope="module")
def faces() -> list[synthetic.Face]:
    root = shared_path("data", "landmarks", "helen_test").parent
    return synthetic.load_faces(("helen_test", "afw"), limit=60, max_width=200, root=root)


def test_the_lightings_show_the_same_people_and_darken_the_frame(faces) -> None:
    frames, truths = {}, {}
    for light in crowd.LIGHTINGS:
        frames[light], truths[light] = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 360, 10, light)).render(12)
    for light in ("dim", "dark"):
        np.testing.assert_array_equal(truths[light].boxes, truths["bright"].boxes)
        np.testing.assert_array_equal(truths[light].ids, truths["bright"].ids)
    means = [float(frames[light].mean()) for light in crowd.LIGHTINGS]
    assert means[0] > 70 and 35 < means[1] < 70 and means[2] < 35, means
    again, _ = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 360, 10, "dark")).render(12)
    np.testing.assert_array_equal(again, frames["dark"])  # noise too: deterministic for a spec


def test_a_crowd_has_small_occluded_and_turned_faces(faces) -> None:
    scene = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 480, 20, "bright"))
    truths = [scene.render(i)[1] for i in (0, 40, 80)]
    widths = np.concatenate([t.boxes[:, 2] - t.boxes[:, 0] for t in truths])
    occluded = np.concatenate([t.occluded for t in truths])
    assert (widths < 40).sum() >= 6 and widths.min() >= 18, np.sort(widths)
    assert ((occluded >= 0.1) & (occluded <= crowd.HIDDEN_SHARE)).sum() >= 3, occluded
    assert occluded.max() <= crowd.HIDDEN_SHARE
    turned = {int(i) for t in truths for i, u in zip(t.ids, t.turn, strict=True) if abs(u) >= crowd.PROFILE_TURN}
    assert turned, "some faces are large-pose ones"
    for t in truths:  # the visible part lies within the face
        assert (t.visible[:, :2] >= t.boxes[:, :2] - 1).all() and (t.visible[:, 2:] <= t.boxes[:, 2:] + 1).all()
    moved = np.abs(truths[1].boxes[:, :2].mean(0) - truths[0].boxes[:, :2].mean(0)).max()
    assert moved > 2, "the camera and the people move"


def test_the_close_up_fills_most_of_the_frame_height(faces) -> None:
    _, truth = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 360, 6, "dark", closeup=True)).render(0)
    heights = truth.boxes[:, 3] - truth.boxes[:, 1]
    assert heights.max() == pytest.approx(crowd.CLOSEUP_HEIGHT * 360, rel=0.1)
    assert len(truth.ids) >= 5, "people behind it"


def test_a_clip_and_its_truth_are_read_back(faces, tmp_path) -> None:
    import av

    spec = crowd.CrowdSpec(320, 240, 5, "dim", frames=6)
    path = crowd.crowd_clip(spec, tmp_path, faces)
    assert path == crowd.crowd_clip(spec, tmp_path, faces) and path.name == f"{spec.name}.mp4"
    truth = crowd.read_truth(path)
    scene = crowd.CrowdScene(faces, spec)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == len(truth) == 6
    for i in (0, 5):
        frame, gt = scene.render(i)
        np.testing.assert_allclose(truth[i].boxes, gt.boxes, atol=0.06)
        assert np.abs(frames[i].astype(int) - frame).mean() < 4, "near-lossless"


def test_the_crowd_command_makes_one_clip_per_combination(tmp_path) -> None:
    """`python -m emoji_privacy.evaluation crowd`: sizes x face counts x lightings, each an MP4 with its truth;
    a bad size is one line that says what to write instead."""
    shared_path("data", "landmarks", "helen_test")
    from emoji_privacy.evaluation.cli import crowd_main

    assert crowd_main(["-o", str(tmp_path), "--size", "160x120", "--faces", "2", "3", "--lighting", "bright",
                       "dark", "--frames", "3"]) == 0
    clips = sorted(tmp_path.glob("*.mp4"))
    assert len(clips) == 4 and all(len(crowd.read_truth(c)) == 3 for c in clips)
    assert crowd_main(["-o", str(tmp_path), "--size", "640"]) == 1
