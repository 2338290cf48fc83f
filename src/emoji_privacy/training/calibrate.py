"""Fit a model's confidence calibration on PublicTest and report it on PrivateTest.

Every run folder gets this automatically (``write_run``); for a model trained before calibration
existed::

    python -m emoji_privacy.training.calibrate models/fer_resnet.pt

rewrites the checkpoint's metadata with ``calibration`` (temperature, ECE before and after) and
saves ``<name>_reliability.png`` beside it (or in ``--figures``); an ONNX twin beside the ``.pt`` is
re-exported with the temperature built in. The weights are unchanged.
"""

from __future__ import annotations

import argparse
import sys
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
from ..errors import EmojiPrivacyError
from .core import predict_probs, resize_faces
from .data import FerData, load_fer2013

__all__ = ["calibrate", "main", "probs_on_test_splits"]


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


def main(argv: list[str] | None = None) -> int:
    from ..emotion.checkpoint import load_checkpoint, save_checkpoint
    from .outputs import export_onnx

    ap = argparse.ArgumentParser(prog="python -m emoji_privacy.training.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="project .pt checkpoints (rewritten in place)")
    ap.add_argument("--data", help="FER2013 folder, .tar.gz or fer2013.csv (default: the shared copy)")
    ap.add_argument("--figures", type=Path, help="folder for <name>_reliability.png (default: beside the model)")
    ap.add_argument("--criterion", choices=CRITERIA, default=CRITERIA[0],
                    help="what the temperature minimises on PublicTest (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        data = load_fer2013(args.data, progress=not args.quiet)
        for path in args.models:
            ckpt = load_checkpoint(path)
            figure = (args.figures or path.parent) / f"{path.stem}_reliability.png"
            cal = calibrate(ckpt.model, data, figure, path.stem, args.criterion)
            save_checkpoint(ckpt.model, path, {**ckpt.metadata, "calibration": cal})
            if path.with_suffix(".onnx").exists():  # its ONNX twin gives the calibrated probabilities too
                export_onnx(ckpt.model, path.with_suffix(".onnx"), cal["temperature"])
            e = cal["ece"]["PrivateTest"]
            print(f"{path}: temperature {cal['temperature']:.3f}; PrivateTest ECE {e['raw']:.2%} -> "
                  f"{e['calibrated']:.2%} ({ECE_BINS} bins)")
    except EmojiPrivacyError as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
