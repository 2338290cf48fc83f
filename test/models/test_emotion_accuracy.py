"""The default emotion model must actually read emotions: a model that always answers "happy" (the astronaut's
emotion and FER2013's largest class) has to fail here, on the whole PrivateTest split and on a real face
that is not happy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy import EMOTIONS, PipelineConfig
from emoji_privacy.emotion.calibration import apply_temperature, expected_calibration_error
from emoji_privacy.emotion.classifiers import load_emotion_classifier
from emoji_privacy.training.core import classification_report, resize_faces
from emoji_privacy.training.data import load_fer2013

ACCURACY_FLOOR = 0.62  # fer_resnet measures 0.674; always-"happy" scores 0.249, chance 1/7
RECALL_FLOORS = {"angry": 0.45, "fear": 0.25, "happy": 0.75, "sad": 0.40, "surprise": 0.60, "neutral": 0.55}
"""Per-class recall floors, each well under fer_resnet's (0.64, 0.38, 0.89, 0.53, 0.77, 0.74)."""
ECE_CEILING = 0.03  # issue 15's target; fer_resnet with its temperature measures 0.0266, raw 0.0389


def shortfalls(labels: np.ndarray, probs: np.ndarray) -> list[str]:
    """What a classifier misses of the floors above (empty: it passes)."""
    rep = classification_report(labels, probs)
    missed = [f"accuracy {rep['accuracy']:.3f} < {ACCURACY_FLOOR}"] if rep["accuracy"] < ACCURACY_FLOOR else []
    missed += [f"{c} recall {rep['per_class'][c]['recall']:.2f} < {floor}" for c, floor in RECALL_FLOORS.items()
               if rep["per_class"][c]["recall"] < floor]
    return missed


@pytest.fixture(scope="module")
def private_test():
    fer = load_fer2013(shared_path("data", "fer2013", "fer2013_images_train_test.tar.gz"), progress=False)
    return fer.split("PrivateTest")


@pytest.fixture(scope="module")
def default_classifier():
    cfg = PipelineConfig().emotion
    return load_emotion_classifier(cfg.backend, model_path=cfg.model_path or None, threads=cfg.threads,
                                   engine=cfg.engine)


@pytest.fixture(scope="module")
def default_probs(default_classifier, private_test) -> np.ndarray:
    """The default classifier's probabilities on PrivateTest, calibrated as the listener publishes them."""
    x, _ = private_test
    return default_classifier.predict(resize_faces(x, default_classifier.input_size))


def test_default_model_reads_emotions_on_private_test(default_probs, private_test):
    _, y = private_test
    assert len(y) == 3589
    assert shortfalls(y, default_probs) == []


def test_default_model_confidence_is_calibrated_on_private_test(default_classifier, default_probs, private_test):
    _, y = private_test
    assert expected_calibration_error(default_probs, y) <= ECE_CEILING
    # the check fires on the same network without its temperature, and on an over-confident one
    raw = apply_temperature(default_probs, 1.0 / default_classifier.temperature)
    assert expected_calibration_error(raw, y) > ECE_CEILING
    assert expected_calibration_error(apply_temperature(default_probs, 0.5), y) > ECE_CEILING


def test_the_floors_catch_a_model_that_always_answers_happy(private_test):
    _, y = private_test
    always_happy = np.zeros((len(y), len(EMOTIONS)), np.float32)
    always_happy[:, EMOTIONS.index("happy")] = 1.0
    missed = shortfalls(y, always_happy)
    assert missed[0].startswith("accuracy 0.24")
    assert len(missed) == 1 + len(RECALL_FLOORS) - 1  # every floor but happy's


# frames of fer_woman2.mp4 (checked by eye): 30 a broad smile; 210 and 240 eyes wide open with the mouth
# open, a startled face (FER2013 would label it fear or surprise); 0 a closed-mouth, nearly neutral face
NOT_HAPPY_FRAMES = (210, 240)


def _frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(shared_path("data", "videos", "fer_woman2.mp4")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"fer_woman2.mp4 has no frame {index}"
    return frame


def test_pipeline_tells_a_startled_face_from_a_smile(pipeline):
    shown = {}
    for index in (30, *NOT_HAPPY_FRAMES):
        pipeline.reset()  # each frame on its own: no smoothing over frames
        _, faces = pipeline.process(_frame(index))
        assert len(faces) == 1, f"frame {index}: {len(faces)} faces"
        shown[index] = faces[0].emotion
    assert shown[30] == "happy", shown
    assert all(shown[i] in ("fear", "surprise") for i in NOT_HAPPY_FRAMES), shown
