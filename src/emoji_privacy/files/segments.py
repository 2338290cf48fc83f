"""Long recordings split into time segments, anonymized in parallel and joined without re-encoding.

One very long bag (ROS 1 or ROS 2) or video is cut at fixed times into segments that separate workers anonymize
(the fleet's work units); the parts are then joined into the output a whole run writes:

- ``plan_segments(src, kind, config, seconds)``: the segments, from the recording's headers alone. Segment k
  covers the receipt times (bags) or frame times (videos) ``[k * seconds, (k + 1) * seconds)`` counted from the
  recording's first message or frame, the last one to the end. One segment when the recording is not longer than
  ``seconds`` (or ``seconds <= 0``).
- ``anonymize_segment(src, kind, segment, part, config, anonymizer)``: one segment into a hidden part file (or
  folder) beside the output (``part_path``), written whole or not at all. The frames of the ``warmup`` seconds
  before the segment go through the pipeline but are not written (nor the other topics' messages, nor faces):
  the tracks at the cut are warm, so the covers there are those of a whole run (``warmup_frames``).
- ``join_segments(kind, parts, dst, src)``: the parts into ``dst``. Bags: every message of the parts, in
  order, as it is in them (ROS 1: raw records with their connection headers; ROS 2: the same storage, the
  connections with their types, definitions, hashes and QoS). Videos: the parts' H.264 packets copied (no
  re-encoding), with the input's audio written as the whole-file tool writes it (``video.join_parts``).

Track ids restart in every segment (each part has its own tracker); in the faces messages and the faces JSON of
segment k they are offset by ``k * ID_STRIDE``, so an id names one face across the joined output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_new_folder, atomic_output
from ..config import PipelineConfig
from ..ros.common import IMAGE_TYPES, base_type, image_topics
from . import bag as bag_tool

KINDS = ("bag", "ros2bag", "video")
ID_STRIDE = 1_000_000
"""Track ids of segment k are offset by k * ID_STRIDE (each segment's tracker counts from 1)."""
END_NS = 2**63 - 1
"""The end of the last segment, as a receipt time (nanoseconds)."""


@dataclass(frozen=True)
class Segment:
    """One time segment of a recording; times in seconds from its first message (bags) or frame (videos)."""

    index: int
    count: int
    start: float  # the segment covers [start, end)
    end: float  # math.inf for the last one
    warmup: float  # seconds before ``start`` run through the pipeline (tracker warm-up) but not written

    @property
    def id_offset(self) -> int:
        """Added to the track ids this segment writes."""
        return self.index * ID_STRIDE


def warmup_frames(config: PipelineConfig) -> int:
    """Frames before a cut that go through the pipeline: ``hold_frames + confirm_window``.

    At a frame t a face is covered when it was detected at t or, held, in one of the ``hold_frames`` frames
    before; a held face is listed (faces messages) when its track was confirmed, which depends on the
    ``confirm_window`` frames before its last detection. With hold + confirm_window frames of warm-up, every
    track a whole run holds or lists at the cut has been seen, and confirmed or not, as in the whole run. What the
    warm-up does not give back is the state older than that: a track's velocity (a running mean, halved at every
    detection), its emotion filter (time constant ``tracking.smoothing_s``) and the frame counters that spread
    the small-face search and the landmark refreshes over frames; docs/fleet.md says what that changes."""
    t = config.tracking
    return t.hold_frames + t.confirm_window if t.enabled else 0


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def _span(src: Path, kind: str) -> tuple[float, float]:
    """(duration in seconds from the first message or frame to the last, frames per second of the slowest image
    topic or of the video; 0 when unknown), from headers and metadata."""
    if kind == "video":
        return _video_span(src)
    if kind == "bag":
        from ..ros import bags as bag_io

        with bag_io.open_bag(src) as bag:
            first, last = bag_io.span_ns(bag)
            infos = bag_io.topics(bag)
            counts = [infos[t].count for t in image_topics(infos)]
    else:
        from ..ros import ros2_bags

        meta = ros2_bags.read_metadata(bag_tool._ros2_folder(src))
        first, last = ros2_bags.span_ns(meta)
        counts = [int(t["message_count"]) for t in meta["topics_with_message_count"]
                  if base_type(t["topic_metadata"]["type"]) in IMAGE_TYPES]
    seconds = (last - first) / 1e9
    rates = [(n - 1) / seconds for n in counts if n > 1 and seconds > 0]
    return seconds, min(rates, default=0.0)


def _video_span(src: Path) -> tuple[float, float]:
    """(seconds from the first frame to the last, frames per second) of a video, from its header."""
    import av

    from .video import _open_input, _total_frames

    with _open_input(src) as inp:
        if not inp.streams.video:
            return 0.0, 0.0
        vin = inp.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate
        if not rate:
            return 0.0, 0.0
        frames = _total_frames(vin, inp, rate)
        if not frames and inp.duration:
            frames = round(inp.duration / av.time_base * float(rate))
        return max(0.0, (frames - 1) / float(rate)), float(rate)


def plan_segments(src: Path, kind: str, config: PipelineConfig, seconds: float) -> list[Segment]:
    """The segments of ``src`` (``kind``: "bag" | "ros2bag" | "video"), each ``seconds`` long but the last, which
    runs to the end; one when the recording is not longer than ``seconds`` or ``seconds <= 0``. Reads headers and
    metadata only. Every segment but the first has a warm-up of ``warmup_frames(config)`` frames at the
    recording's frame rate (its slowest image topic's)."""
    _check_kind(kind)
    duration, rate = _span(Path(src), kind)
    if seconds <= 0 or duration <= seconds:
        return [Segment(0, 1, 0.0, math.inf, 0.0)]
    count = math.ceil(duration / seconds)
    return [Segment(k, count, k * seconds, (k + 1) * seconds if k < count - 1 else math.inf,
                    _warmup(k * seconds, rate, config) if k else 0.0)
            for k in range(count)]


def _warmup(start: float, rate: float, config: PipelineConfig) -> float:
    """The warm-up of a segment starting at ``start``: at least ``warmup_frames``, lengthened so that its first
    frame's index in the recording is a multiple of ``phase_period`` (frames at i / rate assumed: the pipeline's
    frame counters of the segment then agree with those of a whole run), and half a frame before that frame."""
    if rate <= 0:
        return 0.0
    cut = math.ceil(start * rate - 1e-6)  # the first frame of the segment
    want, period = warmup_frames(config), phase_period(config)
    first = max(0, cut - want - (cut - want) % period)
    return start - (first - 0.5) / rate if first else start


def phase_period(config: PipelineConfig) -> int:
    """Frames after which the pipeline's frame counters repeat: the small-face search is spread over
    ``hold_frames`` frames (pipeline.Anonymizer.small_face_period) and a tracked face is classified every
    ``emotion.refresh_frames``; a segment's warm-up starts at a multiple of both."""
    t = config.tracking
    return math.lcm(max(1, t.hold_frames) if t.enabled else 1, max(1, config.emotion.refresh_frames))


def part_path(dst: Path, segment: Segment) -> Path:
    """The hidden part of ``segment`` beside ``dst``: ``.<dst.name>.part0003<dst's suffix>`` (a ROS 2 bag folder,
    without a suffix: ``.<name>.part0003``). A video's parts are MP4 whatever its container: Matroska and AVI
    demux some H.264 packets without a decoding time, which the join's stream copy needs."""
    dst = Path(dst)
    suffix = ".mp4" if dst.suffix.lower() in (".mkv", ".avi", ".mov") else dst.suffix
    return dst.with_name(f".{dst.name}.part{segment.index:04d}{suffix}")


def _window_ns(first_ns: int, segment: Segment) -> tuple[int, int, int]:
    """(warm-up start, start, end) of ``segment`` as receipt times in nanoseconds; every segment computes its
    bounds alike from the same first time, so each message falls in exactly one."""
    def at(seconds: float) -> int:
        return first_ns + round(seconds * 1e9)

    end = END_NS if math.isinf(segment.end) else at(segment.end)
    return at(max(0.0, segment.start - segment.warmup)), at(segment.start), end


def anonymize_segment(src: Path, kind: str, segment: Segment, part: Path, config: PipelineConfig, anonymizer: Any,
                      progress: Callable[[int, int], None] | None = None, faces_json: Path | None = None) -> int:
    """Anonymize ``segment`` of ``src`` into ``part`` (written whole or not at all, as the whole-file tools write);
    the frames written. ``anonymizer``: a loaded pipeline.Anonymizer whose models are shared (the segment gets its
    own tracking). ``faces_json``: the segment's faces JSON lines (frame numbers count from the segment's first
    frame; bag records carry their stamp, video records their time from the recording's first frame)."""
    _check_kind(kind)
    src, part = Path(src), Path(part)
    faces_json = Path(faces_json) if faces_json is not None else None
    config.validate()
    if kind == "video":
        from .video import anonymize_video

        summary = anonymize_video(src, part, anonymizer.sharing_models(), faces_json=faces_json, progress=progress,
                                  window=(segment.start - segment.warmup, segment.start, segment.end),
                                  id_offset=segment.id_offset)
        return summary.frames
    if kind == "bag":
        bag_tool._check_paths(src, part, faces_json)
        backend, output = bag_tool._Ros1Bag(src), atomic_output
        hint = "filter it out with `rosbag filter` to run again"
    else:
        folder = bag_tool._ros2_folder(src)
        bag_tool._check_ros2_paths(folder, part, faces_json)
        backend, output = bag_tool._Ros2Bag(folder), atomic_new_folder
        hint = "drop that topic, e.g. with `ros2 bag convert`, to run again"
    try:
        window = _window_ns(backend.span_ns()[0], segment)
    except BaseException:
        backend.close()
        raise
    summary = bag_tool.run_job(backend, part, config, output, faces_json, progress, hint, anonymizer,
                               window=window, id_offset=segment.id_offset)
    return summary.total_frames


def join_segments(kind: str, parts: list[Path], dst: Path, src: Path) -> None:
    """Join the ``parts`` (in segment order) into ``dst``, written whole or not at all; ``src`` is the recording
    they were cut from (its storage settings, its audio). Removes nothing it was not given (the parts stay)."""
    _check_kind(kind)
    parts, dst, src = [Path(p) for p in parts], Path(dst), Path(src)
    if not parts:
        raise ValueError("join_segments needs at least one part")
    if kind == "video":
        _join_video(parts, dst, src)
    elif kind == "bag":
        _join_ros1(parts, dst, src)
    else:
        _join_ros2(parts, dst, src)


def join_faces_json(parts: list[Path], dst: Path) -> None:
    """The faces JSON of the segments (``anonymize_segment``'s ``faces_json``, in segment order) as one file
    ``dst``, written whole or not at all: the lines in order, each frame number counted on from the previous
    segments' (per topic for a bag), as a whole run numbers them; every other field as it is (stamps, times from
    the recording's first frame, the offset track ids)."""
    import json

    from . import json_line

    frames: dict[str, int] = {}  # topic ('' for a video) -> frames of the segments before
    with atomic_output(Path(dst)) as tmp, open(tmp, "w") as out:
        for part in parts:
            seen: dict[str, int] = {}
            with open(part) as lines:
                for line in lines:
                    record = json.loads(line)
                    topic = record.get("topic", "")
                    seen[topic] = seen.get(topic, 0) + 1
                    record["frame"] += frames.get(topic, 0)
                    out.write(json_line(record))
            for topic, n in seen.items():
                frames[topic] = frames.get(topic, 0) + n


def _join_ros1(parts: list[Path], dst: Path, src: Path) -> None:
    from ..ros import bags as bag_io

    bag_tool.check_output_folder("output bag", dst)
    with bag_io.open_bag(src) as bag:
        compression = bag_io.compression(bag)
    with atomic_output(dst) as tmp, bag_io.BagWriter(tmp, compression) as writer:
        for part in parts:
            with bag_io.open_bag(part) as bag:
                for topic, raw, t, header in bag_io.read_raw(bag):
                    writer.write_raw(topic, raw, t, header)


def _join_ros2(parts: list[Path], dst: Path, src: Path) -> None:
    from ..ros import ros2_bags

    folder = bag_tool._ros2_folder(src)
    bag_tool._check_ros2_paths(folder, dst, None)
    meta = ros2_bags.read_metadata(folder)
    readers = [ros2_bags.Ros2BagReader(p) for p in parts]
    try:
        compression = (meta.get("compression_mode") or "", meta.get("compression_format") or "")
        with atomic_new_folder(dst) as tmp, ros2_bags.Ros2BagWriter(
                tmp, readers[0].storage, int(meta.get("version", 9)), compression, meta.get("custom_data")) as writer:
            made: dict[tuple[str, str], Any] = {}  # (topic, type) -> the joined bag's connection, in part 0's order
            for reader in readers:
                for conn in reader.connections:
                    if (conn.topic, conn.msgtype) not in made:
                        made[conn.topic, conn.msgtype] = writer.copy_connection(conn)
            for reader in readers:
                for conn, t, data in reader.messages():
                    writer.write(made[conn.topic, conn.msgtype], t, data)
    finally:
        for reader in readers:
            reader.close()


def _join_video(parts: list[Path], dst: Path, src: Path) -> None:
    """The parts' video packets copied in order (no re-encoding; their times are the input's frame times), and
    the input's first audio track as the whole-file tool writes it (video._Writer: copied, or re-encoded to AAC
    where the container does not take its codec)."""
    import contextlib
    import heapq

    import av

    from ..atomic import OutputError
    from .video import _ffmpeg_message, _open_input, _Writer, container_format

    fmt = container_format(dst)
    with contextlib.ExitStack() as stack:
        inp = stack.enter_context(contextlib.closing(_open_input(src)))
        opened = [stack.enter_context(contextlib.closing(_open_input(p))) for p in parts]
        streams = [c.streams.video[0] for c in opened]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        first = streams[0]
        tmp = stack.enter_context(atomic_output(dst))
        writer = _Writer(tmp, fmt, first.average_rate or first.guessed_rate, first.width, first.height, first, ain,
                         {}, video_template=first)
        stack.callback(writer.close)

        def video() -> Any:
            for c, stream in zip(opened, streams, strict=True):
                for packet in c.demux(stream):
                    if packet.size:  # not the demuxer's empty flush packet (Matroska gives no dts for some)
                        yield packet

        def audio() -> Any:
            yield from inp.demux(ain) if ain is not None else ()

        def when(packet: av.Packet) -> float:
            t = packet.dts if packet.dts is not None else packet.pts
            return float(t * packet.time_base) if t is not None else math.inf

        try:
            for packet in heapq.merge(video(), audio(), key=when):
                if packet.stream.type == "audio":
                    writer.audio(packet)
                else:
                    writer.copy_video(packet)
            writer.finish()
        except av.FFmpegError as e:
            raise OutputError(f"cannot write {dst}: {_ffmpeg_message(e)}") from e
