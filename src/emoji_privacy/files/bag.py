"""Recorded ROS 1 and ROS 2 bags, sanitized for sharing: every face in every image topic covered.

``anonymize_bag(src, dst, config)`` writes a new bag beside nothing else: every ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage`` topic is anonymized in place (same topic, type, header, receipt time,
encoding or compressed format; one tracker per topic, as the listener keeps one per stream, reset when
the stamps jump back), every other topic is copied byte for byte (same connection header, same receipt
time), and beside each image topic ``<image topic>/faces`` (emoji_privacy/FaceEmotionArray, one message
per frame with the frame's header) says which faces were covered and their emotions.

Fail-closed: a frame that cannot be decoded or anonymized is written fully masked (the striped mask of the
listener, at the frame's own size when it is known), never copied, and counted. Nothing half-written: the
bag is written to a hidden file beside ``dst`` and renamed at the end; an error or Ctrl-C removes it.

    rosrun emoji_privacy anonymize_bag in.bag -o out.bag [--config YAML] [--faces-json F] [--quiet]
    emoji-privacy anonymize in.bag -o out.bag

(the command line is ``files.cli.anonymize_bag_main``)

ROS 2 bags: ``anonymize_ros2_bag(src, dst, config)`` reads a rosbag2 folder (``metadata.yaml`` and its
``.db3`` sqlite3 or ``.mcap`` storage files; ``src`` may also be one of those files, which stands for its
folder) and writes the folder ``dst`` in the same storage format: the same topics, message counts, receipt
times and headers, every ``sensor_msgs/msg/Image`` and ``CompressedImage`` topic anonymized in place, every
other message copied as its CDR bytes with its connection's type, definition, hash, serialization format and
QoS profiles, and beside each image topic ``<image topic>/faces`` (``emoji_privacy/msg/FaceEmotionArray``, the
image topic's QoS) whose definition is registered in the bag from the package's msg/ files. The folder is
written whole or not at all (``atomic.atomic_new_folder``); an existing ``dst`` is replaced only when it is
empty or holds nothing but a rosbag2 bag. ``is_ros2_bag``, ``ros2_default_output`` (``<name>_anonymized``)
and ``ros2_frame_count`` (from metadata.yaml) cost no ``rosbags`` import, which happens only when a ROS 2 bag
is read or written (``ros.ros2_bags``).

The work on the frames (``_BagAnonymizer``, ``run_job``: tracking per topic, fail-closed masks, faces
messages and --faces-json lines) is the same for both: it reads and writes through a small backend
(``BagBackend``): ``_Ros1Bag`` (rosbag) or ``_Ros2Bag`` (rosbags).

See docs/bags.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .. import image_io
from ..atomic import atomic_new_folder, atomic_output
from ..config import PipelineConfig
from ..errors import BagError
from ..fail_closed import masked_frame
from ..ros import ros2_bags
from ..ros.common import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPE,
    TopicInfo,
    base_type,
    camera_matrix_values,
    decode_image,
    describe,
    image_topics,
    stamp_seconds,
)

FACES_SUFFIX = "/faces"
FALLBACK_SIZE = (480, 640)
"""(height, width) of the mask written for a frame whose size cannot be known (no frame of its topic decodes)."""


def faces_topic(image_topic: str) -> str:
    """The FaceEmotionArray topic written beside ``image_topic``: ``<image topic>/faces``
    (``/camera/image_raw`` -> ``/camera/image_raw/faces``, ``/cam/image/compressed`` ->
    ``/cam/image/compressed/faces``): one per image topic, never shared by two of them."""
    return image_topic.rstrip("/") + FACES_SUFFIX


@dataclass
class BagSummary:
    """What ``anonymize_bag`` did."""

    src: str
    dst: str
    topics: list[str] = field(default_factory=list)  # image topics anonymized
    frames: dict[str, int] = field(default_factory=dict)  # image topic -> frames written
    faces: int = 0  # faces found and covered, all frames of all topics
    failed: int = 0  # frames that could not be decoded or anonymized: written fully masked
    copied: int = 0  # messages of other topics copied unchanged
    seconds: float = 0.0  # wall time of the whole run (models loaded, bag read and written)
    process_seconds: float = 0.0  # of which reading, anonymizing and writing the messages (after the models loaded)
    faces_topics: dict[str, str] = field(default_factory=dict)  # image topic -> its faces topic
    first_error: str = ""  # what made the first failed frame fail

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    @property
    def fps(self) -> float:
        """Image frames per second of processing (models already loaded)."""
        return self.total_frames / self.process_seconds if self.process_seconds > 0 else 0.0

    def describe(self) -> str:
        topics = ", ".join(f"{t} ({self.frames.get(t, 0)})" for t in self.topics)
        text = (f"anonymized {self.total_frames} frames on {len(self.topics)} image topic(s) [{topics}], "
                f"{self.faces} faces covered, {self.copied} other messages copied in {self.seconds:.1f} s "
                f"({self.fps:.1f} frames/s after loading the models)")
        if self.failed:
            text += f"; {self.failed} frame(s) could not be anonymized and were written fully masked " \
                    f"(first: {self.first_error})"
        return text


def check_output_folder(what: str, out: Path) -> None:
    """The folder of the output ``out`` exists and is writable, or a BagError saying which is not."""
    parent = out.parent
    if not parent.is_dir():
        raise BagError(f"cannot write the {what} {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BagError(f"cannot write the {what} {out}: folder {parent} is not writable")


def _check_paths(src: Path, dst: Path, faces_json: Path | None) -> None:
    if src.name.endswith(".active"):
        raise BagError(f"{src} is a bag still being recorded or whose recording was cut off (rosbag record "
                       f"renames it to .bag when it ends); if the recording is over, repair it with "
                       f"`rosbag reindex {src}` and pass the result")
    if not src.exists():
        raise BagError(f"bag file {src} does not exist")
    outputs = [("output bag", dst)] + ([("faces JSON", faces_json)] if faces_json is not None else [])
    for what, out in outputs:
        if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
            raise BagError(f"the {what} {out} is the input bag itself; choose another output file")
        if out.is_dir():
            raise BagError(f"the {what} {out} is a folder; give a file name")
        check_output_folder(what, out)
    if faces_json is not None and faces_json.resolve() == dst.resolve():
        raise BagError(f"the faces JSON and the output bag are the same file {dst}")


class _Stream:
    """One image topic: its own Anonymizer (tracker, hold, smoothing) and what it wrote."""

    def __init__(self, topic: str, msg_type: str, anonymizer: object) -> None:
        self.topic, self.msg_type, self.anonymizer = topic, msg_type, anonymizer
        self.raw = base_type(msg_type) == IMAGE_TYPE  # else a CompressedImage
        self.faces_topic = faces_topic(topic)
        self.last_stamp: float | None = None
        self.last_size: tuple[int, int] | None = None  # (h, w) of the last decoded frame
        self.frames = 0
        self.last_failed = False  # the last frame was masked


def _merge(native: np.ndarray, frame: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``native`` (an (H, W[, C]) uint8 or uint16 image, channels in OpenCV order as decoded with
    IMREAD_UNCHANGED) with the pixels that anonymization changed in ``frame`` -> ``out`` replaced:
    every other pixel keeps its exact original value (bit depth, alpha)."""
    changed = (out != frame).any(axis=2)
    channels = 1 if native.ndim == 2 else native.shape[2]
    cover = {1: cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), 3: out, 4: cv2.cvtColor(out, cv2.COLOR_BGR2BGRA)}[channels]
    if native.dtype == np.uint16:
        cover = cover.astype(np.uint16) * 257
    cover = cover.reshape(native.shape)
    merged = native.copy()
    merged[changed] = cover[changed]
    return merged


def _raw_data(msg: object, frame: np.ndarray, out: np.ndarray) -> bytes:
    """The sensor_msgs/Image data of ``msg`` with the anonymized pixels written in its own encoding,
    step and byte order; every other byte (pixels left unchanged, row padding) is the original's."""
    channels, dtype = image_io.ENCODINGS[msg.encoding]
    h, w = frame.shape[:2]
    px = channels * dtype.itemsize
    encoded, _, _, _ = image_io.encode_raw(out, msg.encoding)  # compact rows, this machine's byte order
    new = np.frombuffer(encoded, np.uint8).reshape(h, w, px)
    if dtype.itemsize > 1 and bool(msg.is_bigendian) == np.little_endian:
        new = new.reshape(h, w, channels, dtype.itemsize)[..., ::-1].reshape(h, w, px)
    buf = np.frombuffer(bytes(msg.data), np.uint8).copy()
    pixels = np.lib.stride_tricks.as_strided(buf, shape=(h, w, px), strides=(int(msg.step), px, 1))
    changed = (out != frame).any(axis=2)
    pixels[changed] = new[changed]
    return buf.tobytes()


def _compressed_format(msg: object) -> str:
    """'jpeg', 'png' or 'webp': the compressed image's own format (its bytes, else its format string)."""
    fmt = image_io.sniff_format(bytes(msg.data[:12]))
    if fmt:
        return fmt
    text = str(msg.format).lower()
    return "png" if "png" in text else "webp" if "webp" in text else "jpeg"


def _is_gray(msg: object) -> bool:
    """Whether a CompressedImage declares a one-channel image ('mono8; jpeg compressed mono8')."""
    return str(msg.format).split(";")[0].strip() in ("mono8", "mono16", "8UC1", "16UC1")


def _encode(img: np.ndarray, fmt: str, quality: int) -> bytes:
    if fmt == "png":
        return image_io.encode_png(img)
    params = [cv2.IMWRITE_WEBP_QUALITY, quality] if fmt == "webp" else [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, buf = cv2.imencode(f".{'webp' if fmt == 'webp' else 'jpg'}", img, params)
    if not ok:
        raise image_io.ImageFormatError(f"{fmt.upper()} encoding failed")
    return buf.tobytes()


class BagBackend(Protocol):
    """What the shared anonymizer needs of a bag format: ``_Ros1Bag`` for ROS 1, ``_Ros2Bag`` for ROS 2.

    ``items(start_ns)`` yields (topic, message type, item) for every message in recording order (from the receipt
    time ``start_ns`` on, when given: a segment, files.segments), the item being the format's own record (bytes,
    receipt time, connection), ``time_ns(item)`` its receipt time in nanoseconds, ``span_ns()`` the receipt times of
    the bag's first and last message (its headers only); ``decode(item, topic, index)`` its message (BagError
    when it is damaged); ``reread(topic)`` the messages of one topic from a second reader; ``writer(path)`` a
    context manager writing the output (``BagOutput``); ``faces_message`` the FaceEmotionArray of a frame."""

    path: Path
    infos: dict[str, TopicInfo]

    def items(self, start_ns: int | None = None) -> Iterator[tuple[str, str, Any]]: ...
    def time_ns(self, item: Any) -> int: ...
    def span_ns(self) -> tuple[int, int]: ...
    def decode(self, item: Any, topic: str, index: int) -> Any: ...
    def reread(self, topic: str) -> Iterator[Any]: ...
    def writer(self, path: Path, images: list[str]) -> contextlib.AbstractContextManager[BagOutput]: ...
    def faces_message(self, faces: list, header: Any, with_landmarks: bool) -> Any: ...
    def close(self) -> None: ...


class BagOutput(Protocol):
    """The output bag: messages copied unchanged, image messages re-serialized, faces messages, each at the
    receipt time of the item read."""

    def copy(self, item: Any) -> None: ...
    def write_image(self, item: Any, msg: Any) -> None: ...
    def write_faces(self, topic: str, msg: Any, item: Any) -> None: ...


class _BagAnonymizer:
    """The work on one bag, whatever its format: one Anonymizer per image topic, every frame anonymized or
    masked (fail-closed), every other message copied, the faces messages and --faces-json lines."""

    def __init__(self, bag: BagBackend, config: PipelineConfig, summary: BagSummary, rerun_hint: str) -> None:
        self.bag, self.src, self.config, self.summary = bag, bag.path, config, summary
        self.infos = bag.infos
        images = image_topics(self.infos)
        if not images:
            raise BagError(f"bag {self.src} holds no sensor_msgs/Image or sensor_msgs/CompressedImage messages; "
                           f"its topics: {describe(self.infos)}")
        for topic in images:
            if faces_topic(topic) in self.infos:
                raise BagError(f"bag {self.src} already has a topic {faces_topic(topic)} "
                               f"({self.infos[faces_topic(topic)].msg_type}), where the faces of {topic} would go; "
                               f"is it anonymized already? ({rerun_hint})")
        self.images = images
        self.total = sum(self.infos[t].count for t in images)
        self.streams: dict[str, _Stream] = {}
        self._lookahead: dict[str, tuple[int, int] | None] = {}

    def load(self, anonymizer: Any = None) -> None:
        """One Anonymizer per image topic (the models are loaded once and shared; the tracking is not). With
        ``anonymizer`` (the tool's, already loaded), every topic shares its models."""
        from ..pipeline import Anonymizer

        first = None
        for topic in self.images:
            if first is None:
                a = anonymizer.sharing_models() if anonymizer is not None else Anonymizer(self.config)
            else:
                a = first.sharing_models()
            first = first or a
            self.streams[topic] = _Stream(topic, self.infos[topic].msg_type, a)
            self.summary.frames[topic] = 0
            self.summary.faces_topics[topic] = faces_topic(topic)
        self.summary.topics = list(self.images)

    # --- frames -----------------------------------------------------------------------------------------------

    def anonymize(self, stream: _Stream, msg: Any) -> list:
        """Anonymize ``msg`` in place (its data, and its size fields when masked); the faces found."""
        stamp = stamp_seconds(msg)
        if stream.last_stamp is not None and stamp < stream.last_stamp:
            stream.anonymizer.reset()  # the recording jumps back in time: a new stream
        stream.last_stamp = stamp
        max_pixels = self.config.output.max_pixels
        stream.last_failed = False
        try:
            frame = decode_image(msg, not stream.raw, max_pixels)
            stream.last_size = frame.shape[:2]
            out, faces = stream.anonymizer.process(frame, stamp)
            if stream.raw:
                msg.data = _raw_data(msg, frame, out)
            else:
                msg.data = self._compressed_data(msg, frame, out)
            return faces
        except Exception as e:  # noqa: BLE001 - any failure masks the frame; the raw frame is never written
            self.summary.failed += 1
            stream.last_failed = True
            self.summary.first_error = self.summary.first_error or f"{stream.topic}: {type(e).__name__}: {e}"
            self._mask(stream, msg)
            return []

    def _compressed_data(self, msg: Any, frame: np.ndarray, out: np.ndarray) -> bytes:
        fmt = _compressed_format(msg)
        if fmt == "png":  # lossless: keep every other pixel exactly, with its bit depth and alpha
            native = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_UNCHANGED)
            if native is None or native.shape[:2] != frame.shape[:2]:
                raise image_io.ImageFormatError("PNG decodes differently a second time")
            return image_io.encode_png(_merge(native, frame, out))
        img = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY) if _is_gray(msg) else out
        return _encode(img, fmt, self.config.output.jpeg_quality)

    def _size(self, stream: _Stream, msg: Any) -> tuple[int, int]:
        """(h, w) of the mask for a failed frame: its own when known and allowed, else its topic's."""
        max_pixels = self.config.output.max_pixels
        size = None
        if stream.raw:
            size = (int(msg.height), int(msg.width))
        else:
            try:
                w, h = image_io.header_size(bytes(msg.data))
                size = (h, w)
            except image_io.ImageFormatError:
                size = None
        if size is None or size[0] < 1 or size[1] < 1 or size[0] * size[1] > max_pixels:
            size = stream.last_size or self._first_size(stream) or FALLBACK_SIZE
        return size

    def _first_size(self, stream: _Stream) -> tuple[int, int] | None:
        """The size of the first frame of the stream's topic that decodes (read with a second reader), or None."""
        topic = stream.topic
        if topic not in self._lookahead:
            self._lookahead[topic] = None
            for msg in self.bag.reread(topic):
                try:
                    self._lookahead[topic] = decode_image(msg, not stream.raw, self.config.output.max_pixels).shape[:2]
                    break
                except Exception:  # noqa: BLE001, S112 - an undecodable frame: try the next one
                    continue
        return self._lookahead[topic]

    def _mask(self, stream: _Stream, msg: Any) -> None:
        """Replace the frame of ``msg`` by the striped mask: same encoding or format, its size when known."""
        if stream.raw and msg.encoding not in image_io.ENCODINGS:
            msg.data = bytes(len(msg.data))  # an encoding this tool cannot draw in: every byte zeroed
            return
        h, w = self._size(stream, msg)
        mask = masked_frame(h, w)
        if stream.raw:
            data, h, w, step = image_io.encode_raw(mask, msg.encoding)
            msg.data, msg.height, msg.width, msg.step = data, h, w, step
            msg.is_bigendian = 0 if np.little_endian else 1
        else:
            img = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY) if _is_gray(msg) else mask
            msg.data = _encode(img, _compressed_format(msg), self.config.output.jpeg_quality)

    # --- the bag ----------------------------------------------------------------------------------------------

    def run(self, tmp: Path, faces_out: Any | None, progress: Callable[[int, int], None] | None,
            window: tuple[int, int, int] | None = None, id_offset: int = 0) -> None:
        """Every message into ``tmp``; with ``window`` = (warm, start, end) receipt times in nanoseconds (one
        segment of the bag, files.segments) only those in [start, end): the image messages in [warm, start) go
        through their topic's Anonymizer (its tracks warm up) and the camera infos there set the intrinsics, but
        nothing of them is written. ``id_offset`` is added to the track ids written (faces messages, JSON)."""
        from . import json_line

        done = 0
        total = self.total if window is None else self.window_total(window)
        if progress is not None:
            progress(0, total)
        with_landmarks = self.config.output.publish_landmarks
        info_of = {str(Path(t).parent / "camera_info"): s for t, s in self.streams.items()}
        warm, start, end = window or (None, None, None)
        with self.bag.writer(tmp, self.images) as writer:
            for topic, msg_type, item in self.bag.items(warm):
                written = True
                if window is not None:
                    t = self.bag.time_ns(item)
                    if t >= end:
                        break
                    written = t >= start  # before: the warm-up (read, never written)
                stream = self.streams.get(topic)
                if stream is None:
                    if written:
                        writer.copy(item)
                        self.summary.copied += 1
                    if base_type(msg_type) == CAMERA_INFO_TYPE and topic in info_of:  # intrinsics for the head pose
                        info = self.bag.decode(item, topic, 0)
                        info_of[topic].anonymizer.set_camera_matrix(camera_matrix_values(info))
                    continue
                msg = self.bag.decode(item, topic, stream.frames + 1)
                failed = self.summary.failed
                faces = self.anonymize(stream, msg)
                if not written:
                    self.summary.failed = failed  # a warm-up frame: counted by the segment that writes it
                    continue
                if id_offset:
                    faces = [replace(f, track_id=f.track_id + id_offset) for f in faces]
                writer.write_image(item, msg)
                writer.write_faces(stream.faces_topic, self.bag.faces_message(faces, msg.header, with_landmarks),
                                   item)
                stream.frames += 1
                self.summary.frames[topic] = stream.frames
                self.summary.faces += len(faces)
                if faces_out is not None:
                    held = [] if stream.last_failed else stream.anonymizer.held
                    if id_offset:
                        held = [replace(h, track_id=h.track_id + id_offset) for h in held]
                    faces_out.write(json_line(_faces_record(topic, stream.frames - 1, msg, faces, held)))
                done += 1
                if progress is not None:
                    progress(done, total)

    def window_total(self, window: tuple[int, int, int]) -> int:
        """The image messages of a segment, estimated from the bag's span (for ``progress``; its last call
        says the true count)."""
        first, last = self.bag.span_ns()
        share = (min(window[2], last + 1) - window[1]) / max(1, last + 1 - first)
        return max(0, min(self.total, round(self.total * share)))


class _Ros1Bag:
    """A ROS 1 bag through ``ros.bags`` (rosbag): the backend of ``anonymize_bag``."""

    def __init__(self, src: Path) -> None:
        from ..ros import bags as bag_io  # rosbag imports rospy: loaded by the tool, never by the library

        self.bag_io, self.path = bag_io, src
        self.bag = bag_io.open_bag(src)
        self.infos = bag_io.topics(self.bag)

    def items(self, start_ns: int | None = None) -> Iterator[tuple[str, str, Any]]:
        for record in self.bag_io.read_raw(self.bag, start_ns=start_ns):
            yield record[0], record[1][0], record

    def time_ns(self, item: Any) -> int:
        return item[2].to_nsec()

    def span_ns(self) -> tuple[int, int]:
        """Receipt times of the first and the last message (nanoseconds; the first one exactly)."""
        return self.bag_io.span_ns(self.bag)

    def decode(self, item: Any, topic: str, index: int) -> Any:
        raw = item[1]
        msg = raw[4]()
        try:
            msg.deserialize(raw[1])
        except Exception as e:  # noqa: BLE001 - a damaged record: say so, write nothing
            raise BagError(f"message {index} of {topic} in {self.path} is damaged ({e}); "
                           f"check the bag with `rosbag check {self.path}`") from e
        return msg

    def reread(self, topic: str) -> Iterator[Any]:
        with self.bag_io.open_bag(self.path) as bag:
            for _, msg, _ in self.bag_io.read(bag, [topic]):
                yield msg

    @contextlib.contextmanager
    def writer(self, path: Path, images: list[str]) -> Iterator[BagOutput]:
        with self.bag_io.BagWriter(path, self.bag_io.compression(self.bag)) as writer:
            yield _Ros1Output(writer)

    def faces_message(self, faces: list, header: Any, with_landmarks: bool) -> Any:
        from ..ros.messages import faces_to_message

        return faces_to_message(faces, header, with_landmarks)

    def close(self) -> None:
        self.bag.close()


class _Ros1Output:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def copy(self, item: Any) -> None:
        topic, raw, t, header = item
        self.writer.write_raw(topic, raw, t, header)

    def write_image(self, item: Any, msg: Any) -> None:
        topic, raw, t, header = item
        buf = BytesIO()
        msg.serialize(buf)
        self.writer.write_raw(topic, (raw[0], buf.getvalue(), raw[2], None, raw[4]), t, header)

    def write_faces(self, topic: str, msg: Any, item: Any) -> None:
        self.writer.write_at(topic, msg, item[2])


def _faces_record(topic: str, index: int, msg: Any, faces: list, held: list) -> dict:
    """One JSON line of --faces-json: a frame's faces, in the records of the video tool (docs/files.md)."""
    from . import faces_records

    return {"topic": topic, "frame": index, "stamp": stamp_seconds(msg),
            "frame_id": msg.header.frame_id, **faces_records(faces, held)}


def run_job(bag: BagBackend, dst: Path, config: PipelineConfig, output: Callable[[Path], Any],
            faces_json: Path | None, progress: Callable[[int, int], None] | None, rerun_hint: str,
            anonymizer: Any = None, window: tuple[int, int, int] | None = None, id_offset: int = 0) -> BagSummary:
    """Anonymize the opened ``bag`` into ``dst`` through ``output`` (``atomic_output`` for a file,
    ``atomic_new_folder`` for a folder), with the faces JSON beside it; closes ``bag``. Shared by
    ``anonymize_bag`` and ``anonymize_ros2_bag``; ``window`` and ``id_offset``: one segment of the bag
    (``_BagAnonymizer.run``, files.segments)."""
    t0 = time.perf_counter()
    summary = BagSummary(str(bag.path), str(dst))
    try:
        job = _BagAnonymizer(bag, config, summary, rerun_hint)
        job.load(anonymizer)
        # hidden partial files beside the outputs, renamed at the end (the JSON first), removed on any error
        with contextlib.ExitStack() as outputs:
            tmp = outputs.enter_context(output(dst))
            faces_out = None
            if faces_json is not None:
                faces_out = outputs.enter_context(atomic_output(faces_json)).open("w")
                outputs.callback(faces_out.close)  # closed before its rename
            t1 = time.perf_counter()
            job.run(tmp, faces_out, progress, window, id_offset)
            summary.process_seconds = time.perf_counter() - t1
    except OSError as e:
        raise BagError(f"cannot write {dst}: {e.strerror or e}") from e
    finally:
        bag.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def anonymize_bag(src: Path, dst: Path, config: PipelineConfig, *, faces_json: Path | None = None,
                  progress: Callable[[int, int], None] | None = None, anonymizer: Any = None) -> BagSummary:
    """Write ``dst``: the bag ``src`` with every face of every image topic covered (module docstring).

    ``faces_json``: also write one JSON line per frame (topic, frame, stamp, faces). ``progress(done, total)``
    is called after every image frame. ``anonymizer``: a pipeline.Anonymizer of ``config`` whose models are used
    (the file tool's, loaded once for all its inputs); without it they are loaded here. Raises BagError (or
    another EmojiPrivacyError) with a one-line message; on any error or KeyboardInterrupt no output file is left
    behind.
    """
    src, dst = Path(src), Path(dst)
    faces_json = Path(faces_json) if faces_json is not None else None
    config.validate()
    _check_paths(src, dst, faces_json)
    return run_job(_Ros1Bag(src), dst, config, atomic_output, faces_json, progress,
                   "filter it out with `rosbag filter` to run again", anonymizer)


def default_output(src: Path) -> Path:
    """``<name>_anonymized.bag`` beside the input."""
    return src.with_name(f"{src.stem}_anonymized.bag")


# --- ROS 2 bags (rosbag2) -------------------------------------------------------------------------------------


ROS2_BAG_FILE_SUFFIXES = (".db3", ".mcap", ".db3.zstd", ".mcap.zstd", ".db3-shm", ".db3-wal", ".db3-journal")
"""Files a rosbag2 folder may hold beside metadata.yaml: an output folder holding only these may be replaced."""


def is_ros2_bag(path: Path) -> bool:
    """Whether ``path`` is a ROS 2 bag: a folder holding metadata.yaml, or a ``.db3``/``.mcap`` file beside one.
    Reads no more than the folder listing (a damaged bag is still one; ``anonymize_ros2_bag`` says what is
    wrong with it)."""
    return ros2_bags.bag_folder(Path(path)) is not None


def _ros2_folder(src: Path) -> Path:
    """The bag folder of ``src`` (itself or the folder of its storage file), or a BagError saying why not."""
    src = Path(src)
    if not src.exists():
        raise BagError(f"ROS 2 bag {src} does not exist")
    folder = ros2_bags.bag_folder(src)
    if folder is not None:
        return folder
    if src.is_file() and src.suffix in ros2_bags.STORAGE_SUFFIXES.values():
        ros2_bags.read_metadata(src.parent)  # raises, saying that metadata.yaml is missing
    ros2_bags.read_metadata(src)  # a folder without metadata.yaml, or a file: raises saying which
    raise BagError(f"{src} is not a ROS 2 bag")  # not reached: read_metadata raised


def ros2_default_output(src: Path) -> Path:
    """``<name>_anonymized`` beside the bag folder (``rec/`` -> ``rec_anonymized/``; given ``rec/rec_0.mcap``,
    the same)."""
    src = Path(src)
    folder = ros2_bags.bag_folder(src) or src
    return folder.with_name(f"{folder.name}_anonymized")


def ros2_frame_count(src: Path) -> int:
    """Image messages of the bag (all its Image and CompressedImage topics), from metadata.yaml alone: the
    ``total`` that ``progress`` will be given. BagError when it is not a readable ROS 2 bag folder."""
    return ros2_bags.image_message_count(_ros2_folder(src))


def _ros2_replaceable(dst: Path) -> bool:
    """Whether an existing ``dst`` may be replaced: an empty folder, or one holding only a rosbag2 bag."""
    if not dst.is_dir() or dst.is_symlink():
        return False
    names = [p.name for p in dst.iterdir()]
    if not names:
        return True
    return "metadata.yaml" in names and all(n == "metadata.yaml" or n.endswith(ROS2_BAG_FILE_SUFFIXES) for n in names)


def _check_ros2_paths(folder: Path, dst: Path, faces_json: Path | None) -> None:
    src = folder.resolve()
    out = dst.resolve()
    if out == src or src in out.parents:
        raise BagError(f"the output bag {dst} is the input bag {folder} or inside it; choose a folder outside it")
    if out in src.parents:
        raise BagError(f"the output bag {dst} would replace a folder holding the input bag {folder}; "
                       "choose another output folder")
    if dst.exists() or dst.is_symlink():
        if not dst.is_dir():
            raise BagError(f"the output bag {dst} is a file; a ROS 2 bag is a folder: give a new folder name")
        if not _ros2_replaceable(dst):
            raise BagError(f"the output folder {dst} exists and holds more than a ROS 2 bag; give a new folder "
                           "name (an existing output bag folder is replaced)")
    check_output_folder("output bag", dst)
    if faces_json is not None:
        fj = faces_json.resolve()
        if fj == out or out in fj.parents or src in fj.parents:
            raise BagError(f"the faces JSON {faces_json} would be inside the input or output bag folder; "
                           "write it elsewhere")
        if faces_json.is_dir():
            raise BagError(f"the faces JSON {faces_json} is a folder; give a file name")
        check_output_folder("faces JSON", faces_json)


class _Ros2Bag:
    """A ROS 2 bag through ``ros.ros2_bags`` (rosbags): the backend of ``anonymize_ros2_bag``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.reader = ros2_bags.Ros2BagReader(folder)
        self.infos = self.reader.infos

    def items(self, start_ns: int | None = None) -> Iterator[tuple[str, str, Any]]:
        for conn, t, data in self.reader.messages(start=start_ns):
            yield conn.topic, conn.msgtype, (conn, t, data)

    def time_ns(self, item: Any) -> int:
        return item[1]

    def span_ns(self) -> tuple[int, int]:
        """Receipt times of the first and the last message (nanoseconds), from metadata.yaml."""
        return ros2_bags.span_ns(self.reader.metadata)

    def decode(self, item: Any, topic: str, index: int) -> Any:
        conn, _, data = item
        try:
            return ros2_bags.deserialize(data, conn.msgtype)
        except Exception as e:  # noqa: BLE001 - a damaged record: say so, write nothing
            raise BagError(f"message {index} of {topic} in {self.path} is damaged ({type(e).__name__}: {e}); "
                           f"check the bag with `ros2 bag info {self.path}`") from e

    def reread(self, topic: str) -> Iterator[Any]:
        with ros2_bags.Ros2BagReader(self.path) as reader:
            for conn, _, data in reader.messages([topic]):
                try:
                    msg = ros2_bags.deserialize(data, conn.msgtype)
                except Exception:  # noqa: BLE001, S112 - a damaged record: try the next one
                    continue
                yield msg

    @contextlib.contextmanager
    def writer(self, path: Path, images: list[str]) -> Iterator[BagOutput]:
        meta = self.reader.metadata
        compression = (meta.get("compression_mode") or "", meta.get("compression_format") or "")
        with ros2_bags.Ros2BagWriter(path, self.reader.storage, int(meta.get("version", 9)), compression,
                                     meta.get("custom_data")) as writer:
            out: dict[int, Any] = {}
            faces: dict[str, Any] = {}
            for conn in self.reader.connections:
                out[conn.id] = writer.copy_connection(conn)
                topic = faces_topic(conn.topic)
                if conn.topic in images and topic not in faces:  # the faces topic next to its image topic
                    faces[topic] = writer.add_connection(topic, ros2_bags.FACES_TYPE, qos=conn.ext.offered_qos_profiles)
            yield _Ros2Output(writer, out, faces)

    def faces_message(self, faces: list, header: Any, with_landmarks: bool) -> Any:
        return ros2_bags.faces_message(faces, header, with_landmarks)

    def close(self) -> None:
        self.reader.close()


class _Ros2Output:
    def __init__(self, writer: ros2_bags.Ros2BagWriter, connections: dict[int, Any], faces: dict[str, Any]) -> None:
        self.writer, self.connections, self.faces = writer, connections, faces

    def copy(self, item: Any) -> None:
        conn, t, data = item
        self.writer.write(self.connections[conn.id], t, data)

    def write_image(self, item: Any, msg: Any) -> None:
        conn, t, _ = item
        self.writer.write(self.connections[conn.id], t, ros2_bags.serialize(msg))

    def write_faces(self, topic: str, msg: Any, item: Any) -> None:
        self.writer.write(self.faces[topic], item[1], ros2_bags.serialize(msg))


def anonymize_ros2_bag(src: Path, dst: Path, config: PipelineConfig, *, faces_json: Path | None = None,
                       progress: Callable[[int, int], None] | None = None, anonymizer: Any = None) -> BagSummary:
    """Write the folder ``dst``: the ROS 2 bag ``src`` (a folder, or one of its storage files) with every face of
    every image topic covered (module docstring), in the same storage format.

    ``faces_json``: also write one JSON line per frame (topic, frame, stamp, faces). ``progress(done, total)``
    is called with (0, total) first and after every image frame. Raises BagError (or another
    EmojiPrivacyError) with a one-line message; on any error or KeyboardInterrupt no output is left behind
    and an existing ``dst`` is left as it was.
    """
    dst = Path(dst)
    faces_json = Path(faces_json) if faces_json is not None else None
    config.validate()
    folder = _ros2_folder(Path(src))
    _check_ros2_paths(folder, dst, faces_json)
    return run_job(_Ros2Bag(folder), dst, config, atomic_new_folder, faces_json, progress,
                   "drop that topic, e.g. with `ros2 bag convert`, to run again", anonymizer)
