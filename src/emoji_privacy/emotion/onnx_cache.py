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

from ..atomic import OutputError, atomic_write_bytes
from ..model_files import cache_dir, sha256_of
from ..onnx_session import cpu_session

__all__ = ["CACHE_FORMAT", "CachedExport", "export_key", "load_cached_export", "store_export"]

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


def _entry(pt_sha256: str) -> Path:
    return cache_dir("emotion_onnx") / f"{pt_sha256[:32]}-v{CACHE_FORMAT}"


def export_key(pt_path: Path) -> str:
    """What a cache entry is filed under: the sha256 of the ``.pt`` (hashed once per load: ~5 ms for the
    3.6 MB default)."""
    return sha256_of(pt_path)


def load_cached_export(key: str, threads: int) -> CachedExport | None:
    """The cached export filed under ``key`` (``export_key``), or None when there is no usable one."""
    entry = _entry(key)
    try:
        info = json.loads(entry.with_suffix(".json").read_text())
        onnx = entry.with_suffix(".onnx").read_bytes()
        if hashlib.sha256(onnx).hexdigest() != info["onnx_sha256"]:
            return None
        return CachedExport(cpu_session(onnx, threads), info)
    except Exception:  # noqa: BLE001 - absent, half-written or foreign: all mean "export again"
        return None


def store_export(key: str, pt_path: Path, onnx: bytes, info: dict[str, Any]) -> None:
    """Keep a checked export of ``pt_path`` under ``key``; a cache that cannot be written only costs the next
    start-up."""
    entry = _entry(key)
    record = {**info, "onnx_sha256": hashlib.sha256(onnx).hexdigest(), "source": str(pt_path)}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".onnx", onnx), (".json", json.dumps(record, default=str).encode())):
            atomic_write_bytes(entry.with_suffix(suffix), data)
    except (OSError, OutputError):
        pass
