"""Calibrated confidence: temperature scaling of a model's probabilities, and how to measure it.

A CNN trained with cross-entropy is usually over- or under-confident: a face it calls "happy" at
0.9 may be right far less (or more) often than 9 times in 10. Components that consume
``FaceEmotion.confidence`` need it to mean what it says, so every project model carries a
temperature ``T`` fitted on PublicTest and applies ``p_i ** (1/T) / sum_j p_j ** (1/T)``
(= softmax(logits / T)) to its outputs. The argmax, and so accuracy, never changes. Expected
calibration error (ECE, 15 equal-width confidence bins) is reported before and after, on PrivateTest.

``T`` minimises the Brier score (the default) or the negative log-likelihood; both are proper
scoring rules. Brier is the default because it calibrated better where it was measured: fitted on
one half of PublicTest, it gave a lower ECE on the other half than NLL for all three project models
in 14-15 of 20 random halvings (``bench/bench_calibration.py``). On those models NLL's temperature
came out lower than Brier's (sharper; 0.863 against 0.937 for fer_resnet) and left the model
over-confident on average: mean confidence 0.684 against 0.659 accuracy on PublicTest (Brier: 0.657).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CRITERIA", "ECE_BINS", "apply_temperature", "fit_temperature", "expected_calibration_error",
           "reliability_diagram"]

ECE_BINS = 15
_FLOOR = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N, C) rescaled by ``temperature`` (1: unchanged; > 1: less confident)."""
    probs = np.asarray(probs, np.float64)
    if temperature == 1.0 or len(probs) == 0:
        return probs
    z = np.log(np.clip(probs, _FLOOR, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], _FLOOR, None))))


def _brier(probs: np.ndarray, labels: np.ndarray) -> float:
    err = probs.copy()
    err[np.arange(len(labels)), labels] -= 1.0
    return float(np.mean(np.sum(err * err, axis=1)))


_SCORES = {"brier": _brier, "nll": _nll}
CRITERIA: tuple[str, ...] = tuple(_SCORES)
"""What fit_temperature minimises; the first is the default."""


def fit_temperature(probs: np.ndarray, labels: np.ndarray, criterion: str = CRITERIA[0]) -> float:
    """The temperature in [0.05, 20] that minimises ``criterion`` ("brier" or "nll") over ``labels``."""
    from scipy.optimize import minimize_scalar

    if criterion not in CRITERIA:
        raise ValueError(f"unknown calibration criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    res = minimize_scalar(lambda log_t: _SCORES[criterion](apply_temperature(probs, float(np.exp(log_t))), labels),
                          bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def _bins(probs: np.ndarray, labels: np.ndarray, bins: int) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per equal-width confidence bin (empty bins skipped)."""
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    return [(float(conf[which == b].mean()), float(right[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the count-weighted mean |accuracy - confidence| over confidence bins (0 is perfect)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    if len(labels) == 0:
        return 0.0
    return float(sum(n * abs(acc - conf) for conf, acc, n in _bins(probs, labels, bins)) / len(labels))


def reliability_diagram(before: np.ndarray, after: np.ndarray, labels: np.ndarray, path: Path, title: str,
                        bins: int = ECE_BINS) -> Path:
    """Accuracy against confidence per bin, before and after scaling, with the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for probs, name, style in ((before, "raw", "o-"), (after, "temperature-scaled", "s-")):
        pts = _bins(np.asarray(probs, np.float64), np.asarray(labels, np.int64), bins)
        ece = expected_calibration_error(probs, labels, bins)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=4, label=f"{name} (ECE {ece:.1%})")
    ax.set(xlabel="confidence (probability of the shown emotion)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
