"""The pipeline behind the website: models loaded once, one frame at a time, fail-closed.

The models are not thread-safe (TFLite interpreters), so every request takes one lock; a
bounded number of requests may wait for it and further ones are told the server is busy.
Still images go through an anonymizer whose tracker is reset for each image (unrelated
photos must not share tracks); each webcam connection gets its own tracker over the same models.

Frames are anonymized at the size they arrive (bounded by the header check of ``max_pixels``);
only the anonymized result is scaled down for the answer (``fit_result``): scaling first
would shrink small faces in large photos below what the detector finds, and leave them bare.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from ..config import PipelineConfig
from ..pipeline import Anonymizer, FaceResult, listed_faces
from .images import fit_side
from .settings import WebRequestError

log = logging.getLogger(__name__)


class AnonymizerService:
    """Owns the models; hands out anonymized frames or a WebRequestError, never the original."""

    def __init__(self, config: PipelineConfig, max_pending: int = 8) -> None:
        self.config = config
        self.max_pending = max_pending
        self.base: Anonymizer | None = None
        self.startup_error = ""
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_lock = threading.Lock()

    def load(self) -> None:
        """Load the models; a failure is kept (and reported on every request) instead of raised."""
        try:
            base = Anonymizer(self.config)
            base.warm_up()  # the first visitor's image does not pay the models' first-call costs
            self.base = base  # only a pipeline that ran is served
        except Exception as e:  # noqa: BLE001 - any failure: serve the page and refuse images, saying why
            self.startup_error = f"{type(e).__name__}: {e}"
            log.error("the anonymizer could not start: %s", self.startup_error)

    def _require(self) -> Anonymizer:
        if self.base is None:
            why = self.startup_error or "models are still loading"
            raise WebRequestError(503, f"the anonymizer is not running ({why}); no image is returned")
        return self.base

    def session(self) -> Anonymizer:
        """An anonymizer with its own tracker over the shared models (one per webcam connection)."""
        return self._require().sharing_models()

    @contextmanager
    def _queued(self) -> Iterator[None]:
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise WebRequestError(503, f"the server is busy ({self._pending} images in the queue): try again "
                                           "in a moment")
            self._pending += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._pending -= 1

    def process(self, frame: np.ndarray, session: Anonymizer | None = None) -> tuple[np.ndarray, list[FaceResult],
                                                                                     float]:
        """(anonymized frame, listed faces, milliseconds). ``session`` None: a still image (fresh tracks)."""
        anonymizer = session or self._require()
        with self._queued(), self._lock:
            t0 = time.perf_counter()
            try:
                if session is None:
                    anonymizer.reset()
                out, faces = anonymizer.process(frame, still=session is None)
            except Exception as e:  # noqa: BLE001 - fail closed: whatever broke, the original is not returned
                log.error("the anonymizer failed on a frame: %s: %s", type(e).__name__, e)
                raise WebRequestError(500, f"the anonymizer failed on this image ({type(e).__name__}); "
                                           "nothing is returned") from e
            if out is frame or out.shape != frame.shape:
                raise WebRequestError(500, "the anonymizer returned no new image; nothing is returned")
            faces = listed_faces(faces)  # all were covered; the answer lists confirmed tracks only
            if session is None:  # a still image: number its faces 1..N (ids say nothing about other requests)
                for i, f in enumerate(faces, 1):
                    f.track_id = i
            return out, faces, (time.perf_counter() - t0) * 1e3


def scale_face(face: FaceResult, sx: float, sy: float) -> FaceResult:
    """A copy of ``face`` with its geometry in an image scaled by (sx, sy), so the answer's boxes match its image."""
    cx, cy = face.center
    return replace(face, box=face.box * np.array([sx, sy, sx, sy], np.float32),
                   landmarks=face.landmarks * np.array([sx, sy], np.float32), center=(cx * sx, cy * sy),
                   radius=face.radius * (sx + sy) / 2)


def fit_result(out: np.ndarray, faces: list[FaceResult], max_side: int) -> tuple[np.ndarray, list[FaceResult]]:
    """The anonymized frame scaled down to ``max_side`` (the returned size) and its faces in its pixels.

    Called after anonymizing, never before: the faces were found and covered at full resolution.
    """
    small = fit_side(out, max_side)
    if small is out:
        return out, faces
    sx, sy = small.shape[1] / out.shape[1], small.shape[0] / out.shape[0]
    return small, [scale_face(f, sx, sy) for f in faces]
