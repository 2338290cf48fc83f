"""Project emotion checkpoints (``.pt``): a ``state_dict`` plus metadata saying how to build and feed it.

Loaded with ``weights_only=True`` so loading never runs pickled code; written atomically so a
crash never leaves half a model. Importing this module does not import torch (a start-up that finds
the model's onnxruntime export in the cache never needs it); loading and saving do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import EMOTIONS
from ..atomic import atomic_write
from ..errors import ModelFileError
from ..model_files import ModelFile, candidate_paths, find_model_file

if TYPE_CHECKING:
    from torch import nn

__all__ = ["PT_FORMAT_VERSION", "DEFAULT_MODEL", "FER_NORMALIZATION", "Checkpoint", "load_checkpoint",
           "resolve_model_path", "save_checkpoint"]

PT_FORMAT_VERSION = 1
DEFAULT_MODEL = "fer_robust"  # models/fer_robust.pt: fer_resnet fine-tuned for real light (models/README.md)
# x / 255 * 2 - 1, written as (x - mean) / std so other .pt models can declare their own.
FER_NORMALIZATION = {"mean": 127.5, "std": 127.5}


def _architectures() -> tuple[str, ...]:
    from .nets import EMOTION_NETS

    return ("mini_xception", *EMOTION_NETS)


def _build_network(arch: str, meta: dict[str, Any]) -> nn.Module:
    if arch == "mini_xception":
        from .keras_import import MiniXception

        return MiniXception(meta["config"])
    from .nets import build_emotion_net

    return build_emotion_net(arch, **(meta.get("config") or {}))


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
                         f"of one in models/), or train one with `python -m emoji_privacy.training --export`")


class Checkpoint:
    """A loaded, checked ``.pt``: the network with its weights and what its inputs must look like."""

    def __init__(self, path: Path, model: nn.Module, metadata: dict[str, Any], input_size: int, mean: float,
                 std: float, temperature: float = 1.0) -> None:
        self.path, self.model, self.metadata = path, model, metadata
        self.input_size, self.mean, self.std = input_size, mean, std
        self.temperature = temperature  # metadata["calibration"]["temperature"]; 1.0 when not calibrated

    @property
    def architecture(self) -> str:
        return str(self.metadata["architecture"])


def load_checkpoint(model_path: str | os.PathLike | None) -> Checkpoint:
    """The ``.pt`` at ``model_path`` (empty: the default model) built and checked, or a ModelFileError."""
    import torch

    path = resolve_model_path(model_path)
    fix = "retrain it (python -m emoji_privacy.training) or point emotion model_path at another .pt"
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
    if arch not in _architectures():
        raise ModelFileError(f"emotion model {path}: unknown architecture {arch!r} "
                             f"(known: {', '.join(_architectures())}); {fix}")
    classes = meta.get("classes")
    if classes is None or tuple(classes) != EMOTIONS:
        raise ModelFileError(f"emotion model {path}: classes {classes} differ from the project's "
                             f"{list(EMOTIONS)} (order matters); retrain or re-export it")
    try:
        model = _build_network(arch, meta)
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
    calibration = meta.get("calibration") or {}
    try:
        temperature = float(calibration.get("temperature", 1.0))
        if not 0.01 <= temperature <= 100:
            raise ValueError("out of [0.01, 100]")
    except (TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"emotion model {path}: bad calibration temperature in its metadata ({e}); "
                             "recalibrate it with `python -m emoji_privacy.training calibrate`") from e
    return Checkpoint(path, model, meta, int(size), mean, std, temperature)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write a project ``.pt`` ({"state_dict", "metadata"}) atomically: a crash never leaves half a model."""
    import torch

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save({"state_dict": state, "metadata": metadata}, tmp))
