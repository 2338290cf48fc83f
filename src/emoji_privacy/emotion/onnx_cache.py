"""The onnxruntime export of a ``.pt`` emotion model, kept in the user cache.

Exporting a checkpoint to ONNX needs torch (about a second to import on the robot's CPU) and the
exporter (a few hundred milliseconds more); every start-up of the listener, the web demo and the
command-line tool paid for both. The export is checked against torch once, when it is made, then
kept under ``cache_dir("emotion_onnx")`` by the sha256 of the ``.pt`` it came from, so a changed or
retrained model never meets an old export. A cache entry that is missing, unreadable or does not
match its recorded hash is ignored (and rewritten); the cache can always be deleted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..model_files import cache_dir, sha256_of

__all__ = ["CACHE_FORMAT", "CachedExport", "load_cached_export", "store_export", "new_session"]

CACHE_FORMAT = 1
"""Bumped when what is stored changes; older entries are then simply not found."""


class CachedExport:
    """A cached export, ready to run: its session plus what the checkpoint said about its inputs."""

    def __init__(self, session: Any, info: dict[str, Any]) -> None:
        self.session = session
        self.input_size = int(info["input_size"])
        self.mean, self.std = float(info["mean"]), float(info["std"])
        self.architecture = str(info["architecture"])
        self.temperature = float(info["temperature"])
        self.metadata: dict[str, Any] = info["metadata"]


def new_session(onnx: bytes, threads: int) -> Any:
    """An onnxruntime CPU session on ``threads`` threads that sleep between frames instead of spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])


def _entry(pt_sha256: str) -> Path:
    return cache_dir("emotion_onnx") / f"{pt_sha256[:32]}-v{CACHE_FORMAT}"


def load_cached_export(pt_path: Path, threads: int) -> CachedExport | None:
    """The cached export of ``pt_path``, or None when there is no usable one."""
    entry = _entry(sha256_of(pt_path))
    try:
        info = json.loads(entry.with_suffix(".json").read_text())
        onnx = entry.with_suffix(".onnx").read_bytes()
        if hashlib.sha256(onnx).hexdigest() != info["onnx_sha256"]:
            return None
        return CachedExport(new_session(onnx, threads), info)
    except Exception:  # noqa: BLE001 - absent, half-written or foreign: all mean "export again"
        return None


def store_export(pt_path: Path, onnx: bytes, info: dict[str, Any]) -> None:
    """Keep a checked export of ``pt_path``; a cache that cannot be written only costs the next start-up."""
    from ..files import OutputError, atomic_output

    entry = _entry(sha256_of(pt_path))
    record = {**info, "onnx_sha256": hashlib.sha256(onnx).hexdigest(), "source": str(pt_path)}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".onnx", onnx), (".json", json.dumps(record, default=str).encode())):
            with atomic_output(entry.with_suffix(suffix)) as tmp:
                tmp.write_bytes(data)
    except (OSError, OutputError):
        pass
