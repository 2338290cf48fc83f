"""A batch of inputs for `emoji-privacy anonymize`: where each input goes (``plan``) and one input anonymized on
its own (``run_job``), the unit that the serial tool and the Ray workers (``fleet.py``) both run.

Each input succeeds or fails by itself: ``run_job`` raises a one-line EmojiPrivacyError for its input and leaves
no output for it (every writer is atomic), so a batch lists its failures at the end and keeps the rest. The
inputs a folder leaves out (sub-folders, files that are not images) and the images of a folder that could not
be read are named in the Outcome, never dropped without a word.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import OutputError
from ..errors import EmojiPrivacyError
from ..image_io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov")  # = video.VIDEO_SUFFIXES (without importing PyAV)
VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")  # = video.CONTAINERS
BAG_SUFFIX = ".bag"
ROS2_METADATA = "metadata.yaml"
"""A ROS 2 bag (rosbag2) is a folder holding this file beside its .db3 or .mcap storage files."""
KINDS = ("image", "folder", "video", "bag", "ros2bag")

Progress = Callable[[int, int], None]


@dataclass
class Job:
    """One input and where its output goes."""

    src: Path
    kind: str  # one of KINDS
    dst: Path


@dataclass
class Outcome:
    """What one input gave: its summary line, frames (or images) written, and what it left out."""

    src: str
    dst: str
    line: str
    frames: int
    seconds: float
    failed_items: list[tuple[str, str]] = field(default_factory=list)  # images of a folder: (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files a folder leaves out: (path, why)


def input_kind(src: Path) -> str:
    """The kind of ``src`` (KINDS), or a one-line EmojiPrivacyError naming what it accepts."""
    if not src.exists():
        raise EmojiPrivacyError(f"input {src} does not exist")
    if src.is_dir():
        return "ros2bag" if (src / ROS2_METADATA).is_file() else "folder"
    suffix = src.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == BAG_SUFFIX:
        return "bag"
    if suffix in (".mcap", ".db3"):
        raise EmojiPrivacyError(f"input {src}: a ROS 2 bag is its folder; give {src.parent} (the folder holding "
                                f"{ROS2_METADATA})")
    raise EmojiPrivacyError(f"input {src}: unsupported suffix {src.suffix or '(none)'!r}; give images "
                            f"({' '.join(IMAGE_SUFFIXES)}), videos ({' '.join(VIDEO_SUFFIXES)}), bags (.bag), "
                            "ROS 2 bags (folders with metadata.yaml) or folders of images")


def default_name(src: Path, kind: str) -> str:
    if kind in ("folder", "ros2bag"):
        return f"{src.resolve().name}_anonymized"
    suffix = ".mp4" if kind == "video" and src.suffix.lower() == ".webm" else src.suffix
    return f"{src.stem}_anonymized{suffix}"


def _check_file_suffix(dst: Path, kind: str) -> None:
    allowed = {"image": IMAGE_SUFFIXES, "video": VIDEO_OUTPUT_SUFFIXES, "bag": (BAG_SUFFIX,)}[kind]
    if dst.suffix.lower() not in allowed:
        extra = " (WebM cannot hold H.264)" if dst.suffix.lower() == ".webm" else ""
        raise OutputError(f"output {dst}: unsupported suffix {dst.suffix or '(none)'!r} for a {kind}; use "
                          f"{' '.join(allowed)}{extra}")


def real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def plan(inputs: list[Path], output: Path | None,
         refused: list[tuple[Path, str]] | None = None) -> list[Job]:
    """Where each input goes; every check that needs no decoding is done here, before anything is written.

    ``refused``: when given, an input that cannot be used (missing, unsupported) is appended to it with its
    reason and left out, so that the others still run; without it the first such input raises. Two inputs
    that would write the same output, or an output that is an input, always raise (the command is wrong)."""
    kinds: list[str | None] = []
    for p in inputs:
        try:
            kinds.append(input_kind(p))
        except EmojiPrivacyError as e:
            if refused is None:
                raise
            refused.append((p, str(e)))
            kinds.append(None)
    into_folder = output is not None and (len(inputs) > 1 or output.is_dir() or kinds[0] in ("folder", "ros2bag"))
    if output is not None and into_folder and output.exists() and not output.is_dir():
        raise OutputError(f"output {output} is a file; with several inputs or a folder input, -o names a folder")
    jobs = []
    for src, kind in zip(inputs, kinds, strict=True):
        if kind is None:
            continue
        if output is None:
            dst = src.parent / default_name(src, kind)
        elif into_folder:
            dst = output / default_name(src, kind)
        else:
            dst = output
        if kind not in ("folder", "ros2bag"):
            _check_file_suffix(dst, kind)
        jobs.append(Job(src, kind, dst))
    sources = {real(j.src): j.src for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        dst = real(j.dst)
        if dst in sources:
            raise OutputError(f"refusing to write {j.dst}: it would overwrite the input {sources[dst]}")
        if dst in seen:
            raise OutputError(f"inputs {seen[dst]} and {j.src} would both write {j.dst}; give them separate -o "
                              "runs")
        seen[dst] = j.src
    return jobs


def estimate_frames(job: Job) -> int:
    """Frames (images) an input holds, from its headers only (0 when they do not say): the progress total."""
    try:
        if job.kind == "image":
            return 1
        if job.kind == "folder":
            from .images import list_images

            return len(list_images(job.src))
        if job.kind == "video":
            from .video import count_frames

            return count_frames(job.src)
        if job.kind == "bag":
            from ..ros import bags

            with bags.open_bag(job.src) as bag:
                infos = bags.topics(bag)
                return sum(infos[t].count for t in bags.image_topics(infos))
        if job.kind == "ros2bag":
            from .bag import ros2_frame_count

            return ros2_frame_count(job.src)
    except Exception:  # noqa: BLE001 - only an estimate: the run itself reports the input's problem
        log.debug("cannot estimate the frames of %s", job.src, exc_info=True)
    return 0


@dataclass
class Unit:
    """One piece of work for a worker: a whole input, or one time segment of a long recording
    (``segments.py``), written to a hidden part beside the output and joined when every part is done."""

    job: Job
    segment: Any = None  # segments.Segment, or None for the whole input

    @property
    def out(self) -> Path:
        if self.segment is None:
            return self.job.dst
        from .segments import part_path

        return part_path(self.job.dst, self.segment)

    def faces(self, faces: Path | None) -> Path | None:
        """Where this unit's faces lines go, given its input's (hidden parts beside it for a segment)."""
        if faces is None or self.segment is None:
            return faces
        return faces.with_name(f".{faces.name}.part{self.segment.index:04d}")


SPLIT_KINDS = ("video", "bag", "ros2bag")


def units_of(job: Job, config, split_seconds: float) -> list[Unit]:
    """The work units of ``job``: the whole input, or its time segments when it is a recording longer than
    ``split_seconds`` (0: never split)."""
    if split_seconds <= 0 or job.kind not in SPLIT_KINDS:
        return [Unit(job)]
    if job.kind == "video" and job.dst.suffix.lower() == ".avi":
        return [Unit(job)]  # AVI takes H.264 only as Annex B: the parts (MP4) cannot be stream-copied into it
    from .segments import plan_segments

    try:
        segments = plan_segments(job.src, job.kind, config, split_seconds)
    except EmojiPrivacyError:
        return [Unit(job)]  # the whole run reports what is wrong with the input
    return [Unit(job)] if len(segments) <= 1 else [Unit(job, s) for s in segments]


def run_unit(unit: Unit, anonymizer, config, faces: Path | None, progress: Progress | None) -> Outcome:
    """``run_job`` for a whole input; for a segment, its part (``faces``: the input's faces file)."""
    if unit.segment is None:
        return run_job(unit.job, anonymizer, config, faces, progress)
    from .segments import anonymize_segment

    t0 = time.perf_counter()
    seg, job = unit.segment, unit.job
    try:
        anonymizer.reset(new_stream=True)
        n = anonymize_segment(job.src, job.kind, seg, unit.out, config, anonymizer, progress,
                              faces_json=unit.faces(faces))
    except (EmojiPrivacyError, OSError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - as run_job: name the input
        log.debug("unexpected error", exc_info=True)
        raise EmojiPrivacyError(f"cannot anonymize {job.src}: {type(e).__name__}: {e}") from e
    return Outcome(str(job.src), str(unit.out), f"wrote part {seg.index + 1} of {seg.count} of {job.dst}", n,
                   time.perf_counter() - t0)


def join_units(units: list[Unit], faces: Path | None) -> Outcome:
    """The parts of one input's segments joined into its output (and their faces lines into ``faces``); the
    parts are removed. Outcome of the whole input."""
    from .segments import join_faces_json, join_segments

    job = units[0].job
    t0 = time.perf_counter()
    join_segments(job.kind, [u.out for u in units], job.dst, job.src)
    if faces is not None:
        join_faces_json([u.faces(faces) for u in units], faces)
    remove_unit_parts(units, faces)
    frames = estimate_frames(job)
    return Outcome(str(job.src), str(job.dst), f"wrote {job.dst}: {len(units)} segments joined ({frames} frames)",
                   frames, time.perf_counter() - t0)


def remove_unit_parts(units: list[Unit], faces: Path | None) -> None:
    """The parts of segmented units (written ones and partial ones alike)."""
    import shutil

    from ..atomic import remove_partials

    for u in units:
        if u.segment is None:
            continue
        for path in (u.out, u.faces(faces)):
            if path is None:
                continue
            remove_partials(path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def failure_message(e: BaseException) -> str:
    """The one line that names why an input failed (an OSError's file and reason, else the error's text)."""
    if isinstance(e, OSError) and not isinstance(e, EmojiPrivacyError):
        return f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e)
    return str(e)


def run_job(job: Job, anonymizer, config, faces: Path | None, progress: Progress | None) -> Outcome:
    """Anonymize one input into ``job.dst`` (atomically). Raises a one-line EmojiPrivacyError (or OSError)
    for this input; any other exception is turned into one that names the input."""
    t0 = time.perf_counter()
    try:
        return _run(job, anonymizer, config, faces, progress, t0)
    except (EmojiPrivacyError, OSError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a reader's own error (e.g. rosbag's): name the input
        log.debug("unexpected error", exc_info=True)
        raise EmojiPrivacyError(f"cannot anonymize {job.src}: {type(e).__name__}: {e}") from e


def _run(job: Job, anonymizer, config, faces: Path | None, progress: Progress | None, t0: float) -> Outcome:
    src, dst = str(job.src), str(job.dst)
    if anonymizer is not None:
        anonymizer.reset(new_stream=True)  # the same output whatever this worker did before
    if job.kind == "video":
        from .video import anonymize_video

        s = anonymize_video(job.src, job.dst, anonymizer, faces_json=faces, progress=progress)
        failed = f", {s.failed} failed frames masked whole" if s.failed else ""
        return Outcome(src, dst, f"wrote {job.dst}: {s.frames} frames {s.width}x{s.height} at {s.fps:.2f} fps, "
                       f"{'with' if s.audio else 'no'} audio, {s.seconds:.1f} s "
                       f"({s.frames / max(s.seconds, 1e-9):.1f} frames/s){failed}", s.frames, s.seconds)
    if job.kind == "folder":
        from .images import anonymize_folder

        s = anonymize_folder(job.src, job.dst, anonymizer, faces_json=faces, progress=progress)
        left = f", {len(s.failed)} could not be read" if s.failed else ""
        return Outcome(src, dst, f"wrote {job.dst}: {s.images} images, {s.faces} faces{left}, {s.seconds:.1f} s",
                       s.images, s.seconds, list(s.failed), list(s.skipped))
    if job.kind == "image":
        from .images import anonymize_image

        n = anonymize_image(job.src, job.dst, anonymizer, faces_json=faces)
        if progress is not None:
            progress(1, 1)
        return Outcome(src, dst, f"wrote {job.dst}: {n} face{'s' if n != 1 else ''}", 1, time.perf_counter() - t0)
    if job.kind == "ros2bag":
        try:
            from .bag import anonymize_ros2_bag
        except ModuleNotFoundError as e:
            raise EmojiPrivacyError(f"cannot anonymize {job.src}: ROS 2 bags need the module {e.name}, which is "
                                    "not installed here (run `make setup`)") from e
        s = anonymize_ros2_bag(job.src, job.dst, config, faces_json=faces, progress=progress, anonymizer=anonymizer)
        return Outcome(src, dst, f"wrote {job.dst}: {s.describe()}", s.total_frames, s.seconds)
    try:  # bag: a module of its own (rosbag imports rospy), loaded only for bags
        from .bag import anonymize_bag
    except ModuleNotFoundError as e:
        raise EmojiPrivacyError(f"cannot anonymize {job.src}: bag support needs the module {e.name}, which is "
                                "not installed here (source the catkin workspace's setup.bash)") from e
    s = anonymize_bag(job.src, job.dst, config, faces_json=faces, progress=progress, anonymizer=anonymizer)
    return Outcome(src, dst, f"wrote {job.dst}: {s.describe()}", s.total_frames, s.seconds)
