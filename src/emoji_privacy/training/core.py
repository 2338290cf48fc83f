"""Train the emotion CNN on FER2013: one run, or k-fold cross-validated hyper-parameter search.

Split discipline: weights are fitted on ``Training`` only; the epoch kept and every
hyper-parameter choice are decided on ``PublicTest`` (or on held-out folds of ``Training``
in ``--cv`` mode); ``PrivateTest`` is evaluated once, on the finished model, and only reported.

A run writes a folder (``runs/<name>-<time>/``): ``metrics.json``, ``curves.png``,
``confusion.png`` (row-normalized), ``per_class.md``, ``<name>.pt`` (state dict + metadata,
loadable with ``torch.load(..., weights_only=True)``) and ``<name>.onnx``; ``--export`` also
copies the ``.pt`` to ``models/``. Run ``python -m emoji_privacy.training.core --help``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Busy-wait OpenMP workers: when other processes share the cores, torch's default passive
# barriers made a training step 10x slower here (2.0 vs 0.21 s per batch of 128 on 2 cores
# beside a niced busy loop). Only effective before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from .. import EMOTIONS, __version__  # noqa: E402
from ..emotion.checkpoint import PT_FORMAT_VERSION, save_checkpoint  # noqa: E402
from ..emotion.nets import EMOTION_NETS, build_emotion_net, count_parameters  # noqa: E402
from ..errors import ConfigError  # noqa: E402
from ..model_files import REPO_ROOT  # noqa: E402
from .data import FerData, load_fer2013  # noqa: E402

__all__ = ["TrainConfig", "TrainResult", "train", "sgd_optimizer", "probs_cross_entropy", "evaluate_model",
           "classification_report", "save_checkpoint", "cross_validate", "resize_faces", "main"]

NORMALIZATION = {"mean": 127.5, "std": 127.5}
DEFAULT_SIZES = {"paper42": 42}


@dataclass
class TrainConfig:
    """Everything that decides a trained model; stored in its metadata."""

    architecture: str = "compact_resnet"
    net: dict[str, Any] = field(default_factory=dict)  # keyword config of the architecture
    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate of the one-cycle schedule (SGD, Nesterov momentum 0.9)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    class_weighting: str = "none"  # none | sqrt (inverse sqrt frequency: helps disgust recall)
    # augmentation (applied on the fly, batched): random affine + flip + photometric + erasing
    rotate_deg: float = 15.0
    scale: float = 0.15
    shift: float = 0.1  # fraction of the image side
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    erase_p: float = 0.5
    ema_decay: float = 0.999  # exponential moving average of weights; 0 disables
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default

    @property
    def input_size(self) -> int:
        return int(self.net.get("input_size", DEFAULT_SIZES.get(self.architecture, 48)))

    def validate(self) -> None:
        if self.architecture not in EMOTION_NETS:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {', '.join(EMOTION_NETS)}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("epochs >= 1, batch_size >= 2, lr > 0 and weight_decay >= 0 are required")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.erase_p <= 1 or not 0 <= self.ema_decay < 1:
            raise ConfigError("label_smoothing and ema_decay must be in [0, 1), erase_p in [0, 1]")
        if self.class_weighting not in ("none", "sqrt"):
            raise ConfigError(f"class_weighting must be none or sqrt, not {self.class_weighting!r}")


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[dict[str, float]]
    best_epoch: int
    metrics: dict[str, dict[str, Any]]  # split -> classification_report(...)
    seconds: float


# --------------------------------------------------------------------------- data


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Whole FER frames resized to ``size`` (what align_face produces at that size)."""
    if images.shape[1:] == (size, size):
        return images
    interp = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images]) if len(images) else \
        np.zeros((0, size, size), np.uint8)


def _to_input(batch_u8: torch.Tensor) -> torch.Tensor:
    x = (batch_u8.float().unsqueeze(1) - NORMALIZATION["mean"]) / NORMALIZATION["std"]
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random similarity warp, horizontal flip, brightness/contrast and erasing on a normalized batch."""
    b = x.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen) * 2 - 1

    angle = uniform(b) * math.radians(cfg.rotate_deg)
    scale = 1 + uniform(b) * cfg.scale
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(b) * cfg.shift * 2], 1),
                         torch.stack([sin * flip, cos, uniform(b) * cfg.shift * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = 1 + uniform(b, 1, 1, 1) * cfg.contrast
    x = x * c + uniform(b, 1, 1, 1) * cfg.brightness
    if cfg.erase_p > 0:  # one random rectangle per image set to mid-gray (0 after normalization)
        s = x.shape[-1]
        hw = (torch.rand(b, 2, generator=gen) * 0.3 + 0.1) * s
        xy = torch.rand(b, 2, generator=gen) * (s - hw)
        ar = torch.arange(s, dtype=torch.float32)
        inside_y = (ar[None] >= xy[:, 1:2]) & (ar[None] < xy[:, 1:2] + hw[:, 1:2])
        inside_x = (ar[None] >= xy[:, 0:1]) & (ar[None] < xy[:, 0:1] + hw[:, 0:1])
        box = inside_y[:, :, None] & inside_x[:, None, :]
        box &= (torch.rand(b, generator=gen) < cfg.erase_p)[:, None, None]
        x = x.masked_fill(box[:, None], 0.0)
    return x.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- metrics


def predict_probs(model: nn.Module, images: np.ndarray, batch_size: int = 512, tta: bool = False) -> np.ndarray:
    """(N, 7) probabilities for uint8 faces already at the model's input size; ``tta`` adds the mirror."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = _to_input(torch.from_numpy(images[i:i + batch_size]))
            p = model(x)
            if tta:
                p = (p + model(torch.flip(x, dims=[3]))) / 2
            out.append(p.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(EMOTIONS)), np.float32)


def classification_report(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows = truth)."""
    k = len(EMOTIONS)
    pred = probs.argmax(1)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(len(labels)),
        "accuracy": float(tp.sum() / max(len(labels), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(EMOTIONS)},
        "confusion": cm.tolist(),
    }


def evaluate_model(model: nn.Module, images: np.ndarray, labels: np.ndarray, tta: bool = False) -> dict[str, Any]:
    size = int(getattr(model, "input_size", images.shape[1]))
    return classification_report(labels, predict_probs(model, resize_faces(images, size), tta=tta))


# --------------------------------------------------------------------------- training


def _set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def _class_weights(labels: np.ndarray, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    freq = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    w = 1.0 / np.sqrt(np.maximum(freq, 1))
    return torch.tensor(w / (w * freq).sum() * freq.sum(), dtype=torch.float32)


def sgd_optimizer(model: nn.Module, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.SGD:
    """Nesterov SGD with weight decay on weights only: decaying batch norm and biases only hurts."""
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=momentum, nesterov=True)


def probs_cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of predicted probabilities (softmax outputs), floored at 1e-8 so it stays finite."""
    return float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-8)),
                            torch.from_numpy(np.asarray(labels, np.int64))))


def train(cfg: TrainConfig, train_x: np.ndarray, train_y: np.ndarray,
          val_x: np.ndarray | None = None, val_y: np.ndarray | None = None,
          progress: bool = True, log: Any = None) -> TrainResult:
    """Fit ``cfg.architecture`` on (train_x, train_y); keep the epoch best on the validation set.

    Images are uint8 (N, 48, 48) FER frames (resized here to the net's input). Without a
    validation set the last epoch is kept.
    """
    from tqdm import tqdm

    cfg.validate()
    _set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_emotion_net(cfg.architecture, **cfg.net).to(memory_format=torch.channels_last)
    size = model.input_size
    xs = torch.from_numpy(resize_faces(train_x, size))
    ys = torch.from_numpy(np.asarray(train_y, np.int64))
    vx = resize_faces(val_x, size) if val_x is not None and len(val_x) else None
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    opt = sgd_optimizer(model, cfg.lr, cfg.weight_decay)
    steps_per_epoch = max(len(xs) // cfg.batch_size, 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.15, div_factor=20, final_div_factor=200)
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(train_y, cfg.class_weighting),
                                  label_smoothing=cfg.label_smoothing)
    history: list[dict[str, float]] = []
    best = (-1.0, 0, None)
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(xs), generator=gen)
        tot_loss = tot_ok = seen = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not progress, mininterval=1.0)
        for step in bar:
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = augment(_to_input(xs[idx]), cfg, gen)
            y = ys[idx]
            logits = model.logits(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                with torch.no_grad():
                    d = min(cfg.ema_decay, (1 + step + epoch * steps_per_epoch) / (10 + step + epoch * steps_per_epoch))
                    for pe, pm in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
                        if pe.dtype.is_floating_point:
                            pe.mul_(d).add_(pm.detach(), alpha=1 - d)
                        else:
                            pe.copy_(pm)
            tot_loss += loss.item() * len(y)
            tot_ok += float((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_ok / seen:.3f}")
        row = {"epoch": epoch, "train_loss": tot_loss / seen, "train_acc": tot_ok / seen,
               "lr": sched.get_last_lr()[0], "seconds": time.perf_counter() - t0}
        judged = ema if ema is not None else model
        if vx is not None:
            probs = predict_probs(judged, vx)
            row["val_acc"] = float((probs.argmax(1) == val_y).mean())
            row["val_loss"] = probs_cross_entropy(probs, val_y)
            if row["val_acc"] > best[0]:
                best = (row["val_acc"], epoch, copy.deepcopy(judged.state_dict()))
        history.append(row)
        msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        (log or (lambda s: print(s, file=sys.stderr, flush=True)))(msg)
    final = ema if ema is not None else model
    best_epoch = cfg.epochs
    if best[2] is not None:
        final.load_state_dict(best[2])
        best_epoch = best[1]
    final.eval()
    return TrainResult(final, cfg, history, best_epoch, {}, time.perf_counter() - t0)


# --------------------------------------------------------------------------- outputs


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"{__version__}+{out}" if out else __version__


def export_onnx(model: nn.Module, path: Path) -> Path | None:
    """ONNX twin of the .pt (dynamic batch); None with a warning when this torch cannot export."""
    s = int(model.input_size)
    try:
        m = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
        torch.onnx.export(m, (torch.zeros(1, 1, s, s),), str(path), input_names=["faces"], output_names=["probs"],
                          dynamic_axes={"faces": {0: "n"}, "probs": {0: "n"}}, dynamo=False, opset_version=17)
        return path
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
                     "seconds": round(result.seconds, 1)},
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
                  "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for c, v in m["per_class"].items()]
        lines.append("")
    return "\n".join(lines)


def write_run(result: TrainResult, data: FerData, out_dir: Path, name: str, command: str,
              export_to: Path | None = None, extra_metadata: dict[str, Any] | None = None) -> Path:
    """The run folder: metrics, plots, per-class table, checkpoint (+ONNX); optionally copy to models/.

    ``extra_metadata`` adds keys to the checkpoint's metadata (e.g. how a federated run trained it).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = model_metadata(result, data, command, extra_metadata)
    pt = save_checkpoint(result.model, out_dir / f"{name}.pt", meta)
    onnx = export_onnx(result.model, out_dir / f"{name}.onnx")
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
        save_checkpoint(result.model, export_to / f"{name}.pt", meta)
        if onnx is not None:
            (export_to / f"{name}.onnx").write_bytes(onnx.read_bytes())
    return pt


# --------------------------------------------------------------------------- cross-validation search

SEARCH_SPACE: dict[str, list[Any]] = {
    "lr": [0.02, 0.05, 0.1, 0.2],
    "weight_decay": [1e-4, 5e-4, 1e-3],
    "label_smoothing": [0.0, 0.1, 0.2],
    "rotate_deg": [0.0, 10.0, 20.0],
    "erase_p": [0.0, 0.5],
}
"""Hyper-parameters the --search modes vary (the FL paper's random and grid search)."""


def _stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per sample with every class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


def search_trials(base: TrainConfig, mode: str, trials: int, seed: int) -> list[TrainConfig]:
    keys = list(SEARCH_SPACE)
    if mode == "grid":
        import itertools

        combos = list(itertools.product(*(SEARCH_SPACE[k] for k in keys)))
        rng = np.random.default_rng(seed)
        if trials and trials < len(combos):  # a random subset of the grid, in grid order
            combos = [combos[i] for i in sorted(rng.choice(len(combos), trials, replace=False))]
        return [replace(base, **dict(zip(keys, c, strict=True))) for c in combos]
    if mode == "random":
        rng = np.random.default_rng(seed)
        return [replace(base, **{k: SEARCH_SPACE[k][rng.integers(len(SEARCH_SPACE[k]))] for k in keys})
                for _ in range(trials)]
    if mode == "none":
        return [base]
    raise ConfigError(f"--search must be none, random or grid, not {mode!r}")


def cross_validate(configs: list[TrainConfig], x: np.ndarray, y: np.ndarray, k: int, seed: int = 0,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Mean and spread of held-out-fold accuracy and macro-F1 for each config (Training only)."""
    from tqdm import tqdm

    if k < 2:
        raise ConfigError("--cv needs at least 2 folds")
    folds = _stratified_folds(y, k, seed)
    rows = []
    bar = tqdm(total=len(configs) * k, desc="cross-validation", unit="fit", disable=not progress)
    for i, cfg in enumerate(configs):
        accs, f1s = [], []
        for f in range(k):
            tr, va = folds != f, folds == f
            res = train(cfg, x[tr], y[tr], None, None, progress=False, log=lambda s: None)
            rep = evaluate_model(res.model, x[va], y[va])
            accs.append(rep["accuracy"])
            f1s.append(rep["macro_f1"])
            bar.update()
        rows.append({"trial": i, "config": {k2: getattr(cfg, k2) for k2 in SEARCH_SPACE},
                     "acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)),
                     "f1_mean": float(np.mean(f1s)), "f1_std": float(np.std(f1s, ddof=1)), "fold_acc": accs})
    bar.close()
    return rows


def cv_markdown(rows: list[dict[str, Any]], k: int) -> str:
    keys = list(SEARCH_SPACE)
    lines = [f"{k}-fold cross-validation on FER2013 Training (mean ± sd over folds; higher is better)", "",
             "| trial | " + " | ".join(keys) + " | accuracy | macro-F1 |", "|" + "---|" * (len(keys) + 3)]
    for r in sorted(rows, key=lambda r: -r["acc_mean"]):
        lines.append(f"| {r['trial']} | " + " | ".join(str(r["config"][k2]) for k2 in keys)
                     + f" | {r['acc_mean']:.3f} ± {r['acc_std']:.3f} | {r['f1_mean']:.3f} ± {r['f1_std']:.3f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def _parse_net(items: list[str]) -> dict[str, Any]:
    net: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--net takes key=value (e.g. widths=[32,64,128,256]), not {item!r}")
        try:
            net[key] = json.loads(value)
        except json.JSONDecodeError:
            net[key] = value
    return net


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="train_emotion", description="Train an emotion CNN on FER2013 (Training fits, PublicTest selects, "
        "PrivateTest is reported once).")
    ap.add_argument("--data", help="FER2013 image folder, its .tar.gz, or Kaggle fer2013.csv "
                    "(default: $EMOJI_PRIVACY_DATA/fer2013 or ../shared/data/fer2013)")
    ap.add_argument("--arch", default="compact_resnet", choices=sorted(EMOTION_NETS), help="architecture")
    ap.add_argument("--net", nargs="*", default=[], metavar="KEY=VALUE", help="architecture options (JSON values)")
    ap.add_argument("--name", help="model name (default: the architecture)")
    ap.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of the run folder")
    ap.add_argument("--export", action="store_true", help="also copy <name>.pt (and .onnx) into models/")
    ap.add_argument("--limit", type=int, default=0, help="use at most this many Training images (quick runs)")
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="k-fold cross-validation on Training instead "
                    "of one run; reports mean and spread per configuration")
    ap.add_argument("--search", default="none", choices=["none", "random", "grid"], help="with --cv: vary "
                    "hyper-parameters (see SEARCH_SPACE)")
    ap.add_argument("--trials", type=int, default=8, help="configurations to try (random; a subset for grid)")
    ap.add_argument("--final", action="store_true", help="with --cv: then train the best configuration on all "
                    "of Training, select the epoch on PublicTest and report PrivateTest")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    for f in fields(TrainConfig):
        if f.name in ("architecture", "net"):
            continue
        default = f.default
        if isinstance(default, bool):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                            default=default, metavar="BOOL", help=f"(default {default})")
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default,
                            help=f"(default {default})")
    return ap


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("architecture", "net")}
    cfg = TrainConfig(architecture=args.arch, net=_parse_net(args.net), **kw)
    cfg.validate()
    return cfg


def _subset(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
    return x[keep], y[keep]


def run_training(cfg: TrainConfig, data: FerData, name: str, out: Path, export: bool, limit: int,
                 progress: bool, command: str) -> tuple[TrainResult, Path]:
    tx, ty = _subset(*data.split("Training"), limit, cfg.seed)
    vx, vy = data.split("PublicTest")
    res = train(cfg, tx, ty, vx, vy, progress=progress)
    for split in ("PublicTest", "PrivateTest"):  # PrivateTest: once, on the finished model, reported only
        x, y = data.split(split)
        res.metrics[split] = evaluate_model(res.model, x, y)
        res.metrics[f"{split}+flip"] = evaluate_model(res.model, x, y, tta=True)
    run_dir = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    write_run(res, data, run_dir, name, command, REPO_ROOT / "models" if export else None)
    return res, run_dir


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "train_emotion " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cfg = _config_from_args(args)
        data = load_fer2013(args.data, progress=not args.quiet)
        name = args.name or cfg.architecture
        if args.cv:
            x, y = _subset(*data.split("Training"), args.limit, cfg.seed)
            configs = search_trials(cfg, args.search, args.trials, cfg.seed)
            rows = cross_validate(configs, x, y, args.cv, cfg.seed, progress=not args.quiet)
            out_dir = args.out / f"{name}-cv{args.cv}-{time.strftime('%Y%m%d-%H%M%S')}"
            out_dir.mkdir(parents=True, exist_ok=True)
            text = cv_markdown(rows, args.cv)
            (out_dir / "cv.md").write_text(f"Command: `{command}`\n\n{text}")
            (out_dir / "cv.json").write_text(json.dumps(rows, indent=1))
            print(text)
            print(f"saved {out_dir}")
            if args.final:
                best = configs[max(rows, key=lambda r: r["acc_mean"])["trial"]]
                res, run_dir = run_training(best, data, name, args.out, args.export, args.limit,
                                            not args.quiet, command)
                print(per_class_markdown(res.metrics))
                print(f"saved {run_dir}")
            return 0
        res, run_dir = run_training(cfg, data, name, args.out, args.export, args.limit, not args.quiet, command)
        print(per_class_markdown(res.metrics))
        print(f"saved {run_dir}")
        return 0
    except ConfigError as e:  # DataError is a ConfigError
        print(f"train_emotion: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
