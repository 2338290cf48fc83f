"""Emotion in real light, with the real default model and pipeline: the model still reads darkened faces, and a
face turned to profile is reported unknown instead of given an emotion (emotion/reliability.py)."""

from __future__ import annotations

import cv2
import pytest

from emoji_privacy import UNKNOWN_INDEX
from emoji_privacy.emotion.reliability import READ, TURNED
from emoji_privacy.evaluation.emotion import report_of
from emoji_privacy.training.core import resize_faces
from emoji_privacy.training.degrade import DEGRADATIONS, degrade

DARK_FLOORS = {"dark_x0.2": 0.62, "dark_noise": 0.54}
"""Accuracy floors on all of PrivateTest under the two darkest degradations (seeded as in
bench_emotion_robustness.py). The default before issue 34 (fer_resnet.pt, no normalisation, no degraded training)
measures 0.5548 and 0.4848 there; fer_robust.pt 0.6662 and 0.5821 (bench/results/emotion_robustness.md)."""


@pytest.mark.parametrize("name", list(DARK_FLOORS))
def test_default_model_reads_darkened_faces(default_classifier, private_test, name: str) -> None:
    x, y = private_test
    seed = list(DEGRADATIONS).index(name)  # the benchmark's PrivateTest copies (degraded_conditions, seed 0)
    faces = resize_faces(degrade(x, name, seed), default_classifier.input_size)
    rep = report_of(default_classifier.predict(faces), y)
    assert rep["accuracy"] >= DARK_FLOORS[name], f"{name}: accuracy {rep['accuracy']:.4f}"
    assert max(rep["predicted"]) < 0.35, f"{name}: one emotion for most faces: {rep['predicted']}"


@pytest.fixture(scope="module")
def posed_faces():
    from emoji_privacy.evaluation.synthetic import load_faces

    try:
        faces = load_faces(max_width=200)
    except FileNotFoundError as e:
        pytest.skip(f"300-W faces not available (the shared data folder): {e}")
    return faces


def _readings(pipeline, faces) -> list[tuple[str, int]]:
    out = []
    for f in faces:
        pipeline.reset()  # each face a new track: its first reading decides
        frame = cv2.copyMakeBorder(f.image, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        _, found = pipeline.process(frame, 0.0)
        if found:
            face = max(found, key=lambda r: r.box[2] - r.box[0])
            out.append((face.reading, face.emotion_index))
    return out


def test_a_face_turned_to_profile_is_reported_unknown(pipeline, posed_faces) -> None:
    profiles = [f for f in posed_faces if abs(f.turn) >= 0.75]
    frontal = [f for f in posed_faces if abs(f.turn) < 0.1][:60]
    assert len(profiles) >= 20 and len(frontal) >= 40
    got = _readings(pipeline, profiles)
    assert len(got) >= 0.9 * len(profiles)
    turned = [r for r in got if r[0] == TURNED]
    assert len(turned) >= 0.75 * len(got), f"{len(turned)} of {len(got)} profiles reported turned"
    assert all(e == UNKNOWN_INDEX for _, e in turned), "a face seen only in profile was given an emotion"
    front = _readings(pipeline, frontal)
    assert sum(r == TURNED for r, _ in front) <= 0.05 * len(front)
    assert sum(r == READ for r, _ in front) >= 0.6 * len(front)
