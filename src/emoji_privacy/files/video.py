"""Anonymize a video file with PyAV (FFmpeg from its wheel; no system ffmpeg).

The video is decoded frame by frame and every frame goes through one Anonymizer in order, exactly as the ROS
listener's stream does (tracker ids, temporal hold, emotion smoothing; the frame times are the stamps). The result
is deterministic: the same file, config and models give the same frames and faces JSON on every run, whatever the
machine's load (no frame is dropped, the small-face level is searched inside the detection stage, and the two
overlapping stages share no state whose timing matters: streaming.PipelinedAnonymizer). It is
encoded H.264 (libx264, yuv420p, the input's size, frame rate and frame times) so browsers and phones play it;
MP4 and MOV get ``+faststart`` (the index first, so a browser starts playing before the download ends). The
first audio track is copied when the output container takes its codec (AAC or MP3 into MP4), otherwise
re-encoded to AAC. A frame the pipeline fails on is masked whole (fail_closed.masked_frame), never copied. A phone
video's rotation (display matrix) is applied before anonymizing: the output is stored upright.

Nothing half-written: the video (and the faces JSON) are written to temporary files beside the outputs and
renamed at the end; any exception or Ctrl-C removes them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..atomic import OutputError, atomic_output
from ..errors import EmojiPrivacyError, SourceError
from ..fail_closed import masked_frame
from ..image_io import check_size
from . import faces_records, json_line

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".webm", ".mov")
"""Video files the tool reads."""

CONTAINERS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
"""Output suffix -> FFmpeg muxer. WebM holds only VP8/VP9/AV1, so a .webm input is written as .mp4."""

COPY_AUDIO: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "alac"}),
    "mov": frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le"}),
    "matroska": None,  # any codec
    "avi": frozenset({"aac", "mp3", "ac3", "pcm_s16le", "pcm_u8"}),
}
"""Audio codecs copied unchanged into each container (None: all); others are re-encoded to AAC."""

VIDEO_CODEC = "libx264"
"""H.264, which browsers and phones play; its preset and quality are config keys (output/video_preset and
output/video_crf: speed against file size)."""

JPEG_RANGE = 2
"""FFmpeg's AVCOL_RANGE_JPEG: full-range luma and chroma (phone videos tagged yuvj420p or full range)."""


@dataclass
class VideoSummary:
    """What anonymize_video wrote."""

    frames: int
    fps: float  # the output's average frame rate (its frame times are the input's)
    width: int
    height: int
    audio: bool  # an audio track was written
    seconds: float  # wall time
    failed: int = 0  # frames the pipeline failed on, masked whole


def output_suffix(src: Path) -> str:
    """The suffix of the default output for a video input: the input's, except .webm -> .mp4."""
    suffix = src.suffix.lower()
    return ".mp4" if suffix == ".webm" else suffix


def container_format(dst: Path) -> str:
    """The FFmpeg muxer for ``dst``, or OutputError for a suffix that cannot hold H.264."""
    suffix = dst.suffix.lower()
    if suffix == ".webm":
        raise OutputError(f"cannot write {dst}: a .webm file cannot hold H.264 video; name it .mp4 or .mkv")
    if suffix not in CONTAINERS:
        raise OutputError(f"cannot write {dst}: unsupported video suffix {dst.suffix or '(none)'!r}; use one "
                          f"of {', '.join(CONTAINERS)}")
    return CONTAINERS[suffix]


def _ffmpeg_message(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e).strip().rstrip(".").splitlines()[0] if str(e) else type(e).__name__


def _open_input(src: Path) -> av.container.InputContainer:
    if not src.is_file():
        raise SourceError(f"input {src} does not exist" if not src.exists() else f"input {src} is not a file")
    try:
        return av.open(str(src), "r")
    except av.FFmpegError as e:
        raise SourceError(f"cannot decode {src}: {_ffmpeg_message(e)} (not a video FFmpeg can read)") from e
    except OSError as e:
        raise SourceError(f"cannot read {src}: {e.strerror or e}") from e


def count_frames(src: Path) -> int:
    """Frames of the video file ``src`` from its header (``_total_frames``; 0 when it does not say)."""
    with contextlib.closing(_open_input(Path(src))) as inp:
        if not inp.streams.video:
            return 0
        vin = inp.streams.video[0]
        return _total_frames(vin, inp, vin.average_rate or vin.guessed_rate or Fraction(30))


def _total_frames(stream: av.VideoStream, container: av.container.InputContainer, rate: Fraction) -> int:
    """Frames in the stream as its header says, or estimated from the duration (0: unknown)."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base:
        return max(0, round(float(stream.duration * stream.time_base * rate)))
    if container.duration:
        return max(0, round(container.duration / av.time_base * float(rate)))
    return 0


def _even(img: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: an odd one is padded by repeating the last row or column (of the anonymized
    frame, so nothing of the original is added)."""
    h, w = img.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return img
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def frame_to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR. Limited-range yuv420p (nearly every H.264 clip) is converted by OpenCV: the
    BT.601 matrix the writer converts back with (so the pixels outside the covers come back as they were, within
    a level or two) and without the GIL, so the pipeline's threads keep running while this one converts; any
    other pixel format goes through FFmpeg's swscale."""
    if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and frame.color_range != JPEG_RANGE):
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def display_turns(src: Path) -> int:
    """Quarter turns (counter-clockwise, np.rot90's k) that show the stored frames upright: the display matrix
    of phone videos (0 without one). The faces must be upright for the detector, and the output is stored
    upright (its size is the displayed one), so that no player has to apply the matrix."""
    try:
        with av.open(str(src)) as c:
            frame = next(c.decode(video=0), None)
            rotation = (getattr(frame, "rotation", 0) or 0) if frame is not None else 0
    except (av.FFmpegError, OSError):
        return 0  # the main pass reports the input's problem
    return round(rotation / 90) % 4


def anonymize_video(src: Path, dst: Path, anonymizer, *, faces_json: Path | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    window: tuple[float, float, float] | None = None, id_offset: int = 0) -> VideoSummary:
    """Write the anonymized ``src`` to ``dst`` (H.264 in the container of dst's suffix, with src's audio).

    ``anonymizer``: a pipeline.Anonymizer, reset here as for a new stream (track ids from 1, whatever it saw
    before) and then fed every frame in order with its time as the stamp. ``faces_json``: also write one JSON
    line per frame (docs/files.md). ``progress(done, total)`` is called after every written frame (total 0 when
    the input does not say). Raises SourceError for a missing or undecodable input, OutputError for an output
    that cannot be written; no partial file is left. The same input, config and models give the same output
    frames and faces JSON on every run (module docstring).

    ``window`` = (warm, start, end), seconds from the first frame: one time segment (files.segments), written
    without the audio: the frames in [warm, start) go through the pipeline but are not written, those in
    [start, end) are; ``id_offset`` is added to the faces JSON's track ids."""
    t_start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    fmt = container_format(dst)
    with contextlib.closing(_open_input(src)) as inp:
        if not inp.streams.video:
            raise SourceError(f"cannot anonymize {src}: it holds no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio and window is None else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        width, height = vin.codec_context.width, vin.codec_context.height
        turns = display_turns(src)
        if turns % 2:
            width, height = height, width
        try:
            check_size(height, width, anonymizer.config.output.max_pixels)
        except EmojiPrivacyError as e:
            raise SourceError(f"cannot anonymize {src}: {e}") from e
        if dst.exists() and dst.samefile(src):
            raise OutputError(f"refusing to write {dst}: it is the input; choose another output")
        total = _total_frames(vin, inp, rate)
        if window is not None and total:  # a segment's frames, as the frame rate says
            last = total if math.isinf(window[2]) else min(total, math.ceil(window[2] * rate))
            total = max(0, last - math.ceil(window[1] * rate))
        anonymizer.reset(new_stream=True)
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(dst))
            jf = None
            if faces_json is not None:
                jf = stack.enter_context(open(stack.enter_context(atomic_output(Path(faces_json))), "w"))
            out_cfg = anonymizer.config.output
            x264 = {"preset": out_cfg.video_preset, "crf": str(out_cfg.video_crf)}
            writer = _Writer(tmp, fmt, rate, width, height, vin, ain, x264)
            stack.callback(writer.close)
            frames, failed = _run(src, inp, vin, ain, writer, anonymizer, jf, progress, total, turns, window,
                                  id_offset)
            writer.finish()
        return VideoSummary(frames, writer.fps(frames), writer.width, writer.height, writer.aout is not None,
                            time.perf_counter() - t_start, failed)


class _Writer:
    """The output container: H.264 video, and the audio copied or re-encoded to AAC."""

    def __init__(self, path: Path, fmt: str, rate: Fraction, width: int, height: int, vin: av.VideoStream,
                 ain: av.AudioStream | None, x264: dict[str, str],
                 video_template: av.VideoStream | None = None) -> None:
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self.out = av.open(str(path), "w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as e:
            raise OutputError(f"cannot write {path}: {_ffmpeg_message(e)}") from e
        self.closed = False
        self.lock = threading.Lock()  # video is muxed by the pipeline's finishing thread, audio by the reader
        self.width, self.height = width + width % 2, height + height % 2
        self.encoding = video_template is None  # else the packets of ``video_template``'s kind are copied in
        if self.encoding:
            self.vout = self.out.add_stream(VIDEO_CODEC, rate=rate, options=x264)
            self.vout.width, self.vout.height, self.vout.pix_fmt = self.width, self.height, "yuv420p"
        else:
            self.vout = self.out.add_stream_from_template(video_template)
        self.in_time_base = vin.time_base
        if fmt == "avi":  # AVI has a constant frame rate: one tick per frame (frame times rounded to it)
            self.time_base = 1 / Fraction(vin.guessed_rate or rate).limit_denominator(1001000)
        else:  # the input's frame times, unchanged
            self.time_base = vin.time_base
        if self.encoding:
            self.vout.codec_context.time_base = self.time_base
        self.step = max(1, round(1 / float(rate * self.time_base)))  # one frame, in time_base units
        self.first_pts: int | None = None
        self.last_pts: int | None = None
        self.aout = None
        self.copy_audio = False
        self.resampler = None
        if ain is not None:
            allowed = COPY_AUDIO[fmt]
            self.copy_audio = allowed is None or ain.codec_context.name in allowed
            if self.copy_audio:
                self.aout = self.out.add_stream_from_template(ain)
            else:
                sample_rate = ain.codec_context.sample_rate or 48000
                layout = "mono" if ain.codec_context.channels == 1 else "stereo"
                self.aout = self.out.add_stream("aac", rate=sample_rate, layout=layout)
                self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)

    def video(self, img: np.ndarray, pts: int | None) -> None:
        if pts is not None and self.time_base != self.in_time_base:
            pts = round(pts * self.in_time_base / self.time_base)
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            pts = 0 if self.last_pts is None else self.last_pts + self.step
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts
        # OpenCV's BT.601 limited-range conversion (what swscale would do inside encode, within one level)
        # runs without the GIL, so the pipeline's threads keep going while this one converts
        yuv = cv2.cvtColor(_even(img), cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        packets = self.vout.encode(frame)
        with self.lock:
            self.out.mux(packets)

    def copy_video(self, packet: av.Packet) -> None:
        """A packet of an encoded video (a stream copy: ``video_template``), muxed unchanged."""
        packet.stream = self.vout
        with self.lock:
            self.out.mux(packet)

    def fps(self, frames: int) -> float:
        """The written video's average frame rate: its frames over its span (the last frame lasts one step)."""
        if not frames or self.first_pts is None or self.last_pts is None:
            return 0.0
        return frames / float((self.last_pts - self.first_pts + self.step) * self.time_base)

    def audio(self, packet: av.Packet) -> None:
        if self.aout is None:
            return
        if self.copy_audio:
            if packet.dts is None:  # the demuxer's flush packet
                return
            packet.stream = self.aout
            self.out.mux(packet)
            return
        for frame in packet.decode():
            self._encode_audio(frame)
        if packet.dts is None:
            self._encode_audio(None)

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        for rf in self.resampler.resample(frame):
            self.out.mux(self.aout.encode(rf))

    def finish(self) -> None:
        if self.encoding:
            self.out.mux(self.vout.encode(None))
        if self.aout is not None and not self.copy_audio:
            self.out.mux(self.aout.encode(None))
        self.closed = True
        self.out.close()

    def close(self) -> None:
        if not self.closed:  # after an error: free the file; what it holds is deleted anyway
            self.closed = True
            with contextlib.suppress(Exception):
                self.out.close()


def _run(src: Path, inp, vin, ain, writer: _Writer, anonymizer, jf, progress, total: int, turns: int,
         window: tuple[float, float, float] | None = None, id_offset: int = 0) -> tuple[int, int]:
    """Decode here, anonymize in the two overlapping stages of a PipelinedAnonymizer (detection of frame t+1
    while frame t is finished; the same stages as the listener), encode as each frame comes out, in order.

    Every frame is waited for (``block``: none is replaced), the small-face level is spread over the frames
    inside the detection stage (no background scanner), and a frame's detection follows the tracks of a fixed
    earlier frame (PipelinedAnonymizer.FOLLOW_LAG), so the result does not depend on timing: it is what
    ``anonymizer.finish(anonymizer.detect(frame, follow_lag=PipelinedAnonymizer.FOLLOW_LAG), t)`` gives frame
    by frame in one thread."""
    return _VideoRun(src, writer, anonymizer, jf, progress, total, window, id_offset).run(inp, vin, ain, turns)


class _VideoRun:
    """One video through the pipeline, as deface's loop reads, anonymizes and writes, with the stages
    overlapped: ``run`` decodes and submits, the stages deliver (or fail closed), ``_encode_loop`` writes."""

    def __init__(self, src: Path, writer: _Writer, anonymizer, jf, progress, total: int,
                 window: tuple[float, float, float] | None = None, id_offset: int = 0) -> None:
        from ..streaming import PipelinedAnonymizer

        self.src, self.writer, self.anonymizer, self.jf = src, writer, anonymizer, jf
        self.progress, self.total = progress, total
        self.frames = self.failed = self.decoded = self.reported = 0
        self.first: float | None = None  # the first frame's time: the faces JSON counts from it
        self.window, self.id_offset = window, id_offset  # a time segment (anonymize_video)
        self.write_from: float | None = None  # a segment's start (stream time): earlier frames are not written
        self.error: BaseException | None = None  # the output failed (or the run stopped): raised in run()
        # H.264 encoding gets a thread of its own: in the pipeline's finishing stage it made that stage the
        # slowest one (the encoder releases the GIL, so the stages keep running beside it)
        self.encode_queue: queue.Queue = queue.Queue(maxsize=8)
        self.encode_thread = threading.Thread(target=self._encode_loop, name="encode", daemon=True)
        self.stream = PipelinedAnonymizer(anonymizer, lambda payload: payload[0], self._deliver, self._fail,
                                          scan_small_faces=False)

    def run(self, inp, vin, ain, turns: int) -> tuple[int, int]:
        """Every frame anonymized and written in order; (frames written, frames masked because they failed)."""
        self.encode_thread.start()
        try:
            for img, pts, t in self._decoded_frames(inp, vin, ain, turns):
                self.stream.submit((img, pts, t), t, block=True)
                if self.error is not None:
                    raise self.error
                self._report()
            self._drain()
        finally:
            self._stop()
        if self.frames == 0:
            raise SourceError(f"cannot anonymize {self.src}: no video frame could be decoded")
        return self.frames, self.failed

    def _decoded_frames(self, inp, vin, ain, turns: int) -> Iterator[tuple[np.ndarray, int | None, float | None]]:
        """(upright BGR frame, pts, time) for each video frame; audio packets go to the writer on the way."""
        warm = end = None
        if self.window is not None:  # a time segment: from the keyframe before its warm-up to its end
            self.first = float((vin.start_time or 0) * vin.time_base)
            warm, self.write_from, end = (self.first + w for w in self.window)
            inp.seek(max(0, round(warm / vin.time_base)), backward=True, stream=vin)
        packets = inp.demux(*([vin] + ([ain] if ain is not None else [])))
        while True:
            try:
                packet = next(packets, None)
                if packet is None:
                    return
                if packet.stream.type == "audio":
                    with self.writer.lock:
                        self.writer.audio(packet)
                    continue
                decoded = packet.decode()
            except av.FFmpegError as e:
                where = f"after frame {self.decoded}" if self.decoded else "before its first frame"
                raise SourceError(f"cannot decode {self.src} {where}: {_ffmpeg_message(e)}") from e
            for frame in decoded:
                t = frame.time
                if warm is not None and t is not None and (t < warm or t >= end):
                    if t >= end:
                        return
                    continue
                if t is not None and self.first is None:
                    self.first = t
                img = frame_to_bgr(frame)
                if turns:
                    img = np.ascontiguousarray(np.rot90(img, turns))
                self.decoded += 1
                yield img, frame.pts, t

    def _deliver(self, item, out: np.ndarray, faces: list) -> None:
        self.encode_queue.put((item, out, faces, list(self.anonymizer.held)))

    def _fail(self, item, error: Exception) -> None:
        """Fail closed, as the listener does: the frame is replaced by the mask, counted and logged."""
        log.error("frame %d of %s failed (%s: %s); it is masked whole", self.frames, self.src,
                  type(error).__name__, error)
        self.failed += 1
        self.encode_queue.put((item, masked_frame(*item.payload[0].shape[:2]), [], []))

    def _encode_loop(self) -> None:
        while True:
            job = self.encode_queue.get()
            if job is None:
                return
            try:
                self._write(*job)
            except BaseException as e:  # noqa: BLE001 - reported in the decoding thread
                self.error = e

    def _write(self, item, out: np.ndarray, faces: list, held: list) -> None:
        """One frame into the video, and its line into the faces JSON."""
        if self.error is not None:
            return  # the output already failed: the run stops at the next frame
        _img, pts, t = item.payload
        if self.write_from is not None and t is not None and t < self.write_from:
            return  # a segment's warm-up: run through the pipeline, not written
        try:
            self.writer.video(out, pts)
        except av.FFmpegError as e:
            self.error = OutputError(f"cannot write {self.writer.out.name}: {_ffmpeg_message(e)}")
            return
        if self.jf is not None:
            since = None if t is None else round(t - (self.first or 0.0), 4)
            record = faces_records(faces, held)
            for face in record["faces"] + record["held"] if self.id_offset else ():
                face["track_id"] += self.id_offset
            self.jf.write(json_line({"file": self.src.name, "frame": self.frames, "time": since, **record}))
        self.frames += 1

    def _report(self) -> None:
        """In the decoding thread, once per written frame, in order (a progress callback may raise to stop)."""
        while self.progress is not None and self.reported < self.frames:
            self.reported += 1
            self.progress(self.reported, self.total)

    def _drain(self) -> None:
        """The frames still in the stages, then those still being encoded."""
        while not self.stream.drain(0.2):
            self._report()
        self.encode_queue.put(None)
        while self.encode_thread.is_alive():
            self.encode_thread.join(0.2)
            self._report()
        self._report()
        if self.error is not None:
            raise self.error

    def _stop(self) -> None:
        self.stream.close()
        if self.encode_thread.is_alive():  # stopped early: the encoder drops what is queued and ends
            self.error = self.error or OutputError("stopped")
            with contextlib.suppress(queue.Full):
                self.encode_queue.put(None, timeout=5)
            self.encode_thread.join(5)
