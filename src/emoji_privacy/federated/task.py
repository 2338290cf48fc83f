"""What a federated run trains and how one robot trains it: no Flower in here.

The model is built by name exactly as the centralized trainer builds it (``emotion_nets``) and
its float tensors (weights and batch-norm statistics, in ``state_dict`` order) are what travels.
Local training reuses the centralized trainer's input normalization and batched augmentation,
so a federated model and a centralized one differ only in how the gradient steps are combined.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import EMOTIONS
from ..config import from_mapping
from ..emotion.nets import EMOTION_NETS, build_emotion_net
from ..errors import ConfigError
from ..training.core import (
    TrainConfig,
    epoch_batches,
    predict_probs,
    probs_cross_entropy,
    resize_faces,
    sgd_optimizer,
    sgd_step,
)
from ..training.data import DataError, load_labelled_folder

__all__ = ["FedConfig", "STRATEGIES", "new_model", "get_weights", "set_weights", "load_client_data",
           "local_train", "evaluate_weights", "round_lr", "class_log_prior", "add_prior_to_output", "trainable_mask",
           "batchnorm_mask", "variance_mask", "frozen_mask", "clip_update", "load_initial_weights"]

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedbn")
TRAIN_LAYERS = ("all", "head")


@dataclass
class FedConfig:
    """One federated run. Field names with ``-`` instead of ``_`` are Flower run-config keys."""

    architecture: str = "paper42"
    net: str = '{"hidden": 256}'  # JSON object of architecture options (run config holds only scalars)
    num_rounds: int = 20
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05  # client SGD learning rate in round 1; cosine decay to lr * lr_final over the rounds
    lr_final: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = True  # the centralized trainer's random warp/flip/photometric/erasing
    strategy: str = "fedavg"  # fedavg | fedprox | fedavgm | fedbn (each robot keeps its own batch norm)
    proximal_mu: float = 0.01  # fedprox
    # logit adjustment against label skew (tau; 0 = off): each robot fits softmax(logits + tau * log its own
    # class prior), so no robot teaches the shared model its own class mix; the server adds tau * log of its
    # evaluation split's prior to the output bias of the model it evaluates and exports (docs/federated.md)
    logit_adjust: float = 0.0
    # where the global model starts: "" = random weights (seed); a .pt (path, or a name in models/) of the same
    # architecture, e.g. pretrained on the server's public faces (partition --public, then centralized)
    init: str = ""
    # what the robots train: all | head (the output layer alone; features and batch norm stay as the server sent
    # them, so under DP the noise covers a few thousand numbers instead of ~0.9 M: docs/federated.md)
    train_layers: str = "all"
    server_momentum: float = 0.9  # fedavgm
    server_lr: float = 1.0  # fedavgm
    min_clients: int = 2  # clients a round waits for (all of them in the benchmarks)
    fraction_fit: float = 1.0
    secagg: bool = False  # SecAgg+: the server only sees the sum of masked updates
    secagg_shares: int = 0  # neighbours each client secret-shares with, 3 or more; 0 = all clients
    secagg_threshold: float = 0.7  # fraction of the shares needed to unmask (tolerates dropouts)
    # SecAgg+ quantizes each value (times num_examples / max_weight) in [-clip, clip] to quantization
    # levels; the sum of all clients' levels must stay below 2^32, so clients * levels < 2^32.
    # 128 covers batch-norm running variances (up to ~80 measured); 2^26 levels keep the step at 3.8e-6.
    secagg_clip: float = 128.0
    secagg_quantization: int = 2 ** 26
    secagg_max_weight: float = 5000.0  # at least the largest client's number of examples
    dp: bool = False  # client-side fixed clipping + server Gaussian noise (user-level DP)
    dp_noise: float = 0.1  # noise multiplier z (std = z * clip / clients)
    dp_clip: float = 1.0  # L2 clipping norm of each client's update of the trained weights
    # the batch-norm running statistics are clipped to their own norm and noised apart (a second release
    # each round, counted by the accountant), so they do not eat the weights' clipping budget
    dp_clip_stats: float = 1.0
    dp_delta: float = 1e-3
    data: str = ""  # FER2013 for the server's PublicTest/PrivateTest evaluation ("" = default location)
    partitions: str = ""  # simulation: folder of client_<i>/ folders, client i = partition-id i
    eval_limit: int = 0  # evaluate on the first N PublicTest faces per round (0 = all 3589)
    out: str = "runs"
    name: str = "federated"
    export: bool = False  # also copy <name>.pt into models/
    traffic_log: str = ""  # JSON lines of bytes in/out per client message ("" = not logged)
    seed: int = 0
    threads: int = 1  # torch threads per client (a simulation runs one client per core)
    # the server's state (global weights, round, strategy state, log), written after every round; a run that
    # finds it continues after its last round (``simulate --resume RUN_DIR`` sets it)
    checkpoint: str = ""

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> FedConfig:
        """Defaults overridden by a Flower run config (keys with ``-`` or ``_``), validated."""
        return from_mapping(cls, run_config)

    def to_run_config(self) -> dict[str, Any]:
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    @property
    def sampled_clients(self) -> int:
        """Clients trained each round: ``fraction_fit`` of the ``min_clients`` the round waits for."""
        return max(1, int(self.min_clients * self.fraction_fit))

    def net_options(self) -> dict[str, Any]:
        try:
            net = json.loads(self.net) if self.net else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"net={self.net!r} is not JSON ({e}); e.g. '{{\"hidden\": 256}}'") from None
        if not isinstance(net, dict):
            raise ConfigError(f"net={self.net!r} must be a JSON object")
        return net

    def validate(self) -> None:
        if self.architecture not in EMOTION_NETS:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {', '.join(EMOTION_NETS)}")
        self.net_options()
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.train_layers not in TRAIN_LAYERS:
            raise ConfigError(f"train-layers must be one of {', '.join(TRAIN_LAYERS)}, not {self.train_layers!r}")
        if self.num_rounds < 1 or self.local_epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError("num-rounds >= 1, local-epochs >= 1, batch-size >= 2 and lr > 0 are required")
        if not 0 <= self.logit_adjust <= 2:
            raise ConfigError(f"logit-adjust must be in [0, 2] (1 = the full class prior), not {self.logit_adjust}")
        if self.min_clients < 1 or not 0 < self.fraction_fit <= 1:
            raise ConfigError("min-clients >= 1 and 0 < fraction-fit <= 1 are required")
        if self.secagg and (self.min_clients < 2 or not 0 < self.secagg_threshold <= 1):
            raise ConfigError("SecAgg+ needs min-clients >= 2 and 0 < secagg-threshold <= 1")
        if self.secagg and not 0 < self.secagg_quantization * self.min_clients < 2 ** 32:
            raise ConfigError(f"secagg-quantization {self.secagg_quantization} x {self.min_clients} clients "
                              f"overflows SecAgg+'s 2^32 modulus; use at most {2 ** 32 // self.min_clients - 1}")
        if self.dp and (self.dp_noise <= 0 or self.dp_clip <= 0 or self.dp_clip_stats <= 0
                        or not 0 < self.dp_delta < 1):
            raise ConfigError("DP needs dp-noise > 0, dp-clip > 0, dp-clip-stats > 0 and 0 < dp-delta < 1")
        if self.dp and self.strategy == "fedavgm":
            raise ConfigError("dp with strategy fedavgm: the noise is added after the server momentum, which would "
                              "carry un-noised updates into later rounds; use fedavg, fedprox or fedbn with dp")

    def train_config(self) -> TrainConfig:
        """The centralized trainer's config with the same model and local recipe (for metadata)."""
        return TrainConfig(architecture=self.architecture, net=self.net_options(),
                           epochs=self.num_rounds * self.local_epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, label_smoothing=self.label_smoothing, ema_decay=0.0,
                           seed=self.seed, threads=self.threads)


def new_model(cfg: FedConfig) -> nn.Module:
    torch.manual_seed(cfg.seed)  # every party starts from the same weights
    return build_emotion_net(cfg.architecture, **cfg.net_options())


def _shared_keys(model: nn.Module) -> list[str]:
    # Integer buffers (BN's num_batches_tracked) are bookkeeping, not model state worth averaging.
    return [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]


def trainable_mask(model: nn.Module) -> list[bool]:
    """For each array that travels: True for a trained weight, False for a batch-norm running statistic."""
    params = {k for k, _ in model.named_parameters()}
    return [k in params for k in _shared_keys(model)]


def head_parameters(model: nn.Module) -> set[str]:
    """Names of the output layer's parameters: those of the model's last ``nn.Linear``."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ConfigError(f"train-layers=head: {type(model).__name__} has no linear output layer")
    return {f"{last[-1]}.{k}" for k, _ in model.get_submodule(last[-1]).named_parameters()}


def frozen_mask(model: nn.Module, train_layers: str) -> list[bool]:
    """For each array that travels: True when the robots never change it (``train-layers=head``: everything but
    the output layer, batch-norm statistics included). The server keeps those as it sent them and adds no DP
    noise to them: they never depend on a robot's data."""
    if train_layers == "all":
        return [False] * len(_shared_keys(model))
    head = head_parameters(model)
    return [k not in head for k in _shared_keys(model)]


def load_initial_weights(model: nn.Module, init: str) -> None:
    """Start ``model`` from the ``.pt`` named by ``init`` (a path or a name in models/), which must be the same
    architecture with the same options."""
    from ..emotion.checkpoint import load_checkpoint

    ckpt = load_checkpoint(init)  # resolves a name in models/ as the listener does
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ckpt.model.state_dict().items()}
    if have != got:
        raise ConfigError(f"init={init}: that model ({ckpt.architecture}) does not have this run's architecture "
                          "and options; start from a .pt trained with the same architecture and net options")
    model.load_state_dict(ckpt.model.state_dict())


def batchnorm_mask(model: nn.Module) -> list[bool]:
    """For each array that travels: True when it belongs to a batch-norm layer (FedBN keeps those local)."""
    bn = {name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    return [k.rsplit(".", 1)[0] in bn for k in _shared_keys(model)]


def variance_mask(model: nn.Module) -> list[bool]:
    """For each array that travels: True for a batch-norm running variance (DP noise must not leave it negative)."""
    return [k.endswith("running_var") for k in _shared_keys(model)]


def clip_update(weights: list[np.ndarray], reference: list[np.ndarray], trainable: list[bool], clip_weights: float,
                clip_stats: float) -> tuple[list[np.ndarray], float, float]:
    """Client-level DP clipping: the update (``weights - reference``) of the trained weights scaled to an L2 norm
    of at most ``clip_weights``, and that of the batch-norm statistics to at most ``clip_stats``, each on its own.

    Returns the clipped weights and the two norms before clipping (what a user needs to choose the norms).
    """
    norms = {}
    for group in (True, False):
        sq = sum(float(((w.astype(np.float64) - r) ** 2).sum())
                 for w, r, t in zip(weights, reference, trainable, strict=True) if t is group)
        norms[group] = math.sqrt(sq)
    scale = {True: min(1.0, clip_weights / max(norms[True], 1e-12)),
             False: min(1.0, clip_stats / max(norms[False], 1e-12))}
    clipped = [(r + (w - r) * scale[t]).astype(np.float32) for w, r, t in zip(weights, reference, trainable,
                                                                           strict=True)]
    return clipped, norms[True], norms[False]


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """The float tensors that travel, as float32 arrays in state_dict order."""
    sd = model.state_dict()
    return [sd[k].detach().cpu().numpy().astype(np.float32, copy=True) for k in _shared_keys(model)]


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    keys = _shared_keys(model)
    if len(weights) != len(keys):
        raise ConfigError(f"received {len(weights)} arrays for a model with {len(keys)}: the server and this "
                          f"client run different architectures; use the same run config on both")
    sd = model.state_dict()
    for k, w in zip(keys, weights, strict=True):
        if tuple(w.shape) != tuple(sd[k].shape):
            raise ConfigError(f"array {k}: shape {tuple(w.shape)} received, {tuple(sd[k].shape)} expected; "
                              f"the server and this client run different architectures")
        sd[k].copy_(torch.from_numpy(np.asarray(w)).to(sd[k].dtype))


_DATA_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def load_client_data(folder: str | os.PathLike, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A robot's labelled crops (``<folder>/<class>/*.jpg|png``) resized to the net's input."""
    path = Path(folder)
    key = f"{path.resolve()}|{size}"
    if key not in _DATA_CACHE:
        if not path.is_dir():
            raise DataError(f"client data folder {path} does not exist; make client folders with "
                            f"`python -m emoji_privacy.federated partition` or point data-dir at <class>/ folders")
        data = load_labelled_folder(path)
        _DATA_CACHE[key] = (resize_faces(data.images, size), data.labels)
    return _DATA_CACHE[key]


def class_log_prior(labels: np.ndarray) -> np.ndarray:
    """log of each class's share of ``labels``; a class with no face counts as half a face (a finite floor)."""
    counts = np.maximum(np.bincount(np.asarray(labels, np.int64), minlength=len(EMOTIONS)).astype(np.float64), 0.5)
    return np.log(counts / counts.sum())


def add_prior_to_output(model: nn.Module, log_prior: np.ndarray, tau: float) -> None:
    """Add ``tau * log_prior`` to the output layer's bias: a model fitted prior-free then predicts with that prior."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias += torch.as_tensor(tau * log_prior, dtype=last.bias.dtype)


def round_lr(cfg: FedConfig, server_round: int) -> float:
    """Client learning rate of a round: cosine from ``lr`` to ``lr * lr_final``."""
    t = (server_round - 1) / max(cfg.num_rounds - 1, 1)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))))


def local_train(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: FedConfig, lr: float, seed: int,
                proximal_mu: float = 0.0) -> dict[str, float]:
    """``cfg.local_epochs`` of SGD on this client's faces; FedProx's proximal term when mu > 0."""
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        # dropout draws from torch's global generator: seeded from the round's seed too, so a round is the same
        # whichever process runs it (a resumed run continues exactly); the caller's generator is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _local_epochs(model, x, y, cfg, lr, seed, proximal_mu)
    finally:
        torch.set_num_threads(threads)
        for p in model.parameters():  # train-layers=head froze the others; the model leaves whole
            p.requires_grad_(True)


def _local_epochs(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: FedConfig, lr: float, seed: int,
                  proximal_mu: float) -> dict[str, float]:
    tcfg = cfg.train_config()
    gen = torch.Generator().manual_seed(seed)
    trained = head_parameters(model) if cfg.train_layers == "head" else None
    for name, p in model.named_parameters():
        p.requires_grad_(trained is None or name in trained)  # SGD skips a parameter without a gradient
    global_params = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    opt = sgd_optimizer(model, lr, cfg.weight_decay, cfg.momentum)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    # with logit-adjust the loss sees this robot's class prior added to the logits, the model does not
    shift = torch.from_numpy(cfg.logit_adjust * class_log_prior(y)).float() if cfg.logit_adjust else None
    xs, ys = torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.int64))
    bs = min(cfg.batch_size, len(xs))
    steps = max(len(xs) // bs, 1)  # drop the ragged last batch: BN needs more than one face
    model.train()
    if trained is not None:  # frozen features: batch norm normalizes with the statistics it was sent
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    tot_loss = tot_ok = seen = 0.0
    for _ in range(cfg.local_epochs):
        for _, xb, yb in epoch_batches(xs, ys, bs, steps, gen, tcfg if cfg.augment else None):
            logits = model.logits(xb)
            if shift is not None:
                logits = logits + shift
            loss = loss_fn(logits, yb)
            total = loss
            if proximal_mu > 0:
                total = loss + proximal_mu / 2 * sum(((p - g) ** 2).sum() for p, g in
                                                     zip(model.parameters(), global_params, strict=True))
            sgd_step(opt, total)
            tot_loss += loss.item() * len(yb)
            tot_ok += float((logits.argmax(1) == yb).sum())
            seen += len(yb)
    model.eval()
    return {"train_loss": tot_loss / max(seen, 1), "train_acc": tot_ok / max(seen, 1), "steps": float(steps)}


def evaluate_weights(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(cross-entropy, accuracy) of the model on faces already at its input size."""
    probs = predict_probs(model, images)
    if not len(labels):
        return float("nan"), float("nan")
    return probs_cross_entropy(probs, labels), float((probs.argmax(1) == labels).mean())
