"""Evaluate the anonymizer on a bag and write a report folder.

Two modes, chosen from the bag's topics (or --mode):
- offline: the bag holds camera frames (sensor_msgs/Image in any supported encoding, or
  CompressedImage). The same pipeline as the listener runs on every frame here, as fast as it
  can, and the report covers its faces, tracks, emotions, speed and privacy leaks.
- listener: the bag holds the listener's output (`anonymized/image` + `anonymized/faces`, e.g.
  recorded by `replay.launch record:=...`). The report covers what the live system did: latency
  from input to output, dropped frames, and (when the input frames were recorded too) leaks.

    python -m emoji_privacy.evaluation bag clip.bag                 # report in clip_report/
    rosrun emoji_privacy evaluate_bag out.bag --out report --fail-on-leak
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from ..config import PipelineConfig
from ..errors import BagError, ImageFormatError
from .leaks import LeakMeter, independent_backend
from .records import Evaluation, FaceObservation, FrameRecord, frame_interval
from .report import SheetFrames, VideoOut, write_report

if TYPE_CHECKING:
    from ..pipeline import Anonymizer

STAMP_PROBE = 30  # messages read ahead to find the frame rate for the video


@dataclass
class Options:
    """What to evaluate and how (the command line, as a value the benchmarks can build)."""

    topic: str | None = None  # offline: the image topic; listener: the input (original) topic
    mode: str = "auto"  # auto | offline | listener
    config: PipelineConfig | None = None
    leak_check: bool = True
    truth_threshold: float = 0.5
    probe_threshold: float = 0.2
    video: bool = True
    max_frames: int = 0
    progress: bool = True
    anonymizer: Anonymizer | None = None  # offline: this loaded pipeline (with its own config) instead of a new one


class Evaluator:
    """Streams one bag through the pipeline (or through the listener's recorded output)."""

    def __init__(self, path: str | Path, options: Options, out: Path | None) -> None:
        from ..ros import bags as bag_io  # rosbag imports rospy: loaded by this tool only, never by the library

        self.bag_io = bag_io
        self.path, self.opt, self.out = Path(path), options, out
        self.bag = bag_io.open_bag(self.path)
        self.infos = bag_io.topics(self.bag)
        self.out_image, self.out_faces = bag_io.output_topics(self.infos)
        mode = options.mode
        if mode == "auto":
            mode = "listener" if self.out_image else "offline"
        if mode == "listener" and not self.out_image:
            raise BagError(f"bag {self.path} holds no anonymized/image topic of the listener; its topics: "
                           f"{bag_io.describe(self.infos)}")
        self.mode = mode
        outputs = tuple(n for n in bag_io.image_topics(self.infos) if n.endswith(bag_io.OUTPUT_IMAGE_SUFFIXES))
        if mode == "offline":
            self.topic = bag_io.choose_image_topic(self.path, self.infos, options.topic, exclude=outputs)
            self.input_topic: str | None = None
        else:
            self.topic = self.out_image
            inputs = [n for n in bag_io.image_topics(self.infos) if n not in outputs]
            self.input_topic = (bag_io.choose_image_topic(self.path, self.infos, options.topic, exclude=outputs)
                                if options.topic or inputs else None)
        self.first_stamps = self._check_frames()
        self.config = options.anonymizer.config if options.anonymizer else options.config or PipelineConfig()
        self.meter: LeakMeter | None = None

    def _check_frames(self) -> list[float]:
        """Decode the first frame (so an unusable topic fails before any model loads); return the
        stamps of the first few frames (for the video's frame rate)."""
        from ..ros.messages import image_to_bgr, stamp_seconds

        stamps = []
        for i, (_, msg, _) in enumerate(self.bag_io.read(self.bag, [self.topic])):
            if i == 0:
                try:
                    image_to_bgr(msg)
                except ImageFormatError as e:
                    raise BagError(f"topic {self.topic} of {self.path}: {e}") from e
            stamps.append(stamp_seconds(msg))
            if i + 1 >= STAMP_PROBE:
                break
        return stamps

    def total(self) -> int:
        n = self.infos[self.topic].count
        return min(n, self.opt.max_frames) if self.opt.max_frames > 0 else n

    def run(self, truth_cache: dict[int, np.ndarray] | None = None) -> Evaluation:
        if self.opt.leak_check and (self.mode == "offline" or self.input_topic):
            self.meter = LeakMeter(independent_backend(self.config.detector.backend), self.opt.truth_threshold,
                                   self.opt.probe_threshold)
        ev = Evaluation(str(self.path), self.mode, self.topic, [], input_topic=self.input_topic,
                        leak_detector=self.meter.describe() if self.meter else "")
        self.video = VideoOut(self.out / "anonymized.mp4", 1.0 / frame_interval(self.first_stamps)) \
            if self.out is not None and self.opt.video else None
        self.sheet = SheetFrames(self.total())
        self.bar = tqdm(total=self.total(), unit="frame", desc=f"evaluate_bag {self.path.name}",
                        disable=not self.opt.progress)
        t0 = time.perf_counter()
        try:
            if self.mode == "offline":
                self._offline(ev, truth_cache)
            else:
                self._listener(ev)
        finally:
            self.bar.close()
            if self.video is not None:
                self.video.close()
        ev.wall_s = time.perf_counter() - t0
        if not ev.records:
            raise BagError(f"no frame of {self.topic} in {self.path} could be evaluated"
                           + (f" (first error: {ev.first_error})" if ev.first_error else ""))
        ev.height, ev.width = self._size
        return ev

    def _frame_done(self, ev: Evaluation, record: FrameRecord, original: np.ndarray | None,
                    anonymized: np.ndarray) -> None:
        ev.records.append(record)
        self._size = anonymized.shape[:2]
        if self.video is not None:
            self.video.write(anonymized)
        self.sheet.offer(record.index, original, anonymized, bool(record.leaks and record.leaks.count),
                         record.stamp)
        self.bar.update()

    def _leaks(self, original: np.ndarray, anonymized: np.ndarray, faces: list[FaceObservation], dt: float,
               index: int, truth_cache: dict[int, np.ndarray] | None):
        if self.meter is None or original is None:
            return None
        known = truth_cache.get(index) if truth_cache is not None else None
        leaks = self.meter.measure(original, anonymized, [(f.track_id, f.box) for f in faces], dt, known)
        if truth_cache is not None:
            truth_cache[index] = leaks.truth
        return leaks

    def _undecodable(self, ev: Evaluation, error: Exception) -> None:
        ev.undecodable += 1
        ev.first_error = ev.first_error or str(error)
        self.bar.update()

    def _offline(self, ev: Evaluation, truth_cache: dict[int, np.ndarray] | None) -> None:
        from ..pipeline import Anonymizer, listed_faces
        from ..ros.messages import image_to_bgr, stamp_seconds

        anonymizer = self.opt.anonymizer or Anonymizer(self.config)
        anonymizer.reset()
        ev.settings = settings_of(self.config)
        last = None
        for _, msg, _ in self.bag_io.read(self.bag, [self.topic]):
            if ev.input_frames >= self.total():
                break
            ev.input_frames += 1
            stamp = stamp_seconds(msg)
            try:
                frame = image_to_bgr(msg)
            except ImageFormatError as e:
                self._undecodable(ev, e)
                continue
            t = time.perf_counter()
            anonymized, faces = anonymizer.process(frame, stamp)
            ms = (time.perf_counter() - t) * 1e3
            obs = [FaceObservation.detected(f) for f in faces] + [FaceObservation.held_face(h) for h in anonymizer.held]
            dt = stamp - last if last is not None and stamp > last else 1.0
            last = stamp
            leaks = self._leaks(frame, anonymized, obs, dt, len(ev.records), truth_cache)  # every covered face
            record = FrameRecord(len(ev.records), stamp, listed_faces(obs), process_ms=ms, leaks=leaks)
            self._frame_done(ev, record, frame, anonymized)

    def _listener(self, ev: Evaluation) -> None:
        """Listener mode: read the bag in order, file each message (``_file``), evaluate every output as soon
        as its parts and its input are read (``_emit_ready``), the rest at the end; then count the inputs."""
        from ..ros.messages import diagnostics_values

        ev.settings = {"listener configuration": "as it ran when recorded (not known to this tool)"}
        diag = [t.name for t in self.infos.values() if t.msg_type == self.bag_io.DIAGNOSTICS_TYPE]
        names = [n for n in (self.topic, self.out_faces, self.input_topic, *diag) if n]
        state = _ListenerState()
        for topic, msg, received in self.bag_io.read(self.bag, names):
            if topic in diag:
                ev.diagnostics = diagnostics_values(msg) or ev.diagnostics
                continue
            self._file(ev, state, topic, msg, received)
            self._emit_ready(ev, state)
        self._emit_rest(ev, state)
        ev.input_frames = len(state.input_stamps)
        if ev.records and state.input_stamps:
            first = int(round(ev.records[0].stamp * 1e9))
            ev.dropped_at_start = sum(1 for s in state.input_stamps if s < first)

    def _file(self, ev: Evaluation, state: _ListenerState, topic: str, msg: object, received: float) -> None:
        """File one recorded message by its stamp: an input frame, or the image or the faces of an output."""
        ns = msg.header.stamp.to_nsec()
        if topic == self.input_topic:
            state.input_stamps.append(ns)
            ev.input_times.append(received)
            state.pending[ns] = (received, msg)
            state.newest_input = max(state.newest_input, ns)
        elif topic == self.topic:
            state.outputs.setdefault(ns, {})["image"] = (received, msg)
        else:
            state.outputs.setdefault(ns, {})["faces"] = msg

    def _enough_frames(self, ev: Evaluation) -> bool:
        return bool(self.opt.max_frames and len(ev.records) >= self.opt.max_frames)

    def _emit_ready(self, ev: Evaluation, state: _ListenerState) -> None:
        """Evaluate, oldest first, the outputs whose image and faces are read, up to the first whose input may
        still come."""
        for k in sorted(state.outputs):
            if "image" not in state.outputs[k] or ("faces" not in state.outputs[k] and self.out_faces):
                continue
            # a fast listener's output can reach the recorder before its input: wait for the input (or for
            # a later input, which shows this one was not recorded) so the original is there to compare
            if self.input_topic and k not in state.pending and state.newest_input < k:
                break
            if self._enough_frames(ev):
                break
            self._emit(ev, state, k)

    def _emit_rest(self, ev: Evaluation, state: _ListenerState) -> None:
        """At the end of the bag: the outputs whose faces message was not recorded."""
        for k in sorted(state.outputs):
            if "image" in state.outputs[k] and not self._enough_frames(ev):
                self._emit(ev, state, k)

    def _emit(self, ev: Evaluation, state: _ListenerState, ns: int) -> None:
        """Evaluate the output stamped ``ns`` against its input (the recorded original, when there is one):
        latency, leaks, the frame's record."""
        from ..ros.messages import image_to_bgr, stamp_seconds

        out, original_in = state.take(ns)
        received, msg = out["image"]
        stamp = stamp_seconds(msg)
        try:
            anonymized = image_to_bgr(msg)
            original = image_to_bgr(original_in[1]) if original_in else None
        except ImageFormatError as e:
            self._undecodable(ev, e)
            return
        faces = observations_from_message(out["faces"]) if "faces" in out else []
        latency = (received - (original_in[0] if original_in else stamp)) * 1e3
        if latency < 0:  # the recorder got the output first: the difference is its own receive jitter
            ev.output_first += 1
            latency = 0.0
        dt = stamp - state.last_stamp if state.last_stamp is not None and stamp > state.last_stamp else 1.0
        state.last_stamp = stamp
        ev.output_times.append(received)
        leaks = self._leaks(original, anonymized, faces, dt, len(ev.records), None)
        self._frame_done(ev, FrameRecord(len(ev.records), stamp, faces, latency_ms=latency, leaks=leaks),
                         original, anonymized)


@dataclass
class _ListenerState:
    """Listener mode: the recorded inputs and outputs read so far and not yet evaluated, by stamp."""

    pending: dict[int, tuple[float, object]] = field(default_factory=dict)  # input stamp (ns) -> (receipt, msg)
    # output stamp (ns) -> {"image": (receipt, msg), "faces": msg}
    outputs: dict[int, dict[str, object]] = field(default_factory=dict)
    input_stamps: list[int] = field(default_factory=list)
    newest_input: int = -1  # newest input stamp read so far (ns)
    last_stamp: float | None = None  # stamp of the last output evaluated (s)

    def take(self, ns: int) -> tuple[dict[str, object], tuple[float, object] | None]:
        """The output stamped ``ns`` and its input (None if not recorded); inputs older than it are dropped: the
        listener skipped them."""
        out = self.outputs.pop(ns)
        for k in [k for k in self.pending if k < ns]:
            del self.pending[k]
        return out, self.pending.pop(ns, None)


def observations_from_message(msg: object) -> list[FaceObservation]:
    """emoji_privacy/FaceEmotionArray (e.g. read back from a bag) -> one FaceObservation per face."""
    from ..ros.messages import faces_from_message

    return [FaceObservation(track_id=f.track_id, box=f.box, score=f.score, probabilities=f.probabilities,
                            emotion_index=f.emotion_index, confidence=f.confidence, reading=f.reading)
            for f in faces_from_message(msg)]


def settings_of(cfg: PipelineConfig) -> dict[str, str]:
    t = cfg.tracking
    return {
        "detector": f"{cfg.detector.backend} at score >= {cfg.detector.score_threshold:g}",
        "tracking": (f"hold {t.hold_frames} frames, emotion smoothing {t.smoothing_s:g} s, switch margin "
                     f"{t.switch_margin:g} for {t.switch_dwell_s:g} s"
                     if t.enabled else "off (no hold, no smoothing)"),
        "landmarks / emotion": f"{cfg.landmarks.backend} / {cfg.emotion.backend}",
    }


def evaluate(path: str | Path, out: Path | None, options: Options,
             truth_cache: dict[int, np.ndarray] | None = None) -> tuple[Evaluation, Path | None]:
    """Evaluate the bag at ``path``; with ``out``, write the report folder there (returns report.md)."""
    evaluator = Evaluator(path, options, out)
    try:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        ev = evaluator.run(truth_cache)
    finally:
        evaluator.bag.close()
    report = write_report(ev, out, evaluator.sheet.image(), "anonymized.mp4" if evaluator.video else None) \
        if out is not None else None
    return ev, report
