"""`emoji-privacy anonymize INPUT...`: images, folders of images, videos and bags, without ROS running.

Also ``python -m emoji_privacy anonymize`` and ``rosrun emoji_privacy anonymize``; docs/files.md has the
options, formats and errors. Each input succeeds or fails on its own: the failures are listed at the end and
the exit status is 1; an error that stops the whole command (a usage error, the only input failing, or with
``--fail-fast`` the first failure) is one line on stderr and exit status 2. No partial output is ever left
behind (Ctrl-C included: exit 130). Into an -o folder a manifest (``manifest.py``) records what is done, and
``--ray`` runs the inputs on a Ray cluster (``fleet.py``, docs/fleet.md).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import OutputError, atomic_output
from ..errors import EmojiPrivacyError
from ..image_io import IMAGE_SUFFIXES
from .batch import (
    VIDEO_SUFFIXES,
    Job,
    Outcome,
    failure_message,
    join_units,
    plan,
    real,
    remove_unit_parts,
    run_job,
    run_unit,
    units_of,
)
from .manifest import FACES_PARTS

if TYPE_CHECKING:
    from .manifest import Manifest

PROG = "emoji-privacy"
STYLES = ("emoji", "blur", "pixelate", "solid")  # = config.EMOJI_STYLES
EXIT_FAILED = 1  # some inputs failed, the others were written
EXIT_ERROR = 2  # nothing was done: a usage error, or the one input (or with --fail-fast, the first) failed
EXIT_INTERRUPTED = 130
DEFAULT_SPLIT_S = 600.0
"""Recordings longer than 10 minutes are cut into 10-minute segments: one long bag spreads over a cluster's
workers, and the warm-up each segment costs (a few seconds) is under 1%."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (and exit 2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="Anonymize files with emoji_privacy: every face is replaced by the "
                 "emoji of its emotion (or blurred, pixelated or filled).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    an = sub.add_parser("anonymize", help="anonymize image files, folders of images, videos and bags",
                        description="Writes <name>_anonymized.<ext> beside each input (a folder: "
                        "<name>_anonymized/), or into -o. Videos (mp4, mkv, avi, webm, mov) become H.264 with "
                        "the input's size, frame rate and audio (a .webm input is written as .mp4). Each input "
                        "succeeds or fails on its own: failures are listed at the end (exit 1). Into an -o "
                        "folder, a manifest records what is done, and the same command again does only the rest.")
    an.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                    help=f"image files ({' '.join(IMAGE_SUFFIXES)}), folders of images, videos "
                    f"({' '.join(VIDEO_SUFFIXES)}), ROS 1 bags (.bag) or ROS 2 bags (folders with metadata.yaml)")
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
    an.add_argument("--fail-fast", action="store_true",
                    help="stop at the first input that fails (exit 2), instead of doing the others and listing "
                    "the failures at the end (exit 1)")
    an.add_argument("--force", action="store_true",
                    help="do every input again, even those the -o folder's manifest records as done")
    an.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="run on a Ray cluster (docs/fleet.md): 'auto' for the one `ray start` made here, "
                    "an address (host:6379, ray://host:10001), or nothing to start a local one; needs -o OUT "
                    "on storage every node sees")
    an.add_argument("--workers", type=_count, metavar="N",
                    help="with --ray: this many workers (default: one per CPU of the cluster)")
    an.add_argument("--retries", type=_count, default=2, metavar="N",
                    help="with --ray: an input whose worker died is tried again up to N times (default 2)")
    an.add_argument("--split-seconds", type=float, default=DEFAULT_SPLIT_S, metavar="S",
                    help="cut videos and bags longer than S seconds into segments of S seconds, anonymized apart "
                    "(in parallel with --ray) and joined without re-encoding; 0: never (default %(default)g)")
    an.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return ap


def _check_writable(jobs: list[Job], output: Path | None, faces_json: Path | None) -> None:
    if output is not None and any(real(j.dst).parent == real(output) for j in jobs):
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


@dataclass
class Batch:
    """A batch's jobs and its bookkeeping: the manifest (into an -o folder), each input's faces part, what
    failed and what was skipped."""

    jobs: list[Job]
    manifest: Manifest | None
    faces_json: Path | None
    parts_dir: Path | None  # where each input's faces lines wait to be joined (None: none needed, or the manifest's)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    done_before: list[Job] = field(default_factory=list)  # recorded as done by the manifest: not run again

    def faces_part(self, job: Job) -> Path | None:
        if self.faces_json is None:
            return None
        if self.manifest is not None:
            return self.manifest.faces_part(job.dst)
        if len(self.jobs) == 1:
            return self.faces_json
        return self.parts_dir / f"{self.jobs.index(job)}.jsonl"

    def todo(self, force: bool) -> list[Job]:
        """The jobs to run: all, less those the manifest says are done (unless ``force``)."""
        if self.manifest is None or force:
            return list(self.jobs)
        out = []
        for job in self.jobs:
            if self.manifest.is_done(job.src, job.dst):
                self.done_before.append(job)
                failed, skipped = self.manifest.left_out(job.src)
                self.failures += failed
                self.skipped += skipped
            else:
                out.append(job)
        return out

    def finished(self, job: Job, outcome: Outcome, identity: dict | None) -> None:
        self.failures += outcome.failed_items
        self.skipped += outcome.skipped
        if self.manifest is not None and identity is not None:
            self.manifest.record(job.src, job.dst, identity, outcome.frames, outcome.seconds,
                                 outcome.failed_items, outcome.skipped)

    def failed(self, job: Job, reason: str) -> None:
        self.failures.append((str(job.src), reason))
        if self.manifest is not None:
            self.manifest.forget(job.src)

    def join_faces(self) -> None:
        """Every input's faces lines into --faces-json, in the order of the inputs (those done before too)."""
        if self.faces_json is None or (self.manifest is None and len(self.jobs) == 1):
            return
        with atomic_output(self.faces_json) as out, open(out, "wb") as f:
            for job in self.jobs:
                part = self.faces_part(job)
                if part is not None and part.exists():
                    f.write(part.read_bytes())


@contextlib.contextmanager
def _batch(jobs: list[Job], output: Path | None, faces_json: Path | None, config) -> Iterator[Batch]:
    """The Batch of ``jobs``: with a manifest when every output goes into the -o folder."""
    manifest = None
    if output is not None and jobs and all(real(j.dst).parent == real(output) for j in jobs):
        from .manifest import Manifest, config_hash, models_hash

        manifest = Manifest(output, config_hash(config), models_hash(config), faces_json is not None)
        if faces_json is not None:
            (output / FACES_PARTS).mkdir(exist_ok=True)
    if faces_json is None or manifest is not None or len(jobs) == 1:
        yield Batch(jobs, manifest, faces_json, None)
        return
    with tempfile.TemporaryDirectory(prefix=f".{faces_json.name}.", dir=faces_json.parent) as tmp:
        yield Batch(jobs, manifest, faces_json, Path(tmp))


def _say(message: str) -> None:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)


def _run_serial(batch: Batch, todo: list[Job], config, args: argparse.Namespace) -> None:
    """Each input in turn, in this process (a long recording segment by segment, then joined, as the workers of
    --ray would); a failure is the input's own unless --fail-fast."""
    from .manifest import input_identity

    anonymizer = None
    for job in todo:
        if anonymizer is None:  # loaded once, for every kind of input
            from ..pipeline import Anonymizer

            anonymizer = Anonymizer(config)
        faces = batch.faces_part(job)
        units = units_of(job, config, args.split_seconds)
        try:
            identity = input_identity(job.src) if batch.manifest is not None else None
            counted = "image" if job.kind == "folder" else "frame"
            with _progress_bar(job.src.name, counted, args.quiet or job.kind == "image") as update:
                if units[0].segment is None:
                    outcome = run_job(job, anonymizer, config, faces, update)
                else:
                    done = 0
                    for u in units:
                        done += run_unit(u, anonymizer, config, faces, _shifted(update, done)).frames
                    outcome = join_units(units, faces)
        except (EmojiPrivacyError, OSError) as e:
            remove_unit_parts(units, faces)
            if args.fail_fast or len(batch.jobs) == 1:
                raise
            batch.failed(job, failure_message(e))
            continue
        except BaseException:
            remove_unit_parts(units, faces)
            raise
        batch.finished(job, outcome, identity)
        if not args.quiet:
            print(outcome.line, file=sys.stderr)
        if args.fail_fast and outcome.failed_items:
            raise EmojiPrivacyError(outcome.failed_items[0][1])


def _shifted(update: Callable[[int, int], None], base: int) -> Callable[[int, int], None]:
    """A segment's progress as frames of its whole input (the segments before it done)."""
    return lambda done, _total: update(base + done, 0)


def anonymize(args: argparse.Namespace) -> int:
    from ..config import PipelineConfig

    if args.ray is None and (args.workers is not None):
        raise EmojiPrivacyError("--workers needs --ray")
    refused: list[tuple[Path, str]] | None = None if args.fail_fast or len(args.inputs) == 1 else []
    jobs = plan(args.inputs, args.output, refused)
    if args.faces_json is not None and real(args.faces_json) in {real(j.src) for j in jobs}:
        raise OutputError(f"refusing to write {args.faces_json}: it would overwrite an input")
    if args.ray is not None and (args.output is None or not jobs or any(
            real(j.dst).parent != real(args.output) for j in jobs)):
        raise EmojiPrivacyError("--ray writes into a folder: give -o OUT_DIR (on storage every node of the cluster "
                                "sees)")
    _check_writable(jobs, args.output, args.faces_json)
    config = PipelineConfig.from_yaml(args.config) if args.config is not None else PipelineConfig()
    if args.replace is not None:
        config.emoji.style = args.replace
    config.validate()
    with _batch(jobs, args.output, args.faces_json, config) as batch:
        batch.failures += [(str(src), reason) for src, reason in refused or []]
        todo = batch.todo(args.force)
        if batch.done_before and not args.quiet:
            _say(f"{len(batch.done_before)} of {len(jobs)} inputs are done already ({batch.manifest.path}); "
                 "doing the rest (--force does them all again)")
        if args.ray is not None:
            from .fleet import run_on_ray

            run_on_ray(batch, todo, config, args)
        else:
            _run_serial(batch, todo, config, args)
        batch.join_faces()
    for path, why in batch.skipped:
        _say(f"skipped {path}: {why}")
    if batch.failures:
        n = len(batch.failures)
        _say(f"{n} file{'s' if n != 1 else ''} could not be anonymized (no output for "
             f"{'them' if n != 1 else 'it'}; everything else was written):")
        for src, reason in batch.failures:
            print(f"  {src}: {' '.join(reason.split())}", file=sys.stderr)
        return EXIT_FAILED
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

