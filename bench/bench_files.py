"""Anonymizing a video file: the `emoji-privacy anonymize` tool against the library pipeline's own
speed and against `deface` on the same 640x480 clip (1-3 faces), in the same run.

Frames per second of the whole job, per clip:
- library stream: the decoded frames through `PipelinedAnonymizer` (what bench_pipeline measures),
  no decoding or encoding; once as the listener runs it (small-face level in the background) and once
  doing the tool's work (a share of the small-face level in every frame); and the same work through
  `Anonymizer.process` one frame at a time (bench_pipeline's first table);
- the tool: `emoji-privacy anonymize clip.mp4` end to end (decode, anonymize, H.264 encode, audio copy),
  one run timed twice: by its own summary (models loaded before its clock starts) and as the whole
  process including start-up;
- deface: `deface clip.mp4` end to end (its CLI, its defaults, `--keep-audio`), the whole process.
The tool runs once more with `output/video_preset: veryfast` (a slower x264 preset, smaller files) to show
what the encoder's preset costs; the output sizes of both are in the table.
Every measurement is repeated (``--repeats``, 3) and the table gives medians with their ranges: the speed of
this project's VM moves by up to a third between runs minutes apart, and single runs near a target flipped.

Crowd scenes (evaluation.crowd: real 300-W faces in an audience, occluded, turned, 20 px to close-up, camera
panning and zooming; dark or bright): the tool and deface on each clip, whole commands, in the same repetitions,
and a privacy count per clip, which the speed target alone would not show: the ground-truth faces (the visible
part of each) left uncovered in each output MP4, by pixels (synthetic.uncovered_faces). ``--crowd-only`` runs
these rows alone; ``--frames N`` makes every clip N frames long (a quick run: printed, not saved).
Run it on an idle machine: nothing else may share the cores."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import frames_one_face, frames_three_faces  # noqa: E402
from common import crowd_clips, describe_pipeline, save, table  # noqa: E402

from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.evaluation import crowd, synthetic  # noqa: E402
from emoji_privacy.pipeline import Anonymizer  # noqa: E402
from emoji_privacy.streaming import PipelinedAnonymizer  # noqa: E402

FPS = 30
FRAMES = 300
"""Frames of each 640x480 clip (10 s)."""
CROWD = (crowd.CrowdSpec(640, 360, faces=10), crowd.CrowdSpec(1280, 720, faces=10), crowd.CrowdSpec(640, 360, faces=20),
         crowd.CrowdSpec(640, 360, faces=6, closeup=True), crowd.CrowdSpec(640, 360, faces=10, lighting="bright"))
"""The crowd clips, dark unless said, each CrowdSpec's own length (150 frames, 5 s: one cycle of its camera's
pan and zoom) unless ``--frames``."""


def write_clip(frames: list[np.ndarray], path: Path, tone_hz: float = 440.0) -> Path:
    """An H.264 MP4 of ``frames`` at 30 fps with a sine tone as its AAC audio track (like a phone clip)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for f in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        n = int(len(frames) / FPS * 48000)
        t = np.arange(n) / 48000
        samples = (0.2 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)[None]
        for i in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(samples[:, i:i + 1024], format="fltp", layout="mono")
            chunk.sample_rate = 48000
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def warmed_anonymizer(frames: list[np.ndarray]) -> Anonymizer:
    """A default Anonymizer that has run a few frames (first-call costs out of the timing), then forgotten them."""
    anonymizer = Anonymizer()
    for f in frames[:5]:
        anonymizer.process(f)
    anonymizer.reset()
    return anonymizer


def library_stream_fps(frames: list[np.ndarray], scan_small_faces: bool = True) -> float:
    """``scan_small_faces``: the small-face level in a background thread at the lowest priority, as the listener
    runs it (under full load it gets little CPU); False: a share of it in every frame's detection, as the tool."""
    anonymizer = warmed_anonymizer(frames)
    done = []
    stream = PipelinedAnonymizer(anonymizer, lambda f: f, lambda item, out, faces: done.append(1),
                                 lambda item, e: done.append(0), scan_small_faces=scan_small_faces)
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        stream.submit(f, i / FPS, block=True)  # offline: every frame counts, none replaced
    stream.drain()
    wall = time.perf_counter() - t0
    stream.close()
    return len(frames) / wall


def library_sequential_fps(frames: list[np.ndarray]) -> float:
    """The decoded frames through ``Anonymizer.process`` one at a time: bench_pipeline's first table, the same
    work as the tool (a share of the small-face level in every frame) without its overlapping stages."""
    anonymizer = warmed_anonymizer(frames)
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        anonymizer.process(f, i / FPS)
    return len(frames) / (time.perf_counter() - t0)


def tool_fps(clip: Path, out: Path, config: Path | None = None) -> tuple[float, float]:
    """(frames/s of the anonymization itself, from the command's own summary after its models loaded; frames/s
    of the whole command including start-up), both from one run of the CLI as a user runs it (in a process
    of its own: run inside this one it shared the interpreter with the library streams measured before it)."""
    t0 = time.perf_counter()
    extra = ["--config", str(config)] if config else []
    res = subprocess.run([sys.executable, "-m", "emoji_privacy", "anonymize", str(clip), "-o", str(out), *extra],
                         check=True, capture_output=True, text=True)
    whole = time.perf_counter() - t0
    summary = re.search(r": (\d+) frames .*\(([\d.]+) frames/s\)", res.stdout + res.stderr)
    if summary is None:
        raise SystemExit(f"bench_files: no summary in the tool's output:\n{(res.stdout + res.stderr)[-1000:]}")
    return float(summary.group(2)), int(summary.group(1)) / whole


def deface_fps(clip: Path, out: Path, frames: int) -> float:
    """frames/s of deface's whole command on ``clip`` (its defaults; ``--keep-audio`` copies a track when there
    is one)."""
    deface = Path(sys.executable).with_name("deface")
    t0 = time.perf_counter()
    subprocess.run([str(deface), str(clip), "-o", str(out), "--keep-audio"], check=True, capture_output=True)
    return frames / (time.perf_counter() - t0)


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """The median, with the range over the repetitions when there are several."""
    med = fmt.format(float(np.median(values)))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def measure(frames: list[np.ndarray], tmp: Path, slower_config: Path) -> dict[str, float]:
    """One repetition of every measurement on one clip, in a fixed order (so a slow spell of the machine
    touches neighbouring measurements alike, and the ratios of one repetition compare like with like)."""
    clip = write_clip(frames, tmp / "clip.mp4")
    m = {"lib": library_stream_fps(frames), "lib_inline": library_stream_fps(frames, scan_small_faces=False),
         "lib_seq": library_sequential_fps(frames)}
    m["tool"], m["tool_whole"] = tool_fps(clip, tmp / "tool.mp4")
    m["tool_slow"], _ = tool_fps(clip, tmp / "tool_slow.mp4", slower_config)
    m["deface"] = deface_fps(clip, tmp / "deface.mp4", len(frames))
    m["mb"], m["mb_slow"] = ((tmp / f).stat().st_size / 1e6 for f in ("tool.mp4", "tool_slow.mp4"))
    m["tool/lib"], m["tool/lib_inline"] = m["tool"] / m["lib"], m["tool"] / m["lib_inline"]
    m["tool/lib_seq"] = m["tool"] / m["lib_seq"]
    m["tool/deface"] = m["tool_whole"] / m["deface"]
    return m


def decoded(path: Path) -> Iterator[np.ndarray]:
    """The frames of a video file as BGR, decoded as the tool decodes them (files.video.frame_to_bgr)."""
    import av

    from emoji_privacy.files.video import frame_to_bgr

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield frame_to_bgr(frame)


def uncovered(clip: Path, output: Path, truth: list[crowd.CrowdFrame]) -> tuple[int, int]:
    """(face-frames left uncovered in ``output``, face-frames in ``clip``): the visible part of every ground-truth
    face, judged by pixels against the clip's own frames (synthetic.uncovered_faces). deface writes 640x360 as
    640x368 (imageio pads sizes to multiples of 16 by scaling): its frames are scaled back, which changes every
    pixel a little, so its count can only err low."""
    left = faces = 0
    for original, anonymized, gt in zip(decoded(clip), decoded(output), truth, strict=True):
        if anonymized.shape != original.shape:
            anonymized = cv2.resize(anonymized, original.shape[1::-1], interpolation=cv2.INTER_AREA)
        unc, _ = synthetic.uncovered_faces(original, anonymized, gt.visible)
        left += int(unc.sum())
        faces += len(unc)
    return left, faces


def reencoded(clip: Path, out: Path) -> Path:
    """``clip`` re-encoded with the tool's x264 preset and CRF and nothing covered: the check that the privacy
    count sees a face through the encoder's changes (every face-frame of it must count as uncovered)."""
    import av

    cfg = PipelineConfig().output
    with av.open(str(out), "w") as c:
        stream = None
        for frame in decoded(clip):
            if stream is None:
                stream = c.add_stream("libx264", rate=FPS, options={"preset": cfg.video_preset,
                                                                    "crf": str(cfg.video_crf)})
                stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
            c.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        if stream is not None:
            c.mux(stream.encode(None))
    return out


def measure_crowd(clip: Path, truth: list[crowd.CrowdFrame], tmp: Path) -> dict[str, float]:
    """One repetition on one crowd clip: the tool, then deface (whole commands), then the faces each left
    uncovered (counted after both, outside their timing)."""
    m: dict[str, float] = {}
    m["tool"], m["tool_whole"] = tool_fps(clip, tmp / "crowd_tool.mp4")
    m["deface"] = deface_fps(clip, tmp / "crowd_deface.mp4", len(truth))
    m["tool/deface"] = m["tool_whole"] / m["deface"]
    m["tool_left"], m["face_frames"] = uncovered(clip, tmp / "crowd_tool.mp4", truth)
    m["deface_left"], _ = uncovered(clip, tmp / "crowd_deface.mp4", truth)
    return m


def count_range(values: list[float]) -> str:
    """A count over the repetitions: one number when they agree, else their range."""
    lo, hi = int(min(values)), int(max(values))
    return str(lo) if lo == hi else f"{lo}-{hi}"


def crowd_row(spec: crowd.CrowdSpec, runs: list[dict[str, float]], check: tuple[int, int]) -> list[object]:
    col = {k: [r[k] for r in runs] for k in runs[0]}
    n = int(col["face_frames"][0])
    return ["close-up + crowd" if spec.closeup else "crowd", spec.lighting,
            f"{spec.faces} + close-up" if spec.closeup else spec.faces, f"{spec.width}x{spec.height}", spec.frames,
            len(runs), spread(col["tool"]), spread(col["tool_whole"]), spread(col["deface"]),
            spread(col["tool/deface"], "{:.1f}x"), f"{count_range(col['tool_left'])} / {n}",
            f"{count_range(col['deface_left'])} / {n}", f"{check[0]} / {check[1]}"]


CROWD_HEADERS = ["scene", "lighting", "faces", "resolution", "frames", "repetitions", "tool fps",
                 "tool, whole command fps", "deface, whole command fps", "tool / deface (whole commands)",
                 "tool: uncovered / face-frames", "deface: uncovered / face-frames",
                 "re-encoded, nothing covered: uncovered / face-frames (check)"]
CROWD_NOTES = (
    "Crowd scenes (evaluation.crowd, seed 0): real 300-W faces (helen_test + afw) as an audience, back-row faces "
    "20-40 px wide, front-row ones a sixth of the frame's width, nearer people hiding 10-60% of some farther faces, a "
    "quarter of the faces large-pose and half mirrored, people swaying and walking, the camera panning and zooming "
    "once over the clip; 'close-up + crowd' adds one face 80% of the frame's height in front. dark: a dim hall "
    "through a small noisy camera (faces at levels 10-40); bright: as lit. Each clip is an H.264 MP4 (CRF 12) "
    "without audio, made once into bench/.cache/crowd/. Speed: 'tool fps' from the tool's own summary (after "
    "its models loaded), the others whole commands from start to exit; medians and ranges over the repetitions, "
    "the ratio the whole commands', the median of the per-repetition ratios. Target: the tool >= 3x deface's "
    "fps on every crowd clip. Privacy: face-frames are the ground truth's faces hidden by at most {hidden:.0%} "
    "(by people in front or the frame's edge), each judged on the box of its visible part; one is uncovered "
    "when more than {share:g} of that box's central "
    "ellipse is unchanged (every channel within {level} levels) in the output MP4, decoded like the input "
    "(the range over the repetitions when they differ). deface writes 640x360 clips as 640x368 (its imageio "
    "writer scales sizes to multiples of 16); its frames are scaled back before the count, which changes every "
    "pixel a little, so its count can only err low. The check column re-encodes each clip with the tool's preset "
    "and CRF and covers nothing: every face-frame must count as uncovered there, or the encoder's changes would "
    "hide leaks from the count.")


def crowd_notes() -> str:
    from emoji_privacy.evaluation.leaks import UNCHANGED_LEVEL

    return CROWD_NOTES.format(hidden=crowd.HIDDEN_SHARE, share=synthetic.UNCOVERED_SHARE, level=UNCHANGED_LEVEL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=None,
                    help=f"frames of every clip (at 30 fps); a quick run, printed and not saved (default: {FRAMES} "
                         f"for the 640x480 clips, each crowd scene's own {crowd.CrowdSpec().frames})")
    ap.add_argument("--repeats", type=int, default=3,
                    help="repetitions per clip; the table gives each figure's median and range (this VM's speed "
                         "moves by up to a third between runs minutes apart)")
    ap.add_argument("--crowd-only", action="store_true",
                    help="only the crowd clips: the tool and deface, speed and faces left uncovered (saved as "
                         "files_crowd.md)")
    args = ap.parse_args()
    if (args.frames is not None and args.frames < 1) or args.repeats < 1:
        raise SystemExit("bench_files: --frames and --repeats must be at least 1")
    rows = []
    default = PipelineConfig().output
    slower = "veryfast"
    specs = [dataclasses.replace(s, frames=args.frames) if args.frames else s for s in CROWD]
    crowd_paths = crowd_clips(specs)
    truths = {s: crowd.read_truth(p) for s, p in crowd_paths.items()}
    with tempfile.TemporaryDirectory() as tmp:
        slower_config = Path(tmp) / "slower.yaml"
        slower_config.write_text(f"output:\n  video_preset: {slower}\n")
        n = args.frames or FRAMES
        clips = () if args.crowd_only else (("640x480, 1 face", frames_one_face(n)),
                                            ("640x480, 3 faces", frames_three_faces(n)))
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in clips}
        crowd_runs: dict[crowd.CrowdSpec, list[dict[str, float]]] = {s: [] for s in specs}
        checks = {s: uncovered(p, reencoded(p, Path(tmp) / "reencoded.mp4"), truths[s])
                  for s, p in crowd_paths.items()}
        for rep in range(args.repeats):  # clips alternate, so all see the machine's slow and fast spells
            for name, frames in clips:
                runs[name].append(m := measure(frames, Path(tmp), slower_config))
                print(f"[{rep + 1}/{args.repeats}] {name}: tool {m['tool']:.1f} fps, library {m['lib']:.1f}, "
                      f"same work {m['lib_inline']:.1f}, deface {m['deface']:.1f}", flush=True)
            for spec, clip in crowd_paths.items():
                crowd_runs[spec].append(m := measure_crowd(clip, truths[spec], Path(tmp)))
                print(f"[{rep + 1}/{args.repeats}] {spec.label}: tool {m['tool']:.1f} fps (whole command "
                      f"{m['tool_whole']:.1f}), deface {m['deface']:.1f}, uncovered: tool {m['tool_left']:.0f}, "
                      f"deface {m['deface_left']:.0f} of {m['face_frames']:.0f}", flush=True)
        for name, frames in clips:
            col = {k: [r[k] for r in runs[name]] for k in runs[name][0]}
            rows.append([name, len(frames), args.repeats, spread(col["lib"]), spread(col["lib_inline"]),
                         spread(col["lib_seq"]), spread(col["tool"]), spread(col["tool_whole"]), spread(col["deface"]),
                         spread(col["tool/lib"], "{:.2f}"), spread(col["tool/lib_inline"], "{:.2f}"),
                         spread(col["tool/lib_seq"], "{:.2f}"),
                         spread(col["tool/deface"], "{:.1f}x"), spread(col["tool_slow"]),
                         f"{np.median(col['mb']):.2f} / {np.median(col['mb_slow']):.2f}"])
    pipeline = describe_pipeline(Anonymizer())
    notes = ("Frames per second, higher is better; each cell is the median over the repetitions with their range "
             "in brackets, and each ratio the median of the ratios measured within one repetition (the clips "
             "alternate, every measurement of a repetition runs within about a minute). "
             "'library stream' is the decoded frames through PipelinedAnonymizer "
             "as the listener runs it: the small-face level (a 2x enlarged frame) in a background thread at the lowest "
             "priority, which gets little CPU while both stages are busy; 'same work' searches a share of that level "
             "in every frame's detection stage, as the tool does so that no small face depends on timing; 'one frame "
             "at a time' is `Anonymizer.process` on each frame in turn (bench_pipeline's first table: the tool's "
             "work, without overlapping stages). 'tool' is `emoji-privacy anonymize clip.mp4` as a user runs it, "
             "frames/s from its own summary (after its models loaded); 'tool, whole command' is the same run timed "
             "from start to exit, and 'deface, whole command' likewise. Targets (issue 17): the tool at least as "
             "fast as the library stream (ratio >= 1) and at least 3x deface. "
             f"The tool encodes with x264 preset {default.video_preset}, CRF {default.video_crf} (output/video_preset, "
             f"output/video_crf); 'tool fps, {slower}' is the same command with preset {slower}. "
             f"Pipeline: {pipeline}.")
    sections = [] if args.crowd_only else [
        table(["clip", "frames", "repetitions", "library stream fps", "library stream, same work as the tool fps",
               "library, one frame at a time fps", "tool fps", "tool, whole command fps", "deface, whole command fps",
               "tool / library", "tool / library (same work)", "tool / library (one frame at a time)",
               "tool / deface (whole commands)", f"tool fps, preset {slower}",
               f"output MB, {default.video_preset} / {slower}"],
              rows), notes]
    sections += ["## Crowd scenes", table(CROWD_HEADERS, [crowd_row(s, crowd_runs[s], checks[s]) for s in specs]),
                 crowd_notes() + (f" Pipeline: {pipeline}." if args.crowd_only else "")]
    title = "Anonymizing video files: the tool, the library stream and deface"
    if args.frames:
        print(f"# {title} (quick run, {args.frames} frames per clip: not saved)\n\n" + "\n\n".join(sections))
    else:
        save("files_crowd" if args.crowd_only else "files",
             "Anonymizing video files: the tool and deface on crowd scenes" if args.crowd_only else title, sections)


if __name__ == "__main__":
    main()
