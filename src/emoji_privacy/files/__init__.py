"""Offline anonymization of files: videos (`video.py`), images and folders of images (`images.py`), recorded
bags (`bag.py`), and the `emoji-privacy anonymize` command (`cli.py`, docs/files.md).

Every writer here leaves nothing half-written: it writes to a temporary file beside the output and renames
it at the end (``atomic_output``, ``atomic_folder``: :mod:`..atomic`); any exception, Ctrl-C included, removes
the temporary file. This module imports nothing heavy: ``anonymize_video`` and ``anonymize_folder`` load PyAV
and the pipeline on first use.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import lazy_attributes
from ..atomic import OutputError  # noqa: F401 - files.OutputError is public (docs/files.md); it lives in ..atomic

_LAZY = {"anonymize_video": "video", "VideoSummary": "video", "VIDEO_SUFFIXES": "video",
         "anonymize_image": "images", "anonymize_folder": "images", "FolderSummary": "images"}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def _num(v: float, digits: int = 1) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def face_record(face: Any) -> dict[str, Any]:
    """One pipeline.FaceResult as a JSON object (the faces JSON lines; docs/files.md)."""
    return {"track_id": int(face.track_id), "box": [_num(v) for v in face.box], "score": _num(face.score, 3),
            "emotion": face.emotion, "confidence": _num(face.confidence, 3), "yaw": _num(face.yaw_deg),
            "pitch": _num(face.pitch_deg), "roll": _num(face.roll_deg), "reading": face.reading}


def held_record(held: Any) -> dict[str, Any]:
    """One pipeline.HeldFace (covered at its predicted place while the detector missed it) as a JSON object."""
    from .. import emotion_name

    return {"track_id": int(held.track_id), "box": [_num(v) for v in held.box], "misses": int(held.misses),
            "emotion": emotion_name(held.emotion_index)}


def faces_records(faces: list[Any], held: list[Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """A frame's ``faces`` (and ``held``, when given) as the faces JSON lists them: listed faces only
    (pipeline.listed_faces: confirmed tracks; every face was covered all the same)."""
    from ..pipeline import listed_faces

    out = {"faces": [face_record(f) for f in listed_faces(faces)]}
    if held is not None:
        out["held"] = [held_record(h) for h in listed_faces(held)]
    return out


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
