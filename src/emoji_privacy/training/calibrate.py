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

__all__ = ["calibrate", "probs_on_test_splits"]


def probs_on_test_splits(model: nn.Module, data: FerData) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw network's probabilities (no temperature) and the labels of PublicTest and PrivateTest."""
    size = int(model.input_size)
    probs, labels = {}, {}
    for split in ("PublicTest", "PrivateTest"):
        x, labels[split] = data.split(split)
        probs[split] = predict_probs(model, resize_faces(x, size)).astype(np.float64)
    return probs, labels


def calibrate(model: nn.Module, data: FerData, diagram: Path | None = None, title: str = "",
              criterion: str = CRITERIA[0],
              predictions: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Temperature fitted on PublicTest (selection split) and ECE on both test splits, raw and scaled.

    ``predictions``: ``probs_on_test_splits(model, data)`` when the caller has it already (the net is not run
    again)."""
    probs, labels = predictions or probs_on_test_splits(model, data)
    temperature = fit_temperature(probs["PublicTest"], labels["PublicTest"], criterion)
    ece = {split: {"raw": round(expected_calibration_error(p, labels[split]), 5),
                   "calibrated": round(expected_calibration_error(apply_temperature(p, temperature), labels[split]),
                                       5)}
           for split, p in probs.items()}
    if diagram is not None:
        reliability_diagram(probs["PrivateTest"], apply_temperature(probs["PrivateTest"], temperature),
                            labels["PrivateTest"], diagram, f"{title} on FER2013 PrivateTest (T={temperature:.2f})")
    return {"temperature": round(temperature, 5), "fitted_on": "PublicTest",
            "method": f"temperature scaling ({criterion})", "ece_bins": ECE_BINS, "ece": ece}
