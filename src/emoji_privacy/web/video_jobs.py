"""Video clips of the website: a private folder per job, one worker thread, a bounded queue, retention.

No web framework here (routes_video.py is the HTTP side). The life of a job:

- ``reserve()``: a place in the queue and a private folder (mkdtemp, mode 0700) under this server's own
  root folder (also 0700); WebRequestError 503 when one clip is processed and ``max_waiting`` more are
  uploading or waiting. The route then streams the upload into the folder (size limit while reading) and
  reads the container header (``probe_clip``: duration and resolution limits) before ``enqueue()``; any
  refusal ``discard()``s the job and its folder.
- The worker thread takes the oldest queued job and runs files.video.anonymize_video on it with a fresh
  Anonymizer (its own tracker) over models that only this thread uses: the upload -> ``anonymized.mp4``
  (H.264, the upload's audio) and ``faces.jsonl``. The upload is deleted the moment processing ends,
  whatever the outcome. A failed job's folder is deleted at once, keeping only its one-line message.
- A finished job's files are served until ``fetched_grace_s`` after every byte of the MP4 has been sent
  at least once (one download, or the range requests of a ``<video>`` element), or ``result_timeout_s``
  after processing ended, whichever comes first; then the folder is deleted and the job is kept as an
  "expired" record (no file) for RECORD_S so that its URL says what happened. DELETE discards a job at
  any point (a clip being processed stops at its next frame). Stopping the server deletes everything.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PipelineConfig
from ..errors import EmojiPrivacyError
from ..files.video import VideoSummary, anonymize_video
from ..pipeline import Anonymizer
from .settings import WebRequestError, WebSettings

log = logging.getLogger(__name__)

RECORD_S = 3600.0
"""How long a finished, failed or expired job's record (state and message, no file) is kept."""
MAX_RECORDS = 200
"""At most this many such records; the oldest go first."""
CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": ".mp4", "matroska,webm": ".mkv", "avi": ".avi"}
"""FFmpeg demuxers of the clips taken (MP4, MOV, MKV, WebM, AVI) -> the suffix the upload is stored under."""
OUTPUT, FACES = "anonymized.mp4", "faces.jsonl"


class JobCancelled(EmojiPrivacyError):
    """The job was discarded (DELETE) or the server stops while its clip was being processed."""


@dataclass
class ClipInfo:
    """What the container header of an upload says (read before any frame is decoded)."""

    container: str  # the FFmpeg demuxer
    suffix: str
    width: int
    height: int
    seconds: float | None  # None: the header does not say (then the frame count is bounded while processing)
    fps: float | None
    frames: int  # 0: the header does not say
    audio: bool
    video_codec: str


def _describe_unreadable(path: Path) -> str:
    head = path.read_bytes()[:512] if path.stat().st_size else b""
    if not head:
        return "empty"
    return "not a video" if b"\x00" in head else "text (a web page or a document?)"


def probe_clip(path: Path, max_seconds: float, max_pixels: int) -> ClipInfo:
    """Read the container header of an uploaded clip with PyAV and apply the duration and resolution limits;
    WebRequestError 415 (not a clip), 422 (damaged, no video track) or 413 (over a limit) otherwise. The clip is
    not decoded for this beyond FFmpeg's stream probing (bounded by the probe size and by ``max_pixels``)."""
    import av

    takes = "send an MP4, MOV, MKV, WebM or AVI video clip"
    try:
        # Opening probes the streams (avformat_find_stream_info), which decodes a few frames to complete what the
        # header says: max_pixels makes its decoders refuse frames over the limit, so a clip declaring huge frames
        # costs nothing here (4096x3072: 20 ms instead of 430) and is refused below from its header.
        container = av.open(str(path), "r", options={"max_pixels": str(max_pixels)})
    except av.FFmpegError as e:
        raise WebRequestError(415, f"this file is {_describe_unreadable(path)}: {takes}") from e
    with container:
        name = container.format.name
        if name not in CONTAINERS:
            what = f"a {name.removesuffix('_pipe').upper()} image" if name.endswith("_pipe") else f"a '{name}' file"
            raise WebRequestError(415, f"this file is {what}, not a video clip: {takes} (still images go to "
                                       "/api/anonymize)")
        if not container.streams.video:
            raise WebRequestError(422, "the clip holds no video track (only audio?)")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width < 1 or height < 1:
            raise WebRequestError(422, f"the clip's header declares no frame size ({width}x{height}): the file is "
                                       "damaged or its video codec is unknown")
        if width * height > max_pixels:
            raise WebRequestError(413, f"the clip is {width}x{height} ({width * height / 1e6:.1f} megapixels per "
                                       f"frame), more than the limit of {max_pixels / 1e6:.1f}: scale it down first")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        seconds = None
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        if seconds is not None and seconds > max_seconds:
            raise WebRequestError(413, f"the clip lasts {seconds:.1f} s, longer than the limit of {max_seconds:g} s: "
                                       "cut it shorter first")
        frames = int(stream.frames or 0)
        if not frames and seconds and fps:
            frames = round(seconds * fps)
        return ClipInfo(name, CONTAINERS[name], width, height, seconds, fps, frames,
                        bool(container.streams.audio), stream.codec_context.name)


def frame_limit(clip: ClipInfo, max_seconds: float) -> int:
    """Frames a clip may have: its header can lie or say nothing about the duration, so the worker counts."""
    fps = clip.fps if clip.fps and math.isfinite(clip.fps) else 60.0
    return math.ceil(max_seconds * fps) + 1


@dataclass
class TrackSpan:
    """One face track over a clip (the faces JSON lines summed up): when it is seen, and its emotions."""

    track_id: int
    first_s: float
    last_s: float
    frames: int  # detected in this many frames
    held_frames: int  # covered at its predicted place while the detector missed it
    emotion: str  # the one shown most often
    emotions: dict[str, int]  # frames per shown emotion
    changes: int  # changes of the shown emotion from one detected frame to the next


def track_timeline(faces_jsonl: Path, fps: float) -> list[TrackSpan]:
    """Per track of a faces JSON lines file (files.video: one object per frame), in order of appearance."""
    spans: dict[int, TrackSpan] = {}
    last_emotion: dict[int, str] = {}
    with open(faces_jsonl) as f:
        for line in f:
            rec = json.loads(line)
            t = rec["time"] if rec.get("time") is not None else rec["frame"] / (fps or 30.0)
            for face, held in [(x, False) for x in rec["faces"]] + [(x, True) for x in rec.get("held", [])]:
                tid = int(face["track_id"])
                s = spans.get(tid)
                if s is None:
                    s = spans[tid] = TrackSpan(tid, t, t, 0, 0, "", {}, 0)
                s.last_s = t
                if held:
                    s.held_frames += 1
                    continue
                s.frames += 1
                e = face["emotion"]
                s.emotions[e] = s.emotions.get(e, 0) + 1
                if last_emotion.get(tid, e) != e:
                    s.changes += 1
                last_emotion[tid] = e
    for s in spans.values():
        s.emotion = max(s.emotions, key=s.emotions.__getitem__) if s.emotions else ""
        s.first_s, s.last_s = round(s.first_s, 3), round(s.last_s, 3)
    return list(spans.values())


TOP_TRACKS = 10
"""Tracks the result view lists one by one: the longest; the others are summed up in one line."""


def top_tracks(spans: list[TrackSpan], top: int = TOP_TRACKS) -> tuple[list[TrackSpan], list[TrackSpan]]:
    """(the ``top`` tracks seen longest, in order of appearance; the others). A crowd clip has dozens of short
    tracks (people glimpsed behind others): a table of all of them is noise to a user, so the page lists the
    long ones and counts the rest (the faces JSON keeps every frame of every track)."""
    longest = sorted(range(len(spans)), key=lambda i: (-(spans[i].last_s - spans[i].first_s), -spans[i].frames, i))
    keep = set(longest[:top])
    return [s for i, s in enumerate(spans) if i in keep], [s for i, s in enumerate(spans) if i not in keep]


@dataclass
class VideoJob:
    id: str
    folder: Path | None  # None once deleted
    filename: str  # the client's name for the clip, for the download's name
    state: str = "uploading"  # uploading, queued, processing, done, failed, expired
    clip: ClipInfo | None = None
    frames_done: int = 0
    frames_total: int = 0
    summary: VideoSummary | None = None
    tracks: list[TrackSpan] = field(default_factory=list)
    message: str = ""
    created: float = field(default_factory=time.monotonic)
    ended: float | None = None  # processing ended (done or failed), or the record expired
    fetched: float | None = None  # every byte of the MP4 has been sent at least once
    output_bytes: int = 0
    sent: list[tuple[int, int]] = field(default_factory=list)  # merged [start, end) ranges of the MP4 sent
    readers: int = 0  # responses sending one of its files right now
    cancelled: bool = False

    @property
    def upload(self) -> Path:
        assert self.folder is not None
        return self.folder / ("upload" + (self.clip.suffix if self.clip else ""))

    def output(self, name: str) -> Path:
        assert self.folder is not None
        return self.folder / name


class ClipAnonymizers:
    """Fresh Anonymizers (each its own tracker) for the clips, over one set of models loaded on first use
    and used by the worker thread alone (the models are not thread-safe; the still-image service has its own)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self._base: Anonymizer | None = None

    def __call__(self) -> Anonymizer:
        if self._base is None:
            self._base = Anonymizer(self.config)
            return self._base
        return self._base.sharing_models()


class VideoJobs:
    """The queue, the worker thread and the retention of video jobs; thread-safe."""

    def __init__(self, settings: WebSettings, anonymizers: Callable[[], Anonymizer], tick_s: float = 0.5) -> None:
        self.settings = settings
        self.anonymizers = anonymizers
        self.tick_s = tick_s
        self.root: Path | None = None
        self._jobs: dict[str, VideoJob] = {}
        self._queue: collections.deque[VideoJob] = collections.deque()
        self._current: VideoJob | None = None
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- life of the server -------------------------------------------------------------------
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="emoji_privacy_video_", dir=self.settings.video_tmp_dir or None))
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._work, name="video-worker", daemon=True),
                         threading.Thread(target=self._reap, name="video-reaper", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the clip being processed (at its next frame), the threads, and delete every job's folder."""
        self._stopping.set()
        with self._cond:
            for job in self._jobs.values():
                job.cancelled = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)
        with self._cond:
            for job in list(self._jobs.values()):
                self._delete_folder(job)
            self._jobs.clear()
            self._queue.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- jobs ---------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(clips being processed, clips uploading or waiting)."""
        with self._cond:
            waiting = sum(j.state in ("uploading", "queued") for j in self._jobs.values())
            return int(self._current is not None), waiting

    def reserve(self, filename: str) -> VideoJob:
        """A new job with its private folder, or 503 when the queue is full."""
        if self.root is None or self._stopping.is_set():
            raise WebRequestError(503, "the video queue is not running (the server is starting or stopping)")
        with self._cond:
            processing, waiting = self.counts()
            if processing + waiting >= 1 + self.settings.max_video_waiting:
                raise WebRequestError(503, f"the video queue is full ({processing} clip being processed, {waiting} "
                                           "waiting): try again in a few minutes")
            job_id = secrets.token_urlsafe(16)  # the id is the only key to the result: unguessable
            folder = Path(tempfile.mkdtemp(prefix="job_", dir=self.root))  # mode 0700
            job = self._jobs[job_id] = VideoJob(job_id, folder, filename)
            return job

    def enqueue(self, job: VideoJob, clip: ClipInfo) -> None:
        """The upload is complete and its header passed the limits: wait for the worker."""
        with self._cond:
            if job.state != "uploading" or job.folder is None:
                raise WebRequestError(409, "this video job was discarded while uploading")
            (job.folder / "upload").rename(job.folder / ("upload" + clip.suffix))
            job.clip, job.frames_total, job.state = clip, clip.frames, "queued"
            self._queue.append(job)
            self._cond.notify_all()

    def get(self, job_id: str) -> VideoJob:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise WebRequestError(404, f"no video job '{job_id[:40]}' (discarded, or forgotten "
                                           f"{RECORD_S / 60:g} min after it ended)")
            return job

    def position(self, job: VideoJob) -> int | None:
        """1: the next clip to be processed; None when not queued."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else None

    def discard(self, job: VideoJob) -> None:
        """Forget a job and delete its folder now; a clip being processed stops at its next frame (the worker
        deletes its folder then)."""
        with self._cond:
            job.cancelled = True
            if job in self._queue:
                self._queue.remove(job)
            self._jobs.pop(job.id, None)
            if job is not self._current:
                self._delete_folder(job)

    def expires_in(self, job: VideoJob) -> float | None:
        """Seconds until a finished job's files are deleted."""
        if job.state != "done" or job.ended is None:
            return None
        now = time.monotonic()
        left = job.ended + self.settings.video_result_timeout_s - now
        if job.fetched is not None:
            left = min(left, job.fetched + self.settings.video_fetched_grace_s - now)
        return max(0.0, left)

    def open_output(self, job: VideoJob, name: str) -> Path:
        """A finished job's file to send; the caller must call ``closed_output`` when the response ends
        (the files are not deleted while being sent)."""
        with self._cond:
            if job.state == "expired" or (job.state == "done" and job.folder is None):
                raise WebRequestError(410, f"the result of this clip was deleted ({job.message})")
            if job.state == "failed":
                raise WebRequestError(409, f"this clip failed, there is no result: {job.message}")
            if job.state != "done":
                where = f", position {self.position(job)} in the queue" if job.state == "queued" else ""
                raise WebRequestError(409, f"this clip is not ready yet ({job.state}{where}): poll "
                                           f"/api/video/{job.id} until its state is 'done'")
            job.readers += 1
            return job.output(name)

    def closed_output(self, job: VideoJob, sent: tuple[int, int] | None) -> None:
        """A response of ``open_output`` ended; ``sent``: the [start, end) range of the MP4 sent in full."""
        with self._cond:
            job.readers -= 1
            if sent is None or job.fetched is not None:
                return
            ranges = sorted([*job.sent, sent])
            merged = [ranges[0]]
            for a, b in ranges[1:]:
                if a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            job.sent = merged
            if merged[0][0] <= 0 and merged[0][1] >= job.output_bytes:
                job.fetched = time.monotonic()

    # ---- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                job = self._current = self._queue.popleft()
                job.state = "processing"
            try:
                self._process(job)
            finally:
                with self._cond:
                    self._current = None

    def _process(self, job: VideoJob) -> None:
        assert job.clip is not None and job.folder is not None
        s, clip = self.settings, job.clip
        upload, video, faces = job.upload, job.output(OUTPUT), job.output(FACES)
        limit = frame_limit(clip, s.max_video_seconds)

        def progress(done: int, total: int) -> None:
            if job.cancelled or self._stopping.is_set():
                raise JobCancelled("the clip was discarded")
            if done > limit:
                said = "gave no duration" if clip.seconds is None else f"said {clip.seconds:.1f} s"
                raise WebRequestError(413, f"the clip runs longer than the limit of {s.max_video_seconds:g} s (more "
                                           f"than {limit} frames; its header {said}): cut it shorter first")
            job.frames_done, job.frames_total = done, max(total, done)

        message, summary, tracks = "", None, []
        try:
            summary = anonymize_video(upload, video, self.anonymizers(), faces_json=faces, progress=progress)
            tracks = track_timeline(faces, summary.fps)
            if not video.is_file() or video.stat().st_size == 0:
                raise WebRequestError(500, "the anonymizer wrote no video")
        except JobCancelled:
            message = "discarded"
        except EmojiPrivacyError as e:  # one-line messages meant for the user; the server's paths are not
            message = str(e).replace(str(upload), "the clip").replace(str(video), "the result")
        except Exception as e:  # noqa: BLE001 - fail closed: whatever broke, nothing of this clip is served
            log.exception("the anonymizer failed on a video clip")
            message = f"the anonymizer failed on this clip ({type(e).__name__}); nothing is returned"
        finally:
            upload.unlink(missing_ok=True)  # the original is not kept a moment longer
        with self._cond:
            job.ended = time.monotonic()
            if message or job.cancelled:
                job.state, job.message = "failed", message or "discarded"
                self._delete_folder(job)
                if job.cancelled:
                    self._jobs.pop(job.id, None)
                else:
                    log.info("video job %s failed: %s", job.id[:6], message)
                return
            job.state, job.summary, job.tracks = "done", summary, tracks
            job.output_bytes = video.stat().st_size
            job.frames_done = job.frames_total = summary.frames if summary else job.frames_done

    # ---- retention ----------------------------------------------------------------------------
    def _reap(self) -> None:
        while not self._stopping.wait(self.tick_s):
            self.expire()

    def expire(self) -> None:
        """Delete the files of jobs whose result was fetched or timed out; forget old records."""
        s = self.settings
        with self._cond:
            now = time.monotonic()
            for job in list(self._jobs.values()):
                if job.state == "done" and job.readers == 0:
                    if job.fetched is not None and now - job.fetched >= s.video_fetched_grace_s:
                        why = f"{s.video_fetched_grace_s:g} s after it was fetched"
                    elif job.ended is not None and now - job.ended >= s.video_result_timeout_s:
                        why = f"{s.video_result_timeout_s:g} s after it was ready"
                    else:
                        continue
                    self._delete_folder(job)
                    job.state, job.message, job.ended = "expired", f"deleted {why}", now
            records = sorted((j for j in self._jobs.values() if j.state in ("failed", "expired")),
                             key=lambda j: j.ended or 0.0)
            for i, job in enumerate(records):
                if now - (job.ended or 0.0) >= RECORD_S or i < len(records) - MAX_RECORDS:
                    self._jobs.pop(job.id, None)

    def _delete_folder(self, job: VideoJob) -> None:
        if job.folder is not None:
            shutil.rmtree(job.folder, ignore_errors=True)
            job.folder = None
