"""The emoji_anonymizer node's logic, without rospy: what happens to each camera frame, what is counted,
what /diagnostics says, and what a frame that fails becomes. ``nodes/emoji_anonymizer`` only creates the
publishers and subscribers and hands messages to a ``Listener`` (as image_pipeline's nodes wrap
image_geometry), so the whole of it runs in a test with real messages and no roscore.

Frames run through two overlapping stages (``streaming.PipelinedAnonymizer``: detection of the newest frame
while the previous one is finished); a frame still waiting when a newer one arrives is dropped and counted.
Fail-closed: a frame that cannot be decoded or anonymized is published fully masked (``output/on_error:
mask``) or not at all (``drop``), never as it came in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..config import ListenerConfig
from ..fail_closed import fail_closed_plan, masked_frame
from ..image_io import ImageTooLargeError
from ..pipeline import Anonymizer
from ..streaming import PipelinedAnonymizer, StreamFrame
from .health import StreamHealth
from .messages import camera_matrix_values, image_to_bgr, stamp_seconds

Publish = Callable[[np.ndarray, object, list], None]
"""Publishes an anonymized (or masked) frame and its faces under the input's header."""


@dataclass
class ListenerStats:
    """The counters of /diagnostics, and the times measured since the last diagnostics message."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("frames", "errors", "masked", "unpublished", "oversize", "dropped", "dropped_upstream",
         "dropped_overload", "faces"), 0))
    proc_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def take_window(self) -> tuple[dict[str, object], list[float], list[float]]:
        """The counters, and the processing and latency times since the last call (which are then cleared)."""
        proc, lat, self.proc_ms, self.latency_ms = self.proc_ms, self.latency_ms, [], []
        return dict(self.counts), proc, lat


class Listener:
    """One camera stream anonymized: ``on_image`` for each message, ``diagnostics`` once per period.

    ``publish(frame, header, faces)`` sends a frame out; ``log_error(line)`` logs a failure (throttled by
    the health rules); ``now()`` is the clock the message stamps use (seconds), for the latency."""

    def __init__(self, config: ListenerConfig, publish: Publish, log_error: Callable[[str], None],
                 now: Callable[[], float] = time.time, anonymizer: Anonymizer | None = None) -> None:
        self.config = config
        self.publish, self.log_error, self.now = publish, log_error, now
        # Every model is loaded here, before anything is subscribed: a bad parameter or a missing model stops
        # the node at start-up instead of leaving it running and masking every frame.
        self.anonymizer = anonymizer or Anonymizer(config)
        # Every model's first call (and the tracker's first several-face assignment) is paid now, so the first
        # camera frames meet their deadline; a model that fails on real input stops the node here.
        self.anonymizer.warm_up()
        self.health = StreamHealth(config.failure_window, config.stale_after, config.log_period)
        self.stats = ListenerStats()
        self.lock = threading.Lock()
        self.last_seq: int | None = None
        self.last_size: tuple[int, int] | None = None  # (h, w) of the last decoded frame: masks compressed ones
        self.stream = PipelinedAnonymizer(self.anonymizer, self.decode, self.deliver,
                                          lambda item, e: self.fail_closed(item.payload, e), self.on_replaced)

    def close(self) -> None:
        self.stream.close()

    def on_camera_info(self, msg: object) -> None:
        self.anonymizer.set_camera_matrix(camera_matrix_values(msg))

    def on_image(self, msg: object) -> None:
        """Hand a frame to the stages and return at once (a frame still waiting is replaced and counted)."""
        self.health.received()
        self.count_upstream_gap(msg.header.seq)
        self.stream.submit(msg, stamp_seconds(msg))

    def count_upstream_gap(self, seq: int) -> None:
        with self.lock:
            if self.last_seq is not None and seq > self.last_seq + 1:
                gap = seq - self.last_seq - 1
                self.stats.counts["dropped"] += gap
                self.stats.counts["dropped_upstream"] += gap
            self.last_seq = seq

    def on_replaced(self, _item: StreamFrame) -> None:
        with self.lock:
            self.stats.counts["dropped"] += 1
            self.stats.counts["dropped_overload"] += 1

    def decode(self, msg: object) -> np.ndarray:
        frame = image_to_bgr(msg, self.config.output.max_pixels)  # compressed: refused from its header if too big
        self.last_size = frame.shape[:2]
        return frame

    def deliver(self, item: StreamFrame, out: np.ndarray, faces: list) -> None:
        msg = item.payload
        self.publish(out, msg.header, faces)
        self.health.delivered()
        with self.lock:
            self.stats.counts["frames"] += 1
            self.stats.counts["faces"] += len(faces)
            self.stats.proc_ms.append((time.perf_counter() - item.received) * 1e3)
            self.stats.latency_ms.append((self.now() - stamp_seconds(msg)) * 1e3)

    def fail_closed(self, msg: object, error: Exception) -> None:
        """A frame that could not be anonymized: a fully masked frame of its size, or nothing; never the frame."""
        size = (int(msg.height), int(msg.width)) if hasattr(msg, "height") else self.last_size
        mask, action = fail_closed_plan(self.config.output.on_error, size, self.config.output.max_pixels)
        if mask:
            try:
                self.publish(masked_frame(*size), msg.header, [])
            except Exception as e:  # noqa: BLE001 - say what happened; the frame itself never goes out
                mask, action = False, f"nothing published: publishing the masked frame failed ({e})"
        with self.lock:
            self.stats.counts["errors"] += 1
            self.stats.counts["masked" if mask else "unpublished"] += 1
            self.stats.counts["oversize"] += isinstance(error, ImageTooLargeError)
        line = self.health.failed(f"{type(error).__name__}: {error}", action)
        if line:
            self.log_error(line)

    def diagnostics(self) -> tuple[int, str, dict[str, object]]:
        """(level, summary, values) of the /diagnostics status for the period that just ended."""
        line = self.health.pending_log()
        if line:
            self.log_error(line)
        with self.lock:
            values, proc, lat = self.stats.take_window()
        values["rate_hz"] = f"{len(proc) / self.config.diagnostics_period:.1f}"
        if proc:
            values["processing_ms_mean"] = f"{np.mean(proc):.2f}"
            values["processing_ms_p99"] = f"{np.percentile(proc, 99):.2f}"
            values["latency_ms_p99"] = f"{np.percentile(lat, 99):.2f}"
        t = self.anonymizer.times
        for k in ("detect", "landmarks", "emotion", "render"):
            values[f"stage_ms_{k}"] = f"{getattr(t, k):.2f}"
        level, summary, window = self.health.status()
        values.update(window)
        return level, summary, values
