"""Calibrated confidence: temperature scaling is fitted, measured, stored and applied by the classifier, and the
default model's confidence is calibrated on FER2013's PrivateTest."""

import numpy as np
import pytest
import torch

from emoji_privacy.emotion.calibration import CRITERIA, apply_temperature, expected_calibration_error, fit_temperature
from emoji_privacy.emotion.checkpoint import load_checkpoint, save_checkpoint
from emoji_privacy.emotion.classifiers import load_emotion_classifier
from emoji_privacy.errors import ModelFileError

ECE_CEILING = 0.03  # the calibration target; fer_resnet with its temperature measures 0.0266, raw 0.0389


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated_sample(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, 7))
    p = _softmax(logits)
    labels = np.array([rng.choice(7, p=row) for row in p])
    return logits, labels


def test_temperature_keeps_the_argmax_and_is_identity_at_one() -> None:
    p = _softmax(np.random.default_rng(1).normal(0, 3, (50, 7)))
    np.testing.assert_allclose(apply_temperature(p, 1.0), p)
    for t in (0.5, 2.0):
        q = apply_temperature(p, t)
        assert (q.argmax(1) == p.argmax(1)).all()
        np.testing.assert_allclose(q.sum(1), 1.0)
    assert apply_temperature(p, 2.0).max(1).mean() < p.max(1).mean() < apply_temperature(p, 0.5).max(1).mean()


@pytest.mark.parametrize("criterion", CRITERIA)
def test_fitted_temperature_undoes_over_and_under_confidence(criterion: str) -> None:
    logits, labels = _calibrated_sample()
    calibrated = _softmax(logits)
    over, under = _softmax(logits * 2.0), _softmax(logits * 0.5)
    assert expected_calibration_error(calibrated, labels) < 0.015
    # the check fires on a badly calibrated model ...
    assert expected_calibration_error(over, labels) > 0.05 and expected_calibration_error(under, labels) > 0.05
    # ... and temperature scaling repairs it
    t_over, t_under = fit_temperature(over, labels, criterion), fit_temperature(under, labels, criterion)
    assert t_over == pytest.approx(2.0, rel=0.05) and t_under == pytest.approx(0.5, rel=0.05)
    assert expected_calibration_error(apply_temperature(over, t_over), labels) < 0.015


def test_an_unknown_criterion_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown calibration criterion 'ece'; use one of brier, nll"):
        fit_temperature(np.full((3, 7), 1 / 7), np.zeros(3, np.int64), "ece")


def test_shipped_model_is_calibrated_and_applies_its_temperature(tmp_path) -> None:
    ckpt = load_checkpoint(None)  # the default model
    cal = ckpt.metadata.get("calibration")
    assert cal and cal["fitted_on"] == "PublicTest + degraded" and ckpt.temperature == cal["temperature"] != 1.0
    assert cal["method"] == f"temperature scaling ({CRITERIA[0]})", \
        "recalibrate it: python -m emoji_privacy.training calibrate --degraded models/fer_robust.pt"
    assert cal["ece"]["PrivateTest"]["calibrated"] < cal["ece"]["PrivateTest"]["raw"]  # fitted on PublicTest
    faces = np.random.default_rng(2).integers(0, 255, (4, ckpt.input_size, ckpt.input_size), dtype=np.uint8)
    clf = load_emotion_classifier("torch", engine="torch")
    raw_path = tmp_path / "raw.pt"
    save_checkpoint(ckpt.model, raw_path, {k: v for k, v in ckpt.metadata.items() if k != "calibration"})
    raw = load_emotion_classifier("torch", str(raw_path), engine="torch")
    assert raw.temperature == 1.0
    np.testing.assert_allclose(clf.predict(faces), apply_temperature(raw.predict(faces), ckpt.temperature),
                               atol=1e-5)
    bad = tmp_path / "bad.pt"
    save_checkpoint(ckpt.model, bad, {**ckpt.metadata, "calibration": {"temperature": -1}})
    with pytest.raises(ModelFileError, match="bad calibration temperature"):
        load_checkpoint(bad)
    assert torch.equal(next(iter(raw.model.state_dict().values())), next(iter(clf.model.state_dict().values())))


def test_default_model_confidence_is_calibrated_on_private_test(default_classifier, default_probs, private_test):
    _, y = private_test
    assert expected_calibration_error(default_probs, y) <= ECE_CEILING
    # the check fires on the same network without its temperature, and on an over-confident one
    raw = apply_temperature(default_probs, 1.0 / default_classifier.temperature)
    assert expected_calibration_error(raw, y) > ECE_CEILING
    assert expected_calibration_error(apply_temperature(default_probs, 0.5), y) > ECE_CEILING
