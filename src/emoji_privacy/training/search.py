"""k-fold cross-validation on FER2013 Training, with the random and grid hyper-parameter search of the
federated paper."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..markdown import markdown_table
from .core import TrainConfig, evaluate_model, train

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
                   progress: bool = True, work_dir: Path | None = None) -> list[dict[str, Any]]:
    """Mean and spread of held-out-fold accuracy and macro-F1 for each config (Training only).

    With ``work_dir`` the search survives being killed: each finished fit is appended to
    ``folds.jsonl`` there and the fit under way checkpoints every epoch (``fold.pt``), so running
    it again with the same arguments skips finished fits and resumes the unfinished one.
    """
    from tqdm import tqdm

    if k < 2:
        raise ConfigError("--cv needs at least 2 folds")
    folds = _stratified_folds(y, k, seed)
    done: dict[tuple[int, int], dict[str, Any]] = {}
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        log_path = work_dir / "folds.jsonl"
        if log_path.exists():
            for line in log_path.read_text().splitlines():
                r = json.loads(line)
                if r["trial"] >= len(configs) or r.get("config") != asdict(configs[r["trial"]]):
                    raise ConfigError(f"{log_path} belongs to another search; resume with the same arguments or "
                                      "use a new --out folder")
                done[(r["trial"], r["fold"])] = r
    rows = []
    bar = tqdm(total=len(configs) * k, initial=len(done), desc="cross-validation", unit="fit", disable=not progress)
    for i, cfg in enumerate(configs):
        accs, f1s = [], []
        for f in range(k):
            if (i, f) not in done:
                tr, va = folds != f, folds == f
                ckpt = work_dir / "fold.pt" if work_dir is not None else None
                res = train(cfg, x[tr], y[tr], None, None, progress=False, log=lambda s: None, checkpoint=ckpt)
                rep = evaluate_model(res.model, x[va], y[va])
                done[(i, f)] = {"trial": i, "fold": f, "config": asdict(cfg), "accuracy": rep["accuracy"],
                                "macro_f1": rep["macro_f1"]}
                if work_dir is not None:
                    with open(work_dir / "folds.jsonl", "a") as fh:
                        fh.write(json.dumps(done[(i, f)]) + "\n")
                    ckpt.unlink(missing_ok=True)  # the next fit starts fresh
                bar.update()
            accs.append(done[(i, f)]["accuracy"])
            f1s.append(done[(i, f)]["macro_f1"])
        rows.append({"trial": i, "config": {k2: getattr(cfg, k2) for k2 in SEARCH_SPACE},
                     "acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)),
                     "f1_mean": float(np.mean(f1s)), "f1_std": float(np.std(f1s, ddof=1)), "fold_acc": accs})
    bar.close()
    return rows


def cv_markdown(rows: list[dict[str, Any]], k: int) -> str:
    keys = list(SEARCH_SPACE)
    ranked = sorted(rows, key=lambda r: -r["acc_mean"])
    table = markdown_table(["trial", *keys, "accuracy", "macro-F1"],
                           [[r["trial"], *(r["config"][k2] for k2 in keys), f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}",
                             f"{r['f1_mean']:.3f} ± {r['f1_std']:.3f}"] for r in ranked])
    return f"{k}-fold cross-validation on FER2013 Training (mean ± sd over folds; higher is better)\n\n{table}\n"
