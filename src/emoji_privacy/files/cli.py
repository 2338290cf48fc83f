"""`emoji-privacy anonymize INPUT...`: images, folders of images, videos and bags, without ROS running.

Also ``python -m emoji_privacy anonymize`` and ``rosrun emoji_privacy anonymize``; docs/files.md has the
options, formats and errors. Every error is one line on stderr and exit status 2, and leaves no partial
output behind (Ctrl-C included: exit 130).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..atomic import OutputError, atomic_output
from ..errors import EmojiPrivacyError
from ..image_io import IMAGE_SUFFIXES

PROG = "emoji-privacy"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov")  # = video.VIDEO_SUFFIXES (without importing PyAV)
VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")  # = video.CONTAINERS
BAG_SUFFIX = ".bag"
STYLES = ("emoji", "blur", "pixelate", "solid")  # = config.EMOJI_STYLES
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (and exit 2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="Anonymize files with emoji_privacy: every face is replaced by the "
                 "emoji of its emotion (or blurred, pixelated or filled).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    an = sub.add_parser("anonymize", help="anonymize image files, folders of images, videos and bags",
                        description="Writes <name>_anonymized.<ext> beside each input (a folder: "
                        "<name>_anonymized/), or into -o. Videos (mp4, mkv, avi, webm, mov) become H.264 with "
                        "the input's size, frame rate and audio (a .webm input is written as .mp4).")
    an.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                    help=f"image files ({' '.join(IMAGE_SUFFIXES)}), folders of images, videos "
                    f"({' '.join(VIDEO_SUFFIXES)}) or bags (.bag)")
    an.add_argument("-o", "--output", type=Path, metavar="OUT",
                    help="output folder (created if needed), or the output file when there is one input "
                    "(default: beside each input)")
    an.add_argument("--config", type=Path, metavar="YAML",
                    help="pipeline configuration (config/default.yaml lists every key)")
    an.add_argument("--replace", choices=STYLES, metavar="{" + ",".join(STYLES) + "}",
                    help="what covers a face: the emotion's emoji (default), or a neutral blur, pixelation or "
                    "gray fill of exactly the same disk (overrides the config's emoji.style)")
    an.add_argument("--faces-json", type=Path, metavar="F",
                    help="also write the faces as JSON lines: one line per video frame or image (track id, "
                    "box, emotion, confidence, yaw, pitch)")
    an.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return ap


@dataclass
class Job:
    src: Path
    kind: str  # image | folder | video | bag
    dst: Path


def _kind(src: Path) -> str:
    if not src.exists():
        raise EmojiPrivacyError(f"input {src} does not exist")
    if src.is_dir():
        return "folder"
    suffix = src.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == BAG_SUFFIX:
        return "bag"
    raise EmojiPrivacyError(f"input {src}: unsupported suffix {src.suffix or '(none)'!r}; give images "
                            f"({' '.join(IMAGE_SUFFIXES)}), videos ({' '.join(VIDEO_SUFFIXES)}), bags (.bag) "
                            "or folders of images")


def default_name(src: Path, kind: str) -> str:
    if kind == "folder":
        return f"{src.resolve().name}_anonymized"
    suffix = ".mp4" if kind == "video" and src.suffix.lower() == ".webm" else src.suffix
    return f"{src.stem}_anonymized{suffix}"


def _check_file_suffix(dst: Path, kind: str) -> None:
    allowed = {"image": IMAGE_SUFFIXES, "video": VIDEO_OUTPUT_SUFFIXES, "bag": (BAG_SUFFIX,)}[kind]
    if dst.suffix.lower() not in allowed:
        extra = " (WebM cannot hold H.264)" if dst.suffix.lower() == ".webm" else ""
        raise OutputError(f"output {dst}: unsupported suffix {dst.suffix or '(none)'!r} for a {kind}; use "
                          f"{' '.join(allowed)}{extra}")


def plan(inputs: list[Path], output: Path | None) -> list[Job]:
    """Where each input goes; every check that needs no decoding is done here, before anything is written."""
    kinds = [_kind(p) for p in inputs]
    into_folder = output is not None and (len(inputs) > 1 or output.is_dir() or kinds[0] == "folder")
    if output is not None and into_folder and output.exists() and not output.is_dir():
        raise OutputError(f"output {output} is a file; with several inputs or a folder input, -o names a folder")
    jobs = []
    for src, kind in zip(inputs, kinds, strict=True):
        if output is None:
            dst = src.parent / default_name(src, kind)
        elif into_folder:
            dst = output / default_name(src, kind)
        else:
            dst = output
        if kind != "folder":
            _check_file_suffix(dst, kind)
        jobs.append(Job(src, kind, dst))
    sources = {_real(j.src): j.src for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        real = _real(j.dst)
        if real in sources:
            raise OutputError(f"refusing to write {j.dst}: it would overwrite the input {sources[real]}")
        if real in seen:
            raise OutputError(f"inputs {seen[real]} and {j.src} would both write {j.dst}; give them separate -o "
                              "runs")
        seen[real] = j.src
    return jobs


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _check_writable(jobs: list[Job], output: Path | None, faces_json: Path | None) -> None:
    if output is not None and any(_real(j.dst).parent == _real(output) for j in jobs):
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create output folder {output}: {e.strerror or e}") from e
    folders = {j.dst.parent for j in jobs} | ({faces_json.parent} if faces_json is not None else set())
    for folder in sorted(folders):
        if not folder.is_dir():
            raise OutputError(f"cannot write into {folder}: no such folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into {folder}: permission denied")


@contextlib.contextmanager
def _progress_bar(desc: str, unit: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar driven by progress(done, total) calls: frames (or images) per second and the time left;
    closed on leaving, whatever happened."""
    if quiet:
        yield lambda done, total: None
        return
    from tqdm import tqdm

    bars: list[tqdm] = []  # made at the first progress: an input refused before its first frame shows no bar

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit=unit, total=total or None, dynamic_ncols=True, file=sys.stderr))
        bar = bars[0]
        if total and bar.total != max(total, done):
            bar.total = max(total, done)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


@contextlib.contextmanager
def _faces_parts(faces_json: Path | None, count: int) -> Iterator[list[Path | None]]:
    """One faces file per input: the final file itself for one input, else parts joined into it at the end."""
    if faces_json is None:
        yield [None] * count
        return
    if count == 1:
        yield [faces_json]
        return
    with tempfile.TemporaryDirectory(prefix=f".{faces_json.name}.", dir=faces_json.parent) as tmp:
        parts = [Path(tmp) / f"{i}.jsonl" for i in range(count)]
        yield parts  # type: ignore[misc]
        with atomic_output(faces_json) as out, open(out, "wb") as f:
            for p in parts:
                if p.exists():
                    f.write(p.read_bytes())


def _run_job(job: Job, anonymizer, config, faces: Path | None, quiet: bool) -> str:
    name = job.src.name
    if job.kind == "video":
        from .video import anonymize_video

        with _progress_bar(name, "frame", quiet) as update:
            s = anonymize_video(job.src, job.dst, anonymizer, faces_json=faces, progress=update)
        failed = f", {s.failed} failed frames masked whole" if s.failed else ""
        return (f"wrote {job.dst}: {s.frames} frames {s.width}x{s.height} at {s.fps:.2f} fps, "
                f"{'with' if s.audio else 'no'} audio, {s.seconds:.1f} s ({s.frames / max(s.seconds, 1e-9):.1f} "
                f"frames/s){failed}")
    if job.kind == "folder":
        from .images import anonymize_folder

        with _progress_bar(name, "image", quiet) as update:
            s = anonymize_folder(job.src, job.dst, anonymizer, faces_json=faces, progress=update)
        return f"wrote {job.dst}: {s.images} images, {s.faces} faces, {s.seconds:.1f} s"
    if job.kind == "image":
        from .images import anonymize_image

        n = anonymize_image(job.src, job.dst, anonymizer, faces_json=faces)
        return f"wrote {job.dst}: {n} face{'s' if n != 1 else ''}"
    try:  # bag: a module of its own (rosbag imports rospy), loaded only for bags
        from .bag import anonymize_bag
    except ModuleNotFoundError as e:
        raise EmojiPrivacyError(f"cannot anonymize {job.src}: bag support needs the module {e.name}, which is "
                                "not installed here (source the catkin workspace's setup.bash)") from e
    with _progress_bar(name, "frame", quiet) as update:
        s = anonymize_bag(job.src, job.dst, config, faces_json=faces, progress=update)
    return f"wrote {job.dst}: {s.describe() if hasattr(s, 'describe') else s}"


def anonymize(args: argparse.Namespace) -> int:
    from ..config import PipelineConfig

    jobs = plan(args.inputs, args.output)
    if args.faces_json is not None and _real(args.faces_json) in {_real(j.src) for j in jobs}:
        raise OutputError(f"refusing to write {args.faces_json}: it would overwrite an input")
    _check_writable(jobs, args.output, args.faces_json)
    config = PipelineConfig.from_yaml(args.config) if args.config is not None else PipelineConfig()
    if args.replace is not None:
        config.emoji.style = args.replace
    config.validate()
    anonymizer = None
    if any(j.kind != "bag" for j in jobs):
        from ..pipeline import Anonymizer

        anonymizer = Anonymizer(config)
    with _faces_parts(args.faces_json, len(jobs)) as parts:
        for job, faces in zip(jobs, parts, strict=True):
            try:
                line = _run_job(job, anonymizer, config, faces, args.quiet)
            except (EmojiPrivacyError, OSError):
                raise
            except Exception as e:  # noqa: BLE001 - a reader's own error (e.g. rosbag's): name the input
                logging.getLogger(__name__).debug("unexpected error", exc_info=True)
                raise EmojiPrivacyError(f"cannot anonymize {job.src}: {type(e).__name__}: {e}") from e
            if not args.quiet:
                print(line, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, its one line already printed)
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        return anonymize(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EmojiPrivacyError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e))
    except Exception as e:  # noqa: BLE001 - a bug or a failing model: still one line (the log has the rest)
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        return _fail(f"{type(e).__name__}: {e}")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_ERROR


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (rosrun/roslaunch stopping the tool): clean up as for Ctrl-C


def anonymize_bag_main(argv: list[str] | None = None) -> int:
    """`rosrun emoji_privacy anonymize_bag`: one bag in, one anonymized bag out (docs/bags.md)."""
    from ..config import PipelineConfig
    from . import bag
    from .bag import anonymize_bag, default_output

    ap = argparse.ArgumentParser(prog="anonymize_bag", description=bag.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", type=Path, help="ROS 1 bag file to anonymize")
    ap.add_argument("-o", "--output", type=Path,
                    help="bag to write (default: <name>_anonymized.bag beside the input)")
    ap.add_argument("--config", type=Path, help="pipeline YAML (default: the built-in defaults = config/default.yaml)")
    ap.add_argument("--faces-json", type=Path, help="also write the faces of every frame as JSON lines")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    prog = "anonymize_bag"
    dst = args.output or default_output(args.bag)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
        with _progress_bar(f"{prog} {args.bag.name}", "frame", args.quiet) as progress:
            summary = anonymize_bag(args.bag, dst, config, faces_json=args.faces_json, progress=progress)
    except EmojiPrivacyError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{prog}: {summary.describe()}; wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

