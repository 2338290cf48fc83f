"""Fit a model's confidence calibration on PublicTest and report it on PrivateTest.

Every run folder gets this automatically (``write_run``); a model trained before calibration existed is
calibrated in place by ``python -m emoji_privacy.training calibrate MODEL.pt...`` (:mod:`.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..emotion.calibration import (
    CRITERIA,
    ECE_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from .core import predict_probs, resize_faces
from .data import FerData
from .degrade import DEGRADATIONS, degrade

__all__ = ["calibrate", "probs_on_test_splits", "degraded_probs"]


def probs_on_test_splits(model: nn.Module, data: FerData) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw network's probabilities (no temperature) and the labels of PublicTest and PrivateTest."""
    size = int(model.input_size)
    probs, labels = {}, {}
    for split in ("PublicTest", "PrivateTest"):
        x, labels[split] = data.split(split)
        probs[split] = predict_probs(model, resize_faces(x, size)).astype(np.float64)
    return probs, labels


def degraded_probs(model: nn.Module, data: FerData) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw network's probabilities and the labels of PublicTest and PrivateTest with every camera degradation
    of degrade.py applied (pooled, each seeded by its place in the list): what a model for real light is
    calibrated on."""
    size = int(model.input_size)
    probs, labels = {}, {}
    for split in ("PublicTest", "PrivateTest"):
        x, y = data.split(split)
        parts = [predict_probs(model, resize_faces(degrade(x, name, DEGRADED_SEED + k), size))
                 for k, name in enumerate(DEGRADATIONS)]
        probs[f"{split} degraded"] = np.concatenate(parts).astype(np.float64)
        labels[f"{split} degraded"] = np.concatenate([y] * len(parts))
    return probs, labels


DEGRADED_SEED = 100
"""Seed of the degraded copies calibration fits on (the robustness benchmark uses others for PrivateTest)."""


def calibrate(model: nn.Module, data: FerData, diagram: Path | None = None, title: str = "",
              criterion: str = CRITERIA[0],
              predictions: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
              degraded: bool = False) -> dict[str, Any]:
    """Temperature fitted on PublicTest (selection split) and ECE on both test splits, raw and scaled.

    ``predictions``: ``probs_on_test_splits(model, data)`` when the caller has it already (the net is not run
    again). ``degraded``: fit on PublicTest together with its degraded copies (``degraded_probs``), so the
    confidence stays honest in the dark too; ECE is then also given on the degraded splits."""
    probs, labels = predictions or probs_on_test_splits(model, data)
    fit_p, fit_y = probs["PublicTest"], labels["PublicTest"]
    if degraded:
        dp, dl = degraded_probs(model, data)
        probs, labels = {**probs, **dp}, {**labels, **dl}
        fit_p = np.concatenate([fit_p, dp["PublicTest degraded"]])
        fit_y = np.concatenate([fit_y, dl["PublicTest degraded"]])
    temperature = fit_temperature(fit_p, fit_y, criterion)
    ece = {split: {"raw": round(expected_calibration_error(p, labels[split]), 5),
                   "calibrated": round(expected_calibration_error(apply_temperature(p, temperature), labels[split]),
                                       5)}
           for split, p in probs.items()}
    if diagram is not None:
        reliability_diagram(probs["PrivateTest"], apply_temperature(probs["PrivateTest"], temperature),
                            labels["PrivateTest"], diagram, f"{title} on FER2013 PrivateTest (T={temperature:.2f})")
    return {"temperature": round(temperature, 5), "fitted_on": "PublicTest" + (" + degraded" if degraded else ""),
            "method": f"temperature scaling ({criterion})", "ece_bins": ECE_BINS, "ece": ece}
