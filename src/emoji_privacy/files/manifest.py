"""The manifest of an output folder: which inputs are done, so that running the same command again does only
what is missing (docs/fleet.md).

``OUT_DIR/emoji_privacy_manifest.json`` records, for each input written into OUT_DIR: the input's identity (size,
mtime and sha256 of its bytes; of every file in it for a folder or a ROS 2 bag), the hash of the pipeline
configuration and of the model files, and the output (name, and size and mtime of every file in it). An input
counts as done only when all of these still match: a changed input, config or model, or an output that is
missing or not the one recorded, means it is done again. The manifest is rewritten atomically after every
input, so a job killed at any moment resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..model_files import sha256_of

log = logging.getLogger(__name__)

MANIFEST_NAME = "emoji_privacy_manifest.json"
FACES_PARTS = ".emoji_privacy_faces"
"""Folder in OUT_DIR holding each input's faces JSON lines, joined into --faces-json at the end of every run."""
FORMAT = 1


def _files(path: Path) -> list[Path]:
    """The files of an input or output: itself, or every file under a folder (sorted, hidden partials left out)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and ".partial" not in p.name)


def _stat(path: Path) -> dict[str, list[int]]:
    """name -> [size, mtime_ns] of every file of ``path`` (names relative to it; '' for a file)."""
    out = {}
    for p in _files(path):
        st = p.stat()
        out["" if p == path else str(p.relative_to(path))] = [st.st_size, st.st_mtime_ns]
    return out


def input_identity(src: Path, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """size, mtime_ns (the newest file's) and sha256 of ``src``'s bytes (a folder: of its files' names and
    hashes). When ``known`` has the same size and mtime, its sha256 is reused instead of reading every byte
    again, as rsync and make trust them."""
    files = _stat(src)
    size = sum(v[0] for v in files.values())
    mtime = max((v[1] for v in files.values()), default=0)
    if known and known.get("size") == size and known.get("mtime_ns") == mtime and known.get("files") == len(files):
        return dict(known)
    if src.is_file():
        digest = sha256_of(src)
    else:
        h = hashlib.sha256()
        for name in sorted(files):
            h.update(f"{name}\0{sha256_of(src / name)}\n".encode())
        digest = h.hexdigest()
    return {"size": size, "mtime_ns": mtime, "files": len(files), "sha256": digest}


def config_hash(config: Any) -> str:
    """sha256 of the pipeline configuration (a dataclass), key order independent."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def models_hash(config: Any) -> str:
    """sha256 over every model file this installation resolves (model_files.check_all) and the files the
    config names explicitly: any changed weight file changes it."""
    from ..model_files import check_all

    found, _errors = check_all()
    parts = [f"{key}={sha256_of(path)}" for key, path in sorted(found.items())]
    for section in ("detector", "landmarks", "emotion"):
        explicit = getattr(getattr(config, section), "model_path", "")
        if explicit and Path(os.path.expanduser(explicit)).is_file():
            parts.append(f"{section}.model_path={sha256_of(Path(os.path.expanduser(explicit)))}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Manifest:
    """The done inputs of one output folder, kept in ``OUT_DIR/emoji_privacy_manifest.json``."""

    def __init__(self, out_dir: Path, config: str, models: str, faces: bool) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.config, self.models, self.faces = config, models, faces
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("format") == FORMAT and isinstance(data.get("inputs"), dict):
                    self.entries = data["inputs"]
                else:
                    log.warning("%s has another format; every input is done again", self.path)
            except (OSError, ValueError) as e:
                log.warning("cannot read %s (%s); every input is done again", self.path, e)

    @staticmethod
    def key(src: Path) -> str:
        return str(Path(os.path.realpath(src)))

    def faces_part(self, dst: Path) -> Path:
        return self.out_dir / FACES_PARTS / f"{Path(dst).name}.jsonl"

    def identity(self, src: Path) -> dict[str, Any]:
        entry = self.entries.get(self.key(src))
        return input_identity(src, entry.get("input") if entry else None)

    def is_done(self, src: Path, dst: Path) -> bool:
        """Whether ``src`` was written to ``dst`` with this config and these models, and both are unchanged."""
        entry = self.entries.get(self.key(src))
        if not entry or entry.get("config") != self.config or entry.get("models") != self.models:
            return False
        if entry.get("output") != Path(dst).name or not Path(dst).exists():
            return False
        if entry.get("output_files") != _stat(Path(dst)):
            return False
        if self.faces and not self.faces_part(dst).is_file():
            return False
        try:
            return self.identity(src).get("sha256") == entry["input"].get("sha256")
        except OSError:
            return False

    def record(self, src: Path, dst: Path, identity: dict[str, Any], frames: int, seconds: float,
               failed: list | None = None, skipped: list | None = None) -> None:
        """``src`` is done: written to ``dst`` (less the ``failed`` images of a folder, and what it ``skipped``,
        both (path, reason) and reported again by a run that finds it done); saved at once."""
        self.entries[self.key(src)] = {
            "input": identity, "config": self.config, "models": self.models, "output": Path(dst).name,
            "output_files": _stat(Path(dst)), "frames": int(frames), "seconds": round(float(seconds), 3),
            "failed": [list(x) for x in failed or []], "skipped": [list(x) for x in skipped or []]}
        self.save()

    def left_out(self, src: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(failed, skipped) recorded for a done input."""
        entry = self.entries.get(self.key(src)) or {}
        return ([tuple(x) for x in entry.get("failed", [])], [tuple(x) for x in entry.get("skipped", [])])

    def forget(self, src: Path) -> None:
        if self.entries.pop(self.key(src), None) is not None:
            self.save()

    def save(self) -> None:
        data = {"format": FORMAT, "tool": "emoji-privacy anonymize", "inputs": self.entries}
        atomic_write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
