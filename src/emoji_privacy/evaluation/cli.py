"""The command lines of the evaluation tools: arguments, printed summaries and exit codes. The work itself
is done by the library functions of each tool's module, which these call.

- ``video_to_bag_main``: `rosrun emoji_privacy video_to_bag`, `python -m emoji_privacy.evaluation video_to_bag`
  (``video_to_bag.convert``);
- ``evaluate_bag_main``: `rosrun emoji_privacy evaluate_bag`, `python -m emoji_privacy.evaluation bag`
  (``bag.evaluate``);
- ``evaluate_emotion_main``: `rosrun emoji_privacy evaluate_emotion`, `python -m emoji_privacy.evaluation emotion`
  (``emotion.compare``);
- ``evaluate_landmarks_main``: `rosrun emoji_privacy evaluate_landmarks`,
  `python -m emoji_privacy.evaluation landmarks` (``landmarks.run``);
- ``crowd_main``: `python -m emoji_privacy.evaluation crowd` (``crowd.crowd_clip``).

Each function imports its tool's module when it runs, so a command loads only what its tool needs
(`evaluate_bag` never loads torch, which `evaluation.emotion` does). ``--help`` shows the module's docstring.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from ..config import PipelineConfig
from ..errors import ConfigError, EmojiPrivacyError
from ..image_io import ENCODINGS

if TYPE_CHECKING:
    from .records import Evaluation

EXIT_ERROR, EXIT_LEAK = 1, 3


def video_to_bag_main(argv: list[str] | None = None) -> int:
    """`rosrun emoji_privacy video_to_bag`, `python -m emoji_privacy.evaluation video_to_bag`."""
    from . import video_to_bag
    from .video_to_bag import PERTURBATION_NAMES, convert

    ap = argparse.ArgumentParser(prog="video_to_bag", description=video_to_bag.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="video file, image folder, or 'demo' (the built-in scene)")
    ap.add_argument("bag", help="bag file to write")
    ap.add_argument("--topic", default="/camera/image_raw", help="image topic (default %(default)s)")
    ap.add_argument("--encoding", default="bgr8",
                    help=f"{', '.join(ENCODINGS)} (sensor_msgs/Image) or jpeg, png (CompressedImage); "
                         "default %(default)s")
    ap.add_argument("--fps", type=float, default=0.0, help="stamp rate; 0 = the video's own (folders: 10)")
    ap.add_argument("--width", type=int, default=0, help="resize frames to this width (with --height); 0 = keep")
    ap.add_argument("--height", type=int, default=0)
    ap.add_argument("--start", type=float, default=None, help="stamp of the first frame, seconds (default: now)")
    ap.add_argument("--frame-id", default="camera")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many source frames; 0 = all")
    ap.add_argument("--perturb", action="append", default=[], choices=PERTURBATION_NAMES,
                    help="blur: motion blur; dark: brightness drops; downscale: 320x240; lowlight: a dim hall (dark, "
                         "low contrast, uneven light, sensor noise); drop: remove 30%% of the frames (stamps keep "
                         "the gaps). Repeat to combine.")
    ap.add_argument("--seed", type=int, default=0, help="seed of the 'drop' perturbation")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        n = convert(args.source, args.bag, args.topic, args.encoding, args.fps, args.width, args.height, args.start,
                    args.frame_id, args.max_frames, tuple(args.perturb), args.seed, not args.quiet)
    except EmojiPrivacyError as e:
        print(f"video_to_bag: error: {e}", file=sys.stderr)
        return 1
    print(f"video_to_bag: wrote {n} frames on {args.topic} ({args.encoding}) to {args.bag}")
    return 0


def load_config(path: str | None, overrides: list[str]) -> PipelineConfig:
    """The pipeline config from a YAML file (default: the built-in defaults) and `section.key=value` overrides."""
    data: dict = {}
    if path:
        PipelineConfig.from_yaml(path)  # validates the file with its own error messages
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set wants section.key=value (e.g. tracking.hold_frames=0), got '{item}'")
        data.setdefault(section, {})[name] = yaml.safe_load(value)
    return PipelineConfig.from_dict(data)


def summary_lines(ev: Evaluation, report: Path | None) -> list[str]:
    lines = [f"{ev.frames} frames ({ev.mode} mode), {ev.faces_per_frame():.2f} faces per frame, "
             f"{len(ev.tracks())} tracks"]
    s = ev.leak_summary()
    if s is not None:
        lines.append(f"leaked face-frames: {s.leaked} of {s.face_frames} ({s.leaked_hidden} with the face hidden); "
                     f"longest leaked run {s.max_run} frames; track id switches {s.id_switches}")
    if ev.mode == "offline":
        lines.append(f"pipeline {ev.pipeline_fps():.1f} fps ({np.mean(ev.process_ms()):.1f} ms per frame); "
                     f"evaluation {ev.evaluation_fps():.1f} fps")
    else:
        lat = ev.latency_ms()
        dropped = f"{ev.dropped} of {ev.input_frames} dropped" if ev.input_frames else "drops unknown (no input)"
        lines.append(f"output {ev.output_fps():.1f} fps, {dropped}, latency p50 "
                     f"{np.percentile(lat, 50):.1f} ms p99 {np.percentile(lat, 99):.1f} ms")
    if ev.undecodable:
        lines.append(f"{ev.undecodable} undecodable frames (first: {ev.first_error})")
    if report is not None:
        lines.append(f"report: {report} (and report.html)")
    return lines


def evaluate_bag_main(argv: list[str] | None = None) -> int:
    """`rosrun emoji_privacy evaluate_bag`, `python -m emoji_privacy.evaluation bag`."""
    from . import bag
    from .bag import Options, evaluate

    ap = argparse.ArgumentParser(prog="evaluate_bag", description=bag.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", help="ROS 1 bag file")
    ap.add_argument("--out", help="report folder (default: <bag name>_report beside the bag)")
    ap.add_argument("--topic", help="offline: the image topic to anonymize; listener mode: the recorded input "
                                    "topic (default: the only candidate)")
    ap.add_argument("--mode", choices=("auto", "offline", "listener"), default="auto",
                    help="auto (default): listener mode when the bag holds anonymized/image, else offline")
    ap.add_argument("--config", help="pipeline YAML (default: the built-in defaults = config/default.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one config value, e.g. --set tracking.hold_frames=0 (repeatable)")
    ap.add_argument("--no-leak-check", action="store_true", help="skip the privacy leak metric (faster)")
    ap.add_argument("--truth-threshold", type=float, default=0.5,
                    help="score at which the independent detector counts a face in the original frame")
    ap.add_argument("--probe-threshold", type=float, default=0.2,
                    help="score at which it counts a face still visible in the anonymized frame")
    ap.add_argument("--no-video", action="store_true", help="do not write anonymized.mp4")
    ap.add_argument("--max-frames", type=int, default=0, help="evaluate at most this many frames; 0 = all")
    ap.add_argument("--fail-on-leak", action="store_true", help=f"exit with status {EXIT_LEAK} if any face leaked")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.bag).with_name(Path(args.bag).stem + "_report")
    try:
        options = Options(args.topic, args.mode, load_config(args.config, args.set), not args.no_leak_check,
                          args.truth_threshold, args.probe_threshold, not args.no_video, args.max_frames,
                          not args.quiet)
        ev, report = evaluate(args.bag, out, options)
    except EmojiPrivacyError as e:
        print(f"evaluate_bag: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    for line in summary_lines(ev, report):
        print(f"evaluate_bag: {line}")
    s = ev.leak_summary()
    return EXIT_LEAK if args.fail_on_leak and s is not None and s.leaked else 0


def evaluate_emotion_main(argv: list[str] | None = None) -> int:
    """`rosrun emoji_privacy evaluate_emotion`, `python -m emoji_privacy.evaluation emotion`."""
    from ..training.data import SPLITS
    from .emotion import compare, comparison_table

    ap = argparse.ArgumentParser(prog="evaluate_emotion", description="Compare emotion models on one FER2013 "
                                 "split: accuracy, macro-F1, per-class recall, calibration error (ECE), parameters, "
                                 "ms per face (batch 1, one CPU thread). Higher accuracy/F1/recall is better; lower "
                                 "ECE and ms are better.")
    ap.add_argument("models", nargs="+", help="backend names (mini_xception) or .pt files")
    ap.add_argument("--split", default="PublicTest", choices=SPLITS,
                    help="PublicTest for choosing; PrivateTest only to report finished models")
    ap.add_argument("--data", help="FER2013 folder, .tar.gz or fer2013.csv (default: the shared copy)")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        rows = compare(args.models, args.split, args.data, progress=not args.quiet)
    except EmojiPrivacyError as e:
        print(f"evaluate_emotion: error: {e}", file=sys.stderr)
        return 2
    text = f"FER2013 {args.split} (n={rows[0]['report']['n']}); higher is better except ms/face\n\n" \
        + comparison_table(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def evaluate_landmarks_main(argv: list[str] | None = None) -> int:
    """`rosrun emoji_privacy evaluate_landmarks`, `python -m emoji_privacy.evaluation landmarks`."""
    from ..landmarks.align import LANDMARK_BACKENDS
    from . import landmarks
    from .landmarks import report, run

    ap = argparse.ArgumentParser(description=landmarks.__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", required=True,
                    help="300-W style folders (<stem>.jpg + <stem>.pts), e.g. ../shared/data/landmarks/helen_test")
    ap.add_argument("--backend", nargs="+", default=["facemesh"], choices=sorted(LANDMARK_BACKENDS),
                    help="landmark backends to evaluate (default: facemesh)")
    ap.add_argument("--detector", default="yunet", help="face detector backend that supplies the boxes (default yunet)")
    ap.add_argument("--ced", type=Path, default=None, help="write the CED plot (PNG) here")
    ap.add_argument("--limit", type=int, default=0, help="first N faces of each folder only (0 = all)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        results = run(args.data, args.backend, args.detector, args.ced, args.limit, not args.quiet)
    except (EmojiPrivacyError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(results))
    if args.ced is not None:
        print(f"\nCED plot: {args.ced}")
    return 0


def crowd_main(argv: list[str] | None = None) -> int:
    """`python -m emoji_privacy.evaluation crowd`: crowd clips with ground truth (MP4 + JSON) for a test or a
    benchmark of one's own; every combination of the options is one clip."""
    from . import crowd

    ap = argparse.ArgumentParser(prog="python -m emoji_privacy.evaluation crowd", description=crowd.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True, help="folder for the clips (made if missing; existing clips kept)")
    ap.add_argument("--size", nargs="+", default=["640x360"], help="WIDTHxHEIGHT (default %(default)s)")
    ap.add_argument("--faces", nargs="+", type=int, default=[10], help="people in the scene (default %(default)s)")
    ap.add_argument("--lighting", nargs="+", choices=crowd.LIGHTINGS, default=["dark"])
    ap.add_argument("--closeup", action="store_true", help="one face in front of the camera, the crowd behind")
    ap.add_argument("--frames", type=int, default=150, help="frames at 30 fps (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    specs = []
    for size in args.size:
        w, sep, h = size.partition("x")
        if not (sep and w.isdigit() and h.isdigit() and int(w) >= 64 and int(h) >= 64):
            print(f"crowd: error: --size wants WIDTHxHEIGHT of at least 64x64, e.g. 640x360, got '{size}'",
                  file=sys.stderr)
            return 1
        specs += [crowd.CrowdSpec(int(w), int(h), n, light, args.closeup, args.frames, args.seed)
                  for n in args.faces for light in args.lighting]
    if args.frames < 1 or min(args.faces) < 0:
        print("crowd: error: --frames must be >= 1 and --faces >= 0", file=sys.stderr)
        return 1
    try:
        faces = crowd.crowd_faces()
    except FileNotFoundError as e:
        print(f"crowd: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        path = crowd.crowd_clip(spec, out, faces)
        print(f"crowd: {spec.label}: {path} (+ {crowd.truth_path(path).name})")
    return 0
