"""A training run's folder: checkpoint (+ONNX), metadata, metrics, curves, confusion matrix, per-class table."""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import EMOTIONS
from ..atomic import atomic_write_bytes
from ..emotion.checkpoint import PT_FORMAT_VERSION, save_checkpoint
from ..emotion.nets import count_parameters
from ..errors import ConfigError
from ..markdown import markdown_table
from ..model_files import sha256_of, source_tree
from ..provenance import code_version
from .calibrate import calibrate, probs_on_test_splits
from .core import NORMALIZATION, TrainResult, classification_report
from .data import FerData


class _Calibrated(nn.Module):
    """``model``'s probabilities with the calibration temperature applied, for the ONNX twin."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.log(self.model(x).clamp_min(1e-12)) / self.temperature, dim=1)


def export_onnx(model: nn.Module, path: Path, temperature: float = 1.0) -> Path | None:
    """ONNX twin of the .pt (dynamic batch; calibrated probabilities, like the .pt as the listener loads it);
    None with a warning when this torch cannot export."""
    from ..emotion.classifiers import onnx_bytes  # loads onnxruntime: only when a run folder is written

    s = int(model.input_size)
    try:
        m = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
        if temperature != 1.0:
            m = _Calibrated(m, temperature).eval()
        return atomic_write_bytes(path, onnx_bytes(m, torch.zeros(1, 1, s, s), "faces", "probs", opset=17))
    except Exception as e:  # export is a convenience; the .pt is the model of record
        print(f"warning: ONNX export skipped ({type(e).__name__}: {str(e)[:150]})", file=sys.stderr)
        return None


def model_metadata(result: TrainResult, data: FerData, command: str,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = result.config
    return {**(extra or {}),
        "format_version": PT_FORMAT_VERSION,
        "architecture": cfg.architecture,
        "config": dict(getattr(result.model, "config", cfg.net)),  # every option, so default changes are safe
        "input_size": int(result.model.input_size),
        "classes": list(EMOTIONS),
        "normalization": dict(NORMALIZATION),
        "dataset": {"name": "FER2013", "source": data.source, "train_split": "Training",
                    "selection_split": "PublicTest", "counts": data.counts()},
        "metrics": {s: {k: v for k, v in m.items() if k != "confusion"} for s, m in result.metrics.items()},
        "training": {"command": command, "hyperparameters": asdict(cfg), "best_epoch": result.best_epoch,
                     "seconds": round(result.seconds, 1),
                     # which teachers exactly (a path can be overwritten; the hash cannot)
                     "teachers": [{"file": str(p), "sha256": sha256_of(p)} for p in cfg.teacher_paths if p.is_file()]},
        "parameters": count_parameters(result.model),
        "code_version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _plot_curves(history: list[dict[str, float]], best_epoch: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], label="train (augmented, smoothed labels)")
    if "val_loss" in history[0]:
        a1.plot(ep, [h["val_loss"] for h in history], label="PublicTest")
    a1.set_xlabel("epoch"), a1.set_ylabel("loss"), a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], label="train (augmented)")
    if "val_acc" in history[0]:
        a2.plot(ep, [h["val_acc"] for h in history], label="PublicTest")
    a2.axvline(best_epoch, color="gray", ls="--", label=f"kept: epoch {best_epoch}")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(report: dict[str, Any], title: str, path: Path) -> None:
    """Row-normalized confusion matrix: each row shows where one true class went."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion"], float)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_class_markdown(metrics: dict[str, dict[str, Any]]) -> str:
    lines = []
    for split, m in metrics.items():
        lines += [f"## {split}: accuracy {m['accuracy']:.2%}, macro-F1 {m['macro_f1']:.3f} (n={m['n']})", "",
                  markdown_table(["class", "precision", "recall", "F1", "support"],
                                 [[c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"]]
                                  for c, v in m["per_class"].items()]), ""]
    return "\n".join(lines)


def export_folder() -> Path:
    """Where ``--export`` copies a model: the source tree's ``models/`` (an install space is read-only)."""
    root = source_tree()
    if root is None:
        raise ConfigError("--export copies the model into the source tree's models/, but this package runs from an "
                          "install space; copy <run folder>/<name>.pt into your checkout's models/ instead")
    return root / "models"


def write_run(result: TrainResult, data: FerData, out_dir: Path, name: str, command: str,
              export_to: Path | None = None, extra_metadata: dict[str, Any] | None = None) -> Path:
    """The run folder: metrics, plots, per-class table, calibration (reliability.png), checkpoint (+ONNX);
    optionally copy the checkpoint to models/ (the package loads the ``.pt``; the ``.onnx`` is for other runtimes).

    The finished model is evaluated here, once, on PublicTest and PrivateTest (``result.metrics``); the same
    predictions fit its temperature.

    ``extra_metadata`` adds keys to the checkpoint's metadata (e.g. how a federated run trained it).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    probs, labels = probs_on_test_splits(result.model, data)
    for split, p in probs.items():
        result.metrics[split] = classification_report(labels[split], p)
    calibration = calibrate(result.model, data, out_dir / "reliability.png", name, predictions=(probs, labels),
                            degraded=result.config.degrade_p > 0)  # trained for real light: calibrated for it
    result.model = result.model.cpu()  # saved and exported as it is deployed
    meta = model_metadata(result, data, command, {**(extra_metadata or {}), "calibration": calibration})
    pt = save_checkpoint(result.model, out_dir / f"{name}.pt", meta)
    export_onnx(result.model, out_dir / f"{name}.onnx", calibration["temperature"])  # for other runtimes
    (out_dir / "metrics.json").write_text(json.dumps(
        {"name": name, "metadata": meta, "history": result.history,
         "confusion": {s: m["confusion"] for s, m in result.metrics.items()}}, indent=1))
    (out_dir / "per_class.md").write_text(per_class_markdown(result.metrics))
    _plot_curves(result.history, result.best_epoch, out_dir / "curves.png")
    final_split = "PrivateTest" if "PrivateTest" in result.metrics else next(iter(result.metrics), None)
    if final_split:
        m = result.metrics[final_split]
        plot_confusion(m, f"{name} on FER2013 {final_split}: acc {m['accuracy']:.1%}, macro-F1 {m['macro_f1']:.3f}",
                       out_dir / "confusion.png")
    if export_to is not None:
        export_to.mkdir(parents=True, exist_ok=True)
        save_checkpoint(result.model, export_to / f"{name}.pt", meta)  # the .onnx stays in the run folder
    return pt
