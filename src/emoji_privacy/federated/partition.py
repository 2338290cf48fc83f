"""Split FER2013 ``Training`` into client folders, IID or label-skewed, reproducibly by seed.

Each client gets ``<out>/client_<i>/<class>/Training_<index>.png`` (lossless; ``index`` is the
face's position in ``Training``), the layout a robot's own labelled crops have, so simulated
clients and real robots read their data the same way. Label skew follows the usual recipe:
for every class, the share of each client is drawn from Dirichlet(alpha); smaller alpha, more skew.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import EMOTIONS
from ..errors import ConfigError

__all__ = ["hold_out_public", "partition_indices", "label_skew", "write_partitions"]

MIN_CLIENT_SIZE = 10  # redraw a Dirichlet split that leaves a client with fewer faces than this


def _stratified(labels: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices of ``pool`` drawn so that they keep the pool's class balance (sorted)."""
    classes = np.unique(labels[pool])
    order = np.concatenate([rng.permutation(pool[labels[pool] == c]) for c in classes])
    ranks = np.concatenate([np.arange((labels[pool] == c).sum()) / (labels[pool] == c).sum() for c in classes])
    return np.sort(order[np.argsort(ranks, kind="stable")[:count]])


def hold_out_public(labels: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(public, rest): ``count`` faces drawn class-stratified as the server's public data, and the others.

    Why: the server can pretrain on faces it may use openly, and a fleet under differential privacy then starts
    from a useful model instead of random weights, which DP noise keeps it from leaving (docs/federated.md: what
    this measured). The public faces are never given to a client, so the robots' data and the server's stay
    disjoint.
    """
    if not 0 < count < len(labels):
        raise ConfigError(f"--public must be between 1 and {len(labels) - 1} faces, not {count}")
    public = _stratified(labels, np.arange(len(labels)), count, np.random.default_rng([seed, 1]))
    return public, np.setdiff1d(np.arange(len(labels)), public)


def partition_indices(labels: np.ndarray, num_clients: int, alpha: float | None = None, total: int = 0,
                      seed: int = 0, pool: np.ndarray | None = None) -> list[np.ndarray]:
    """Indices into ``labels`` for each client: IID when ``alpha`` is None, else Dirichlet(alpha) per class.

    ``pool``: the indices to share out (default: all). ``total`` > 0 first draws that many faces
    (class-stratified) from them.
    """
    if num_clients < 1:
        raise ConfigError("--clients must be at least 1")
    if alpha is not None and alpha <= 0:
        raise ConfigError(f"--alpha must be > 0 (smaller = more label skew), not {alpha}")
    rng = np.random.default_rng(seed)
    pool = np.arange(len(labels)) if pool is None else np.sort(np.asarray(pool, np.int64))
    if total:
        if total > len(pool):
            raise ConfigError(f"asked for {total} faces but the split has {len(pool)}")
        pool = _stratified(labels, pool, total, rng)  # the subset keeps FER2013's class balance
    if len(pool) < num_clients * MIN_CLIENT_SIZE:
        raise ConfigError(f"{len(pool)} faces cannot give {num_clients} clients {MIN_CLIENT_SIZE} faces each")
    if alpha is None:
        return [np.sort(p) for p in np.array_split(rng.permutation(pool), num_clients)]
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c in np.unique(labels[pool]):
            idx = rng.permutation(pool[labels[pool] == c])
            share = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(share)[:-1] * len(idx)).astype(int)
            for i, chunk in enumerate(np.split(idx, cuts)):
                parts[i].extend(chunk.tolist())
        if min(len(p) for p in parts) >= MIN_CLIENT_SIZE:
            return [np.sort(np.array(p, np.int64)) for p in parts]
    raise ConfigError(f"alpha={alpha} keeps leaving a client with under {MIN_CLIENT_SIZE} faces; "
                      f"use more faces, fewer clients or a larger alpha")


def label_skew(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each client's class mix and the pooled mix (0 = IID)."""
    k = len(EMOTIONS)
    pooled = np.asarray(labels)[np.concatenate(parts)] if parts else np.zeros(0, np.int64)
    g = np.bincount(pooled, minlength=k) / max(len(pooled), 1)
    tvs = [0.5 * np.abs(np.bincount(labels[p], minlength=k) / max(len(p), 1) - g).sum() for p in parts]
    return float(np.mean(tvs)) if tvs else 0.0


def write_partitions(images: np.ndarray, labels: np.ndarray, parts: list[np.ndarray], out: Path,
                     info: dict[str, Any] | None = None, public: np.ndarray | None = None) -> dict[str, Any]:
    """``out/client_<i>/<class>/Training_<index>.png`` per client and ``out/partition.json``; the ``public``
    faces (``hold_out_public``) go to ``out/public/client_0/`` (one pool: ``centralized --partitions out/public``
    pretrains on them)."""
    out = Path(out)
    if out.exists() and (any(out.glob("client_*")) or (out / "public").exists()):
        shutil.rmtree(out)  # a re-run replaces the split instead of mixing two
    summary: dict[str, Any] = dict(info or {})

    def write(root: Path, idx: np.ndarray) -> dict[str, Any]:
        for c in EMOTIONS:
            (root / c).mkdir(parents=True, exist_ok=True)
        for j in idx:
            cv2.imwrite(str(root / EMOTIONS[labels[j]] / f"Training_{int(j)}.png"), images[j])
        return {"folder": str(root.relative_to(out)), "faces": int(len(idx)),
                "per_class": np.bincount(labels[idx], minlength=len(EMOTIONS)).tolist()}

    summary["clients"] = [write(out / f"client_{i}", idx) for i, idx in enumerate(parts)]
    if public is not None:
        summary["public_data"] = write(out / "public" / "client_0", public)
    summary["classes"] = list(EMOTIONS)
    summary["label_skew_tv"] = round(label_skew(labels, parts), 4)
    (out / "partition.json").write_text(json.dumps(summary, indent=1))
    return summary
