"""Offline anonymization of files: videos (`video.py`), images and folders of images (`images.py`), recorded
bags (`bag.py`), and the `emoji-privacy anonymize` command (`cli.py`, docs/files.md).

Every writer here leaves nothing half-written: it writes to a temporary file beside the output and renames
it at the end (``atomic_output``); any exception, Ctrl-C included, removes the temporary file. This module
imports nothing heavy: ``anonymize_video`` and ``anonymize_folder`` load PyAV and the pipeline on first use.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import lazy_attributes
from ..errors import EmojiPrivacyError


class OutputError(EmojiPrivacyError):
    """An output cannot be written (missing or read-only folder, unsupported suffix, would overwrite an input)."""


_LAZY = {"anonymize_video": "video", "VideoSummary": "video", "VIDEO_SUFFIXES": "video",
         "anonymize_image": "images", "anonymize_folder": "images", "FolderSummary": "images"}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def _partial_name(dst: Path) -> tuple[str, str]:
    # hidden, and keeps the suffix (tools that look at it still see what it is)
    return f".{dst.stem}.", f".partial{dst.suffix}"


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """A temporary path beside ``dst`` to write; renamed to ``dst`` when the block ends without an exception,
    removed when it raises (KeyboardInterrupt included). OutputError when the folder cannot take a file."""
    dst = Path(dst)
    prefix, suffix = _partial_name(dst)
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dst.parent)
    except OSError as e:
        raise OutputError(f"cannot write {dst}: {e.strerror or e} (check that {dst.parent} exists and is "
                          "writable)") from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a finished output gets the usual mode
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(dst: Path) -> Iterator[Path]:
    """A temporary folder beside ``dst``; when the block succeeds its files move into ``dst`` (created if
    needed; files there with other names stay), and on any exception it is removed with everything in it."""
    dst = Path(dst)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    except OSError as e:
        raise OutputError(f"cannot write {dst}: {e.strerror or e} (check that {dst.parent} exists and is "
                          "writable)") from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not dst.exists():
            os.replace(tmp, dst)
        else:
            if not dst.is_dir():
                raise OutputError(f"cannot write folder {dst}: a file of that name exists")
            for f in sorted(tmp.iterdir()):
                os.replace(f, dst / f.name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _num(v: float, digits: int = 1) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def face_record(face: Any) -> dict[str, Any]:
    """One pipeline.FaceResult as a JSON object (the faces JSON lines; docs/files.md)."""
    return {"track_id": int(face.track_id), "box": [_num(v) for v in face.box], "score": _num(face.score, 3),
            "emotion": face.emotion, "confidence": _num(face.confidence, 3), "yaw": _num(face.yaw_deg),
            "pitch": _num(face.pitch_deg), "roll": _num(face.roll_deg)}


def held_record(held: Any) -> dict[str, Any]:
    """One pipeline.HeldFace (covered at its predicted place while the detector missed it) as a JSON object."""
    from .. import EMOTIONS

    return {"track_id": int(held.track_id), "box": [_num(v) for v in held.box], "misses": int(held.misses),
            "emotion": EMOTIONS[held.emotion_index]}


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
