"""Evaluate emotion models side by side on one FER2013 split, through the pipeline's own classifier code.

Every model is loaded the way the listener loads it (:func:`load_emotion_classifier`) and fed the
same faces through ``EmotionClassifier.predict`` (FER frames resized to its input size, which is
what ``align_face`` gives it), so the comparison is on identical data and code::

    python -m emoji_privacy.evaluation emotion mini_xception models/fer_resnet.pt models/paper42.pt --split PrivateTest

A model is a backend name (``mini_xception``) or a path to a project ``.pt``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import EMOTIONS
from ..emotion.calibration import expected_calibration_error
from ..emotion.classifiers import EMOTION_BACKENDS, EmotionClassifier, load_emotion_classifier
from ..markdown import markdown_table
from ..training.core import classification_report, resize_faces
from ..training.data import load_fer2013
from ..training.degrade import DEGRADATIONS, degrade

__all__ = ["load_model_spec", "evaluate_classifier", "time_per_face", "comparison_table", "classify", "report_of",
           "degraded_conditions"]


def load_model_spec(spec: str) -> EmotionClassifier:
    """A backend name or a ``.pt`` path -> a loaded classifier."""
    if spec in EMOTION_BACKENDS and not Path(spec).exists():
        return load_emotion_classifier(spec)
    return load_emotion_classifier("torch", model_path=spec)


def count_parameters(clf: EmotionClassifier) -> int:
    model = getattr(clf, "model", None)
    return sum(p.numel() for p in model.parameters()) if isinstance(model, torch.nn.Module) else 0


def classify(clf: EmotionClassifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``clf``'s (calibrated) probabilities for uint8 48x48 FER frames, resized to its input as align_face does."""
    faces = resize_faces(images, clf.input_size)
    if not len(faces):
        return np.zeros((0, len(EMOTIONS)), np.float32)
    return np.concatenate([clf.predict(faces[i:i + batch_size]) for i in range(0, len(faces), batch_size)])


def report_of(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Classification report plus the calibration error and the share of faces given each emotion."""
    report = classification_report(labels, probs)
    report["ece"] = expected_calibration_error(probs, labels)  # of the probabilities the listener publishes
    report["predicted"] = (np.bincount(probs.argmax(1), minlength=len(EMOTIONS)) / max(len(probs), 1)).tolist()
    return report


def evaluate_classifier(clf: EmotionClassifier, images: np.ndarray, labels: np.ndarray,
                        batch_size: int = 256) -> dict[str, Any]:
    """Classification report of ``clf`` on uint8 48x48 FER frames."""
    return report_of(classify(clf, images, batch_size), labels)


def degraded_conditions(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """``images`` clean and under each camera degradation of training/degrade.py (each seeded by ``seed`` and its
    place in the list, so every model sees the very same degraded faces)."""
    out = {"clean": images}
    for k, name in enumerate(DEGRADATIONS):
        out[name] = degrade(images, name, seed + k)
    return out


def time_per_face(clf: EmotionClassifier, face: np.ndarray, repeats: int = 200) -> float:
    """Median ms of one ``predict`` on a single face (batch 1) with torch on one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = resize_faces(face[None], clf.input_size)
        for _ in range(20):
            clf.predict(one)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            clf.predict(one)
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per model; recall per class, expected calibration error (15 bins), parameters, speed."""
    head = ["model", "accuracy", "macro-F1"] + [f"{c} recall" for c in EMOTIONS] + ["ECE", "parameters", "ms/face"]
    lines = []
    for r in rows:
        m = r["report"]
        cells = [r["name"], f"{m['accuracy']:.2%}", f"{m['macro_f1']:.3f}"]
        cells += [f"{m['per_class'][c]['recall']:.2f}" for c in EMOTIONS]
        cells.append(f"{m['ece']:.2%}")
        cells += [f"{r['parameters'] / 1e6:.2f} M", f"{r['ms_per_face']:.2f}"]
        lines.append(cells)
    return markdown_table(head, lines)


def compare(specs: list[str], split: str = "PrivateTest", data: str | None = None,
            progress: bool = True) -> list[dict[str, Any]]:
    from tqdm import tqdm

    fer = load_fer2013(data, progress=progress)
    images, labels = fer.split(split)
    rows = []
    for spec in tqdm(specs, desc=f"evaluating on {split}", unit="model", disable=not progress):
        clf = load_model_spec(spec)
        rows.append({"name": Path(spec).stem if spec.endswith(".pt") else spec, "spec": spec,
                     "report": evaluate_classifier(clf, images, labels), "parameters": count_parameters(clf),
                     "ms_per_face": time_per_face(clf, images[0]), "metadata": getattr(clf, "metadata", {})})
    return rows
