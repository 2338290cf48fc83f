"""Ghosts of the dark pass: on a dark crowd with every head removed, the detector's brightened pass at half the
score threshold accepts dark background as faces. They are covered at once (privacy first) but not listed: not
in FaceEmotion, not in the faces JSON (pipeline.listed_faces, tracking.confirmed).

Checked against the defect it guards (by hand, then restored): listing unconfirmed tracks (listed_faces
returning every face) turns it red."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy import UNKNOWN_INDEX
from emoji_privacy.evaluation import crowd, synthetic
from emoji_privacy.files import faces_records
from emoji_privacy.pipeline import listed_faces

FRAMES = range(0, 112)
"""The first frames of the face-free scene: ghosts at frames 72, 80, 103, 104 and 110 (scores 0.30-0.43), none of
them confirmed (at most 2 detections in any 5 frames)."""


@pytest.fixture(scope="module")
def faces() -> list[synthetic.Face]:
    root = shared_path("data", "landmarks", "helen_test").parent
    return synthetic.load_faces(root=root, max_width=256)


@pytest.mark.slow  # ~25 s on 2 cores (the scene is rendered frame by frame)
def test_a_dark_pass_ghost_is_covered_but_not_listed(pipeline, faces) -> None:
    scene = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 360, 10, "dark", faceless=True, seed=0))
    anonymizer = pipeline.sharing_models()
    ghosts = 0
    for i in FRAMES:
        frame, truth = scene.render(i)
        assert len(truth.boxes) == 0, "a face-free scene"
        out, found = anonymizer.process(frame, i / crowd.CLIP_FPS)
        for f in found:  # every ghost is covered: its box's middle changed
            x0, y0, x1, y1 = (int(v) for v in f.box)
            mid = (slice((3 * y0 + y1) // 4, (y0 + 3 * y1) // 4), slice((3 * x0 + x1) // 4, (x0 + 3 * x1) // 4))
            assert np.abs(out[mid].astype(int) - frame[mid].astype(int)).mean() > 10, f"ghost {f.box} left uncovered"
        ghosts += len(found)
        assert listed_faces(found) == [] and listed_faces(anonymizer.held) == [], f"frame {i}: a ghost is listed"
        assert faces_records(found, anonymizer.held) == {"faces": [], "held": []}
    assert ghosts >= 3, "the dark pass accepted background here before: the scene no longer tests anything"


def test_a_ghost_is_not_in_the_face_emotion_message() -> None:
    """The same rule in FaceEmotion: an unconfirmed face is not in the message, a confirmed one is."""
    pytest.importorskip("sensor_msgs.msg", reason="ROS 1 messages (sensor_msgs) are not installed")
    from std_msgs.msg import Header

    from emoji_privacy.pipeline import FaceResult
    from emoji_privacy.ros.messages import faces_to_message

    def face(track_id: int, confirmed: bool) -> FaceResult:
        return FaceResult(track_id, np.array([10, 10, 50, 50], np.float32), 0.4, np.zeros(0, np.float32),
                          UNKNOWN_INDEX, 0.0, 0.0, np.zeros((68, 2), np.float32), (30.0, 30.0), 30.0,
                          confirmed=confirmed)

    msg = faces_to_message([face(1, False), face(2, True)], Header())
    assert [f.track_id for f in msg.faces] == [2]
