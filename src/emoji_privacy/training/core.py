"""The emotion trainer: its config, augmentation, metrics and the training loop.

Split discipline: weights are fitted on ``Training`` only; the epoch kept and every
hyper-parameter choice are decided on ``PublicTest`` (or on held-out folds of ``Training``
in ``--cv`` mode); ``PrivateTest`` is evaluated once, on the finished model, and only reported.

Run folders are written by :mod:`.outputs`, the k-fold search lives in :mod:`.search`, and the
command line (``python -m emoji_privacy.training --help``) in :mod:`.cli`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import EMOTIONS
from ..atomic import atomic_write
from ..emotion.nets import EMOTION_NETS, build_emotion_net
from ..errors import ConfigError
from .degrade import degrade_batch

__all__ = ["TrainConfig", "TrainResult", "train", "epoch_batches", "sgd_step", "sgd_optimizer", "probs_cross_entropy",
           "evaluate_model", "classification_report", "resize_faces", "predict_probs"]

NORMALIZATION = {"mean": 127.5, "std": 127.5}
DEFAULT_SIZES = {"paper42": 42}
TRAINING_STATE_FORMAT = 1
"""Version of the per-epoch training checkpoint (``train(checkpoint=...)``)."""


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
    degrade_p: float = 0.0  # share of faces put through one camera degradation (training/degrade.py) first
    ema_decay: float = 0.999  # exponential moving average of weights; 0 disables
    mixup: float = 0.0  # Beta(a, a) mixing of image pairs (targets mixed alike); 0 disables
    # knowledge distillation: comma-separated teacher checkpoints (.pt, or a run's training_state.pt) whose
    # mean logits on the same augmented batch, softened by the temperature, are a second target
    distill_from: str = ""
    distill_weight: float = 0.7  # share of the loss that matches the teachers (the rest: the labels)
    distill_temperature: float = 4.0
    # the faces trained on: "whole" (FER2013's own crops) or "aligned" (cut by the pipeline's detector, landmarks
    # and align_face, training/crops.py: the framing a camera face gets); the trainer's caller applies it
    crops: str = "whole"
    init_from: str = ""  # a checkpoint (.pt or training_state.pt) of the same net whose weights start the fit
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "cpu"  # cpu | cuda | auto (cuda when one is visible); cuda trains in bfloat16 autocast

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
        if not 0 <= self.degrade_p <= 1:
            raise ConfigError(f"degrade_p must be in [0, 1], not {self.degrade_p}")
        if self.class_weighting not in ("none", "sqrt"):
            raise ConfigError(f"class_weighting must be none or sqrt, not {self.class_weighting!r}")
        if self.mixup < 0 or not 0 <= self.distill_weight <= 1 or self.distill_temperature <= 0:
            raise ConfigError("mixup >= 0, distill_weight in [0, 1] and distill_temperature > 0 are required")
        if self.crops not in ("whole", "aligned"):
            raise ConfigError(f"crops must be whole or aligned, not {self.crops!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be cpu, cuda or auto, not {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda: torch sees no CUDA device here; train with --device cpu")

    @property
    def teacher_paths(self) -> list[Path]:
        return [Path(p.strip()) for p in self.distill_from.split(",") if p.strip()]

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


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


def to_input(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 faces (N, H, W) -> the float input the nets are trained on (normalized, channels-last)."""
    x = (batch_u8.float().unsqueeze(1) - NORMALIZATION["mean"]) / NORMALIZATION["std"]
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random similarity warp, horizontal flip, brightness/contrast and erasing on a normalized batch."""
    b, dev, s = x.shape[0], x.device, x.shape[-1]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen) * 2 - 1

    # every random number is drawn on the CPU from ``gen`` (the same stream on any device, so a run resumes
    # exactly), then sent to the device in one copy: one small copy per batch instead of one per draw
    angle = uniform(b) * math.radians(cfg.rotate_deg)
    scale = 1 + uniform(b) * cfg.scale
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(b) * cfg.shift * 2], 1),
                         torch.stack([sin * flip, cos, uniform(b) * cfg.shift * 2], 1)], 1)
    contrast = 1 + uniform(b) * cfg.contrast
    brightness = uniform(b) * cfg.brightness
    erase = torch.zeros(b, 5)  # one random rectangle per image set to mid-gray (0 after normalization)
    if cfg.erase_p > 0:
        hw = (torch.rand(b, 2, generator=gen) * 0.3 + 0.1) * s
        xy = torch.rand(b, 2, generator=gen) * (s - hw)
        erase = torch.cat([hw, xy, (torch.rand(b, generator=gen) < cfg.erase_p).float()[:, None]], 1)
    params = torch.cat([theta.reshape(b, 6), contrast[:, None], brightness[:, None], erase], 1)
    if dev.type != "cpu":
        params = params.pin_memory().to(dev, non_blocking=True)
    theta, contrast, brightness = params[:, :6].reshape(b, 2, 3), params[:, 6], params[:, 7]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * contrast[:, None, None, None] + brightness[:, None, None, None]
    if cfg.erase_p > 0:
        hw, xy, on = params[:, 8:10], params[:, 10:12], params[:, 12] > 0.5
        ar = torch.arange(s, dtype=torch.float32, device=dev)
        inside_y = (ar[None] >= xy[:, 1:2]) & (ar[None] < xy[:, 1:2] + hw[:, 1:2])
        inside_x = (ar[None] >= xy[:, 0:1]) & (ar[None] < xy[:, 0:1] + hw[:, 0:1])
        box = inside_y[:, :, None] & inside_x[:, None, :] & on[:, None, None]
        x = x.masked_fill(box[:, None], 0.0)
    return x.contiguous(memory_format=torch.channels_last)


def epoch_batches(xs: torch.Tensor, ys: torch.Tensor, batch_size: int, steps: int, gen: torch.Generator,
                  augment_with: TrainConfig | None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """One epoch of ``(step, x, y)`` batches for SGD, shared by the trainer and the federated client: a fresh
    permutation of the uint8 faces ``xs`` drawn from ``gen``, each batch normalized for the net and, with
    ``augment_with``, augmented by its settings. Every random number comes from ``gen``, drawn as each batch is
    asked for, so a caller's own draws between batches keep their place in the stream."""
    perm = torch.randperm(len(xs), generator=gen).to(xs.device)
    degrade_p = getattr(augment_with, "degrade_p", 0.0)
    for step in range(steps):
        idx = perm[step * batch_size:(step + 1) * batch_size]
        faces = xs[idx]
        if degrade_p > 0:  # on the uint8 faces, as a camera degrades them; numpy's draws seeded from ``gen``
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            faces = torch.from_numpy(degrade_batch(faces.cpu().numpy(), degrade_p, rng)).to(xs.device)
        x = to_input(faces)
        yield step, (x if augment_with is None else augment(x, augment_with, gen)), ys[idx]


def sgd_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on ``loss``'s gradients (gradients cleared first)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def mix_pairs(x: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup: each image blended with a shuffled partner, one Beta(alpha, alpha) weight per batch.

    Returns (mixed batch, partner order, weight of the original); targets are mixed with the same weight.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    # Beta sampling draws from torch's global generator; the partner order comes from ``gen``
    order = torch.randperm(x.shape[0], generator=gen).to(x.device, non_blocking=True)
    return x * lam + x[order] * (1 - lam), order, lam


# --------------------------------------------------------------------------- metrics


def predict_probs(model: nn.Module, images: np.ndarray, batch_size: int = 512, tta: bool = False) -> np.ndarray:
    """(N, 7) probabilities for uint8 faces already at the model's input size; ``tta`` adds the mirror."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = to_input(torch.from_numpy(images[i:i + batch_size]).to(device))
            p = model(x)
            if tta:
                p = (p + model(torch.flip(x, dims=[3]))) / 2
            out.append(p.float().cpu().numpy())
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


def load_teachers(paths: list[Path], device: torch.device, option: str = "distill_from") -> list[nn.Module]:
    """Teacher nets for distillation: project ``.pt`` files, or a run's ``training_state.pt`` (its best
    epoch so far, so a student can learn from a teacher whose run is still going or was stopped).
    ``option``: the setting that named them, for the errors."""
    from ..emotion.checkpoint import load_checkpoint
    from ..errors import ModelFileError

    teachers = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{option}: {path} does not exist; pass trained .pt files or training_state.pt")
        if path.name == "training_state.pt":
            state = _read_state(path)
            cfg = state.get("config") or {}
            weights = state.get("best_state") or state.get("ema") or state.get("model")
            try:
                net = build_emotion_net(cfg["architecture"], **cfg.get("net", {}))
                net.load_state_dict(weights)
            except Exception as e:
                raise ConfigError(f"{option}: {path} holds no usable weights ({type(e).__name__}: "
                                  f"{str(e)[:150]})") from e
        else:
            try:
                net = load_checkpoint(path).model
            except ModelFileError as e:
                raise ConfigError(f"{option}: {e}") from e
        teachers.append(net.to(device).eval())
    return teachers


def _teacher_logits(teachers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Mean of the teachers' logits on the student's (augmented) batch, resized to each teacher's input."""
    out = []
    with torch.no_grad():
        for t in teachers:
            s = int(getattr(t, "input_size", x.shape[-1]))
            xt = x if x.shape[-1] == s else F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            out.append(t.logits(xt).float())
    return torch.stack(out).mean(0)


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


def data_fingerprint(*arrays: np.ndarray | None) -> str:
    """A short hash of the training and validation arrays: a checkpoint resumes only on the same data."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle/EOF errors all mean the same thing here
        raise ConfigError(f"training checkpoint {path} is unreadable ({type(e).__name__}); delete it to start "
                          "the run over") from e


def _load_training_state(path: Path, cfg: TrainConfig, fingerprint: str) -> dict[str, Any]:
    state = _read_state(path)
    # options added to TrainConfig after the checkpoint was written take their defaults
    saved = {**asdict(TrainConfig()), **(state.get("config") or {})}
    if state.get("format") != TRAINING_STATE_FORMAT or saved != asdict(cfg):
        raise ConfigError(f"training checkpoint {path} belongs to another configuration; resume with the run's "
                          "own arguments (--resume RUN_DIR) or delete it to start over")
    if state.get("data") != fingerprint:
        raise ConfigError(f"training checkpoint {path} was trained on other data (fingerprint {state.get('data')}, "
                          f"now {fingerprint}); use the same --data and --limit, or delete it to start over")
    return state


def _start_from(model: nn.Module, path: Path, cfg: TrainConfig, device: torch.device) -> None:
    """Load ``path``'s weights into ``model`` (fine-tuning): the same architecture and options, or a ConfigError
    that names what the checkpoint holds."""
    (net,) = load_teachers([path], device, "init_from")
    try:
        model.load_state_dict(net.state_dict())
    except RuntimeError:
        held = dict(getattr(net, "config", {}))
        raise ConfigError(f"init_from: {path} holds a {type(net).__name__} with {held}, not the {cfg.architecture} "
                          f"with {dict(cfg.net)} asked for; pass the checkpoint's own --arch and --net") from None


class _Ema:
    """The exponential moving average of every float tensor of a model's state (weights and batch-norm
    statistics) kept in ``ema``; integer buffers are copied as they are."""

    def __init__(self, ema: nn.Module, model: nn.Module) -> None:
        pairs = list(zip(ema.state_dict().values(), model.state_dict().values(), strict=True))
        self.ema_f = [e for e, m in pairs if e.dtype.is_floating_point]
        self.model_f = [m for e, m in pairs if e.dtype.is_floating_point]
        self.ints = [(e, m) for e, m in pairs if not e.dtype.is_floating_point]

    def update(self, decay: float) -> None:
        with torch.no_grad():
            torch._foreach_mul_(self.ema_f, decay)
            torch._foreach_add_(self.ema_f, self.model_f, alpha=1 - decay)
            for e, m in self.ints:
                e.copy_(m)


@dataclass
class _Fit:
    """What one training run carries from epoch to epoch (and what its per-epoch checkpoint holds)."""

    model: nn.Module
    ema: nn.Module | None
    teachers: list[nn.Module]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.OneCycleLR
    loss_fn: nn.Module
    autocast: torch.autocast
    gen: torch.Generator
    device: torch.device
    xs: torch.Tensor
    ys: torch.Tensor
    vx: np.ndarray | None
    steps_per_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)
    start: int = 1  # the first epoch still to run
    spent: float = 0.0  # seconds spent by the epochs already run

    @property
    def judged(self) -> nn.Module:
        """The net that is validated and kept: the EMA when there is one."""
        return self.ema if self.ema is not None else self.model


def _prepare(cfg: TrainConfig, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None) -> _Fit:
    """Seeds, the net (and its EMA and teachers), the data on the device, optimizer, schedule and loss: in this
    order, which decides every random draw of the run."""
    device = cfg.torch_device()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_emotion_net(cfg.architecture, **cfg.net).to(device, memory_format=torch.channels_last)
    if cfg.init_from:
        _start_from(model, Path(cfg.init_from), cfg, device)
    size = model.input_size
    xs = torch.from_numpy(resize_faces(train_x, size)).to(device)
    ys = torch.from_numpy(np.asarray(train_y, np.int64)).to(device)
    vx = resize_faces(val_x, size) if val_x is not None and len(val_x) else None
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    teachers = load_teachers(cfg.teacher_paths, device)
    opt = sgd_optimizer(model, cfg.lr, cfg.weight_decay)
    steps_per_epoch = max(len(xs) // cfg.batch_size, 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.15, div_factor=20, final_div_factor=200)
    weights = _class_weights(train_y, cfg.class_weighting)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device),
                                  label_smoothing=cfg.label_smoothing)
    # bfloat16 on a GPU: the nets are small, so the step is launch-bound and the loss stays float32
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    return _Fit(model, ema, teachers, opt, sched, loss_fn, autocast, gen, device, xs, ys, vx, steps_per_epoch)


def _restore(fit: _Fit, state: dict[str, Any]) -> None:
    """Continue from a per-epoch checkpoint: weights, optimizer, schedule, random generators, history, best."""
    fit.model.load_state_dict(state["model"])
    if fit.ema is not None:
        fit.ema.load_state_dict(state["ema"])
    fit.opt.load_state_dict(state["optimizer"])
    fit.sched.load_state_dict(state["scheduler"])
    fit.gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if fit.device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], fit.device)
    fit.history, fit.spent = list(state["history"]), float(state["seconds"])
    fit.best = (float(state["best_acc"]), int(state["best_epoch"]), state["best_state"])
    fit.start = int(state["epoch"]) + 1


def _save_state(fit: _Fit, cfg: TrainConfig, fingerprint: str, epoch: int, seconds: float, path: Path) -> None:
    """The per-epoch checkpoint ``_restore`` continues from."""
    device = fit.device
    state = {"format": TRAINING_STATE_FORMAT, "config": asdict(cfg), "data": fingerprint, "epoch": epoch,
             "model": fit.model.state_dict(), "ema": fit.ema.state_dict() if fit.ema is not None else {},
             "optimizer": fit.opt.state_dict(), "scheduler": fit.sched.state_dict(), "generator": fit.gen.get_state(),
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
             "history": fit.history, "seconds": seconds,
             "best_acc": fit.best[0], "best_epoch": fit.best[1], "best_state": fit.best[2]}
    # atomic: a kill during the write leaves the previous epoch's checkpoint intact
    atomic_write(path, functools.partial(torch.save, state))


def _batch_loss(fit: _Fit, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss) of one augmented batch: mixup, label loss, and the teachers' share when distilling."""
    order, lam = None, 1.0
    if cfg.mixup > 0:
        x, order, lam = mix_pairs(x, cfg.mixup, fit.gen)
    with fit.autocast:
        logits = fit.model.logits(x).float()
    loss = fit.loss_fn(logits, y) if order is None else \
        lam * fit.loss_fn(logits, y) + (1 - lam) * fit.loss_fn(logits, y[order])
    if fit.teachers:
        with fit.autocast:
            soft = _teacher_logits(fit.teachers, x)
        t = cfg.distill_temperature
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(soft / t, 1), log_target=True,
                      reduction="batchmean") * t * t
        loss = cfg.distill_weight * kd + (1 - cfg.distill_weight) * loss
    return logits, loss


def _train_epoch(fit: _Fit, cfg: TrainConfig, epoch: int, ema: _Ema | None, progress: bool) -> dict[str, float]:
    """One epoch of SGD; its row of the history (epoch, train loss and accuracy, learning rate)."""
    from tqdm import tqdm

    fit.model.train()
    tot_loss = torch.zeros((), device=fit.device)
    tot_ok = torch.zeros((), device=fit.device)
    seen, spe = 0, fit.steps_per_epoch
    bar = tqdm(epoch_batches(fit.xs, fit.ys, cfg.batch_size, spe, fit.gen, cfg), total=spe,
               desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, disable=not progress, mininterval=1.0)
    for step, x, y in bar:
        logits, loss = _batch_loss(fit, cfg, x, y)
        sgd_step(fit.opt, loss)
        fit.sched.step()
        if ema is not None:
            ema.update(min(cfg.ema_decay, (1 + step + epoch * spe) / (10 + step + epoch * spe)))
        tot_loss += loss.detach() * len(y)
        tot_ok += (logits.argmax(1) == y).sum()
        seen += len(y)
        if progress and step % 50 == 0:  # reading the GPU's numbers waits for it: not every step
            bar.set_postfix(loss=f"{float(tot_loss) / seen:.3f}", acc=f"{float(tot_ok) / seen:.3f}")
    return {"epoch": epoch, "train_loss": float(tot_loss) / seen, "train_acc": float(tot_ok) / seen,
            "lr": fit.sched.get_last_lr()[0]}


def _validate(fit: _Fit, row: dict[str, float], val_y: np.ndarray | None, epoch: int) -> None:
    """Add the validation accuracy and loss to ``row``; keep the weights when the accuracy is the best yet."""
    if fit.vx is None:
        return
    judged = fit.judged
    probs = predict_probs(judged, fit.vx)
    row["val_acc"] = float((probs.argmax(1) == val_y).mean())
    row["val_loss"] = probs_cross_entropy(probs, val_y)
    if row["val_acc"] > fit.best[0]:
        fit.best = (row["val_acc"], epoch, {k: v.detach().cpu().clone() for k, v in judged.state_dict().items()})


def _print_to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def train(cfg: TrainConfig, train_x: np.ndarray, train_y: np.ndarray,
          val_x: np.ndarray | None = None, val_y: np.ndarray | None = None,
          progress: bool = True, log: Any = None, checkpoint: Path | None = None) -> TrainResult:
    """Fit ``cfg.architecture`` on (train_x, train_y); keep the epoch best on the validation set.

    Images are uint8 (N, 48, 48) FER frames (resized here to the net's input). Without a
    validation set the last epoch is kept. With ``checkpoint``, the whole training state (weights,
    optimizer, EMA, schedule, random generators, history, best epoch) is written there after every
    epoch, and a run that finds its own checkpoint continues from it exactly: a session that is
    killed loses at most one epoch, and the result equals an uninterrupted run's.
    """
    say = log or _print_to_stderr
    cfg.validate()
    _set_threads(cfg.threads)
    fit = _prepare(cfg, train_x, train_y, val_x)
    fingerprint = data_fingerprint(train_x, train_y, val_x, val_y) if checkpoint is not None else ""
    if checkpoint is not None and Path(checkpoint).exists():
        _restore(fit, _load_training_state(Path(checkpoint), cfg, fingerprint))
        say(f"resumed from {checkpoint} after epoch {fit.start - 1}")
    ema = _Ema(fit.ema, fit.model) if fit.ema is not None else None
    t0 = time.perf_counter() - fit.spent
    for epoch in range(fit.start, cfg.epochs + 1):
        row = _train_epoch(fit, cfg, epoch, ema, progress)
        row["seconds"] = time.perf_counter() - t0
        _validate(fit, row, val_y, epoch)
        fit.history.append(row)
        if checkpoint is not None:
            _save_state(fit, cfg, fingerprint, epoch, row["seconds"], Path(checkpoint))
        say(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    final = fit.judged  # still on the training device: evaluating it there is fast
    best_epoch = cfg.epochs
    if fit.best[2] is not None:
        final.load_state_dict(fit.best[2])
        best_epoch = fit.best[1]
    final.eval()
    return TrainResult(final, cfg, fit.history, best_epoch, {}, time.perf_counter() - t0)
