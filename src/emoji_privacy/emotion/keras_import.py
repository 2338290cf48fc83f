"""Read the ``fer`` package's Keras 2.0 mini-Xception HDF5 without TensorFlow.

The HDF5 is read with h5py and rebuilt as an equivalent PyTorch graph (:class:`MiniXception`),
layer by layer from its own ``model_config``, so the file itself says what to build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError

__all__ = ["Arch", "MiniXception", "mini_xception_from_hdf5"]

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
