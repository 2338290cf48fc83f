"""A live stream through the anonymizer in two overlapping stages, always on the newest frame.

Why: on the robot's 2 cores one frame at a time leaves a core idle while FaceMesh and the emotion
network run, and a camera faster than the pipeline builds a queue of stale frames. Here the
detector (onnxruntime, which releases the GIL) works on frame t+1 while landmarks, emotion and the
covers of frame t run in a second thread (tflite and onnxruntime release the GIL too). Frames wait
in a one-slot mailbox: a newer frame replaces an unprocessed one, and every replaced frame is counted,
so latency stays bounded under overload and no drop goes unreported.

Privacy is unchanged: every delivered frame went through the detector and then ``Anonymizer.finish``
in arrival order (the tracker sees frames in order); a frame whose decoding or any stage failed is
handed to ``fail`` in its place, in order, never delivered raw.

Repeatable: the detection of frame t+1 reads no state the finishing stage is changing at that moment; it
follows the tracks as they were after frame t-1 (``PipelinedAnonymizer.FOLLOW_LAG``). Offline (every frame
submitted with ``block``, no background scanner: files.video) the same frames give the same output on every run,
whatever the machine's load. Live, which frames get replaced and when the small-face scanner's seeds arrive
depend on timing, as they must for a stream that stays current.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .pipeline import Anonymizer, DetectedFrame, FaceResult

_STOP = object()
log = logging.getLogger(__name__)


@dataclass
class StreamFrame:
    """One submitted frame on its way through the stages."""

    payload: Any  # what the caller submitted (e.g. a ROS message); decoded in the detection thread
    stamp: float | None
    received: float = field(default_factory=time.perf_counter)  # when submit() took it
    detected: DetectedFrame | None = None
    error: Exception | None = None


@dataclass
class StreamCounters:
    """What happened to the submitted frames (read with ``PipelinedAnonymizer.counters()``)."""

    submitted: int = 0
    replaced: int = 0  # dropped unprocessed because a newer frame arrived first
    delivered: int = 0
    failed: int = 0


class SmallFaceScanner:
    """Searches the detector's small-face level (a 2x enlarged frame: the costly part of finding 20 px faces)
    in the background, a few tiles of the newest frame at a time, and hands what it finds to the anonymizer
    as seeds (``Anonymizer.add_seeds``); the next frame is searched around each seed and tracking then follows
    the face in every frame.

    Why in the background: searched inside the frame it would add up to a third of a 1280x720 frame's time to
    every frame's latency. Here it runs on its own single-threaded detector at the lowest CPU priority, so it
    takes what the two stages leave of the cores: the listener never falls behind because of it, and a new
    face under ~24 px is found within a pass over the frame (the whole frame every SCAN_STEPS scans).
    """

    SCAN_STEPS = 8

    def __init__(self, anonymizer: Anonymizer) -> None:
        from .detection import detector_from_config

        self.anonymizer = anonymizer
        self.detector = detector_from_config(anonymizer.config.detector, threads=1)
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._closed = False
        self.scans = 0
        self._thread = threading.Thread(target=self._loop, name="anonymizer-small-faces", daemon=True)
        self._thread.start()

    def offer(self, frame: np.ndarray) -> None:
        """The newest decoded frame (replaces one not yet scanned)."""
        with self._cond:
            self._frame = frame
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._frame = None
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:  # the lowest priority for this thread alone (Linux: a thread id is a process id here)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        k = 0
        while True:
            with self._cond:
                while self._frame is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                frame, self._frame = self._frame, None
            try:
                found = self.detector.detect(frame, (k, self.SCAN_STEPS), levels="small")
            except Exception:  # noqa: BLE001 - the per-frame levels still run; say so and go on
                log.exception("the small-face scan failed on a frame")
                continue
            finally:
                del frame
            k += 1
            self.scans += 1
            if len(found):
                self.anonymizer.add_seeds(found.boxes)


class PipelinedAnonymizer:
    """Runs ``decode`` + detection and ``Anonymizer.finish`` in two threads over a stream.

    ``deliver(frame, out, faces)`` and ``fail(frame, error)`` are called from the second thread, one
    frame at a time and in submission order; ``on_replaced(frame)`` from the submitting thread.

    Frame t+1 is detected while frame t is finished, so its detection follows the small faces where the tracks
    were after frame t-1 (``FOLLOW_LAG``; ``Anonymizer.detect``), whose finish is always over by then: what
    either stage computes never depends on which thread gets ahead. With every frame submitted with ``block``
    and no small-face scanner (the video tool), the output is the same on every run, whatever the load, and
    equals ``Anonymizer.finish(Anonymizer.detect(frame, follow_lag=FOLLOW_LAG), stamp)`` frame by frame in one
    thread. A live stream is not repeatable by nature: which frames are replaced in the mailbox, and when the
    background scanner's seeds arrive, depend on timing.
    """

    FOLLOW_LAG = 2
    """Frames back whose tracks a frame's detection follows: the frame before the one being finished."""

    def __init__(self, anonymizer: Anonymizer, decode: Callable[[Any], np.ndarray],
                 deliver: Callable[[StreamFrame, np.ndarray, list[FaceResult]], None],
                 fail: Callable[[StreamFrame, Exception], None],
                 on_replaced: Callable[[StreamFrame], None] | None = None, scan_small_faces: bool = True) -> None:
        self.anonymizer = anonymizer
        # the small-face level in the background (streams with tracking, whose detector has that level)
        self.scanner = (SmallFaceScanner(anonymizer) if scan_small_faces and anonymizer.small_face_period > 1
                        and anonymizer.config.detector.min_face > 0 else None)
        self._decode, self._deliver, self._fail, self._on_replaced = decode, deliver, fail, on_replaced
        self._cond = threading.Condition()
        self._mailbox: StreamFrame | None = None
        self._busy = 0  # frames taken from the mailbox and not yet delivered or failed
        self._closed = False
        self._counters = StreamCounters()
        self._handoff: queue.Queue[Any] = queue.Queue(maxsize=1)  # detection waits while finish is busy
        self._threads = [threading.Thread(target=self._detect_loop, name="anonymizer-detect", daemon=True),
                         threading.Thread(target=self._finish_loop, name="anonymizer-finish", daemon=True)]
        for t in self._threads:
            t.start()

    def submit(self, payload: Any, stamp: float | None = None, block: bool = False) -> None:
        """Hand over the newest frame. ``block``: wait for the mailbox to empty instead of replacing
        an unprocessed frame (offline use, where every frame counts)."""
        item = StreamFrame(payload, stamp)
        replaced = None
        with self._cond:
            if self._closed:
                raise RuntimeError("the stream is closed")
            while block and self._mailbox is not None:
                self._cond.wait()
            if self._mailbox is not None:
                replaced = self._mailbox
                self._counters.replaced += 1
            self._mailbox = item
            self._counters.submitted += 1
            self._cond.notify_all()
        if replaced is not None and self._on_replaced is not None:
            self._on_replaced(replaced)

    def counters(self) -> StreamCounters:
        with self._cond:
            return StreamCounters(**vars(self._counters))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted frame was delivered or failed; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._mailbox is not None or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop both threads after the frames already taken (a frame still in the mailbox is dropped)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        if self.scanner is not None:
            self.scanner.close(timeout)

    def _detect_loop(self) -> None:
        while True:
            with self._cond:
                # the newest frame is taken only once the finishing stage has taken the last one detected: a frame
                # detected while the other stage is still busy would wait, ageing, in the handoff, and the frames
                # arriving meanwhile replace each other in the mailbox instead (the stream stays current)
                while (self._mailbox is None or self._handoff.full()) and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._handoff.put(_STOP)
                    return
                item, self._mailbox = self._mailbox, None
                self._busy += 1
                self._cond.notify_all()
            try:
                frame = self._decode(item.payload)
                item.detected = self.anonymizer.detect(frame, small_in_background=self.scanner is not None,
                                                       follow_lag=self.FOLLOW_LAG)
                if self.scanner is not None:
                    self.scanner.offer(frame)
            except Exception as e:  # noqa: BLE001 - any failure is handed on, in order, to fail closed
                item.error = e
            self._handoff.put(item)

    def _finish_loop(self) -> None:
        while True:
            item = self._handoff.get()
            with self._cond:
                self._cond.notify_all()  # the handoff is free: detection may take the newest frame
            if item is _STOP:
                return
            delivered = False
            try:
                if item.error is not None:
                    raise item.error
                out, faces = self.anonymizer.finish(item.detected, item.stamp)
                item.detected = None  # the raw frame is not kept past this point
                self._deliver(item, out, faces)
                delivered = True
            except Exception as e:  # noqa: BLE001 - fail closed, whatever broke (a delivery error included)
                item.detected = None
                try:
                    self._fail(item, e)
                except Exception:  # noqa: BLE001 - the stream must go on; nothing was published for this frame
                    log.exception("the failure handler raised")
            finally:
                with self._cond:
                    self._busy -= 1
                    if delivered:
                        self._counters.delivered += 1
                    else:
                        self._counters.failed += 1
                    self._cond.notify_all()
