"""Fixtures of the model tests shared by several modules, each loaded once per session: FER2013 faces and the
emotion classifiers that read them."""

from __future__ import annotations

import tarfile

import cv2
import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy import EMOTIONS, PipelineConfig
from emoji_privacy.emotion.classifiers import load_emotion_classifier
from emoji_privacy.errors import ModelFileError
from emoji_privacy.model_files import shared_dir
from emoji_privacy.training.core import resize_faces
from emoji_privacy.training.data import load_fer2013

N_PRIVATE = 300


@pytest.fixture(scope="session")
def mini_xception():
    """The mini-Xception port (the Keras FER2013 weights), or skip when they are not installed."""
    try:
        return load_emotion_classifier("mini_xception")
    except ModelFileError as e:
        pytest.skip(f"mini-Xception weights not installed (run `make setup`): {e}")


@pytest.fixture(scope="session")
def fer_private():
    """~300 PrivateTest faces spread over all classes, read straight from the tar.gz, as 64x64."""
    sd = shared_dir()
    tar_path = sd / "data" / "fer2013" / "fer2013_images_train_test.tar.gz" if sd else None
    if tar_path is None or not tar_path.is_file():
        pytest.skip("FER2013 archive not available (needs the shared data folder, $EMOJI_PRIVACY_SHARED)")
    members: list[tuple[str, bytes]] = []
    with tarfile.open(tar_path, "r|gz") as tf:
        for m in tf:
            if m.isfile() and "/PrivateTest_" in m.name:
                members.append((m.name, tf.extractfile(m).read()))
            elif members and "/test/" not in m.name:
                break  # the test split is stored together; no need to stream the train split
    members.sort()
    pick = np.linspace(0, len(members) - 1, N_PRIVATE).round().astype(int)
    imgs, labels = [], []
    for i in pick:
        name, data = members[i]
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        imgs.append(cv2.resize(img, (64, 64), interpolation=cv2.INTER_LINEAR))
        labels.append(EMOTIONS.index(name.split("/")[-2]))
    return np.stack(imgs), np.array(labels)


@pytest.fixture(scope="session")
def private_test():
    fer = load_fer2013(shared_path("data", "fer2013", "fer2013_images_train_test.tar.gz"), progress=False)
    return fer.split("PrivateTest")


@pytest.fixture(scope="session")
def default_classifier():
    cfg = PipelineConfig().emotion
    return load_emotion_classifier(cfg.backend, model_path=cfg.model_path or None, threads=cfg.threads,
                                   engine=cfg.engine)


@pytest.fixture(scope="session")
def default_probs(default_classifier, private_test) -> np.ndarray:
    """The default classifier's probabilities on PrivateTest, calibrated as the listener publishes them."""
    x, _ = private_test
    return default_classifier.predict(resize_faces(x, default_classifier.input_size))
