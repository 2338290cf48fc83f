"""Privacy over time on bags made from the shared videos: leaked face-frames with the default
configuration and with tracking off, on the plain clips and on perturbed variants (motion blur,
320x240, brightness drops, low light, dropped frames) and on a generated dark-audience clip; and the
offline evaluation speed at 640x480.

Low light: the videos through video_to_bag's 'lowlight' perturbation (a dim hall seen by a small
camera), and real 300-W faces in a dim hall (synthetic.dark_scene_sequence) written as a bag. Their
reference faces come from outside the dark frames (the independent detector on the plain video, or
the generator's own boxes), so a detector blinded by the dark cannot hide leaks by finding no faces;
a ground-truth table also counts the faces left visible pixel by pixel (synthetic.uncovered_faces).

Crowd scenes (evaluation.crowd: real 300-W faces in an audience, occluded by the people in front, turned,
20 px to close-up, the camera panning and zooming) as bags, dark and bright: their reference faces are the
generator's, the visible part of each face in each frame, in both tables, with totals of their own
(``--only crowd`` runs them alone). Frame i of such a bag is frame i of its clip.

`--sweep-hold` instead measures leaks against tracking/hold_frames (how its default was chosen).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import crowd_clips, save, table  # noqa: E402

from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.detection import box_iou  # noqa: E402
from emoji_privacy.evaluation import (  # noqa: E402
    crowd,
    synthetic,
    video_to_bag,
)
from emoji_privacy.evaluation.bag import Options, evaluate  # noqa: E402
from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend  # noqa: E402
from emoji_privacy.model_files import shared_dir  # noqa: E402

VIDEOS = ("fer_test.mp4", "fer_woman2.mp4")
VARIANTS = {"plain": (), "motion blur": ("blur",), "320x240": ("downscale",), "brightness drops": ("dark",),
            "low light": ("lowlight",), "30% frames dropped": ("drop",)}
LOW_LIGHT = "low light"
DARK_CLIP = "dark_audience (generated)"
DARK_SIZE, DARK_FRAMES, DARK_FPS, DARK_SEED = (1280, 720), 90, 15.0, 13
"""The generated clip: 6 s at 15 fps of 6-10 real faces 40-160 px wide drifting slowly in a dim hall."""
CROWD = (crowd.CrowdSpec(640, 360, faces=10), crowd.CrowdSpec(640, 360, faces=20),
         crowd.CrowdSpec(640, 360, faces=6, closeup=True), crowd.CrowdSpec(640, 360, faces=10, lighting="bright"))
"""The crowd bags: dark unless said, each 150 frames at 30 fps (CrowdSpec's own length)."""
BAGS, CROWD_BAGS = "shared videos and dark audience", "crowd scenes"
"""The groups of bags the summary totals apart (the crowd scenes are new: the first group's totals stay
comparable with earlier runs)."""


def config(hold: int | None) -> PipelineConfig:
    """The default configuration; ``hold`` None = tracking off, else that hold."""
    cfg = PipelineConfig()
    if hold is None:
        cfg.tracking.enabled = False
    else:
        cfg.tracking.hold_frames = hold
    return cfg


Truth = dict[Path, dict[int, np.ndarray]]
"""Reference faces per bag and frame index, given to the leak meter instead of its own detections."""


def make_bags(folder: Path, names: list[str], max_frames: int = 0) -> dict[tuple[str, str], Path]:
    videos = shared_dir() / "data" / "videos"
    bags = {}
    for video in VIDEOS:
        for name in names:
            path = folder / f"{Path(video).stem}_{'_'.join(VARIANTS[name]) or 'plain'}.bag"
            video_to_bag.convert(str(videos / video), path, perturb=VARIANTS[name], start=1e9, progress=False,
                                 max_frames=max_frames)
            bags[video, name] = path
    return bags


def plain_truth(video: str, max_frames: int = 0) -> dict[int, np.ndarray]:
    """The leak meter's own reference faces, found on the plain frames of ``video``: a perturbation that
    moves no pixel (low light) keeps every face where it was, and the dark copy must not decide which
    faces count."""
    meter = LeakMeter(independent_backend(PipelineConfig().detector.backend))
    cap = cv2.VideoCapture(str(shared_dir() / "data" / "videos" / video))
    truth: dict[int, np.ndarray] = {}
    try:
        while not max_frames or len(truth) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            truth[len(truth)] = meter.reference.detect(frame).boxes
    finally:
        cap.release()
    return truth


def make_dark_bag(folder: Path, max_frames: int = 0) -> tuple[Path, dict[int, np.ndarray]]:
    """The generated dark-audience clip as a bag (frames written as PNGs, then video_to_bag), with its
    ground-truth face boxes per frame."""
    faces = synthetic.load_faces(synthetic.EVAL_SETS, max_width=160)
    frames_dir = folder / "dark_audience"
    frames_dir.mkdir()
    n = min(DARK_FRAMES, max_frames) if max_frames else DARK_FRAMES
    truth = {}
    for i, (frame, boxes) in enumerate(synthetic.dark_scene_sequence(
            *DARK_SIZE, faces, n, rng=DARK_SEED, count=(6, 10), drift=30.0, period=DARK_FRAMES)):
        cv2.imwrite(str(frames_dir / f"{i:04d}.png"), frame)
        truth[i] = boxes
    path = folder / "dark_audience.bag"
    video_to_bag.convert(str(frames_dir), path, fps=DARK_FPS, start=1e9, progress=False)
    return path, truth


def low_light_bags(folder: Path, max_frames: int = 0) -> tuple[dict[tuple[str, str], Path], Truth]:
    """The low-light set: both videos under 'lowlight' (reference faces from their plain frames) and the
    generated dark audience (reference faces = its ground truth)."""
    bags = make_bags(folder, [LOW_LIGHT], max_frames)
    truth: Truth = {bags[video, LOW_LIGHT]: plain_truth(video, max_frames) for video in VIDEOS}
    path, boxes = make_dark_bag(folder, max_frames)
    bags[DARK_CLIP, LOW_LIGHT] = path
    truth[path] = boxes
    return bags, truth


def crowd_name(spec: crowd.CrowdSpec) -> str:
    """The 'video' cell of a crowd bag: scene, faces and size (its lighting is the 'variant' cell)."""
    kind = f"close-up + {spec.faces}" if spec.closeup else f"{spec.faces} faces"
    return f"crowd (generated), {kind}, {spec.width}x{spec.height}"


def crowd_bags(folder: Path, max_frames: int = 0) -> tuple[dict[tuple[str, str], Path], Truth]:
    """The crowd clips as bags (video_to_bag, frame for frame, the clip's 30 fps), with their reference faces:
    the visible part of every ground-truth face of each frame (CrowdFrame.visible)."""
    bags: dict[tuple[str, str], Path] = {}
    truth: Truth = {}
    for spec, clip in crowd_clips(list(CROWD)).items():
        path = folder / f"{spec.name}.bag"
        written = video_to_bag.convert(str(clip), path, start=1e9, progress=False, max_frames=max_frames)
        frames = crowd.read_truth(clip)
        if written != (min(len(frames), max_frames) if max_frames else len(frames)):
            sys.exit(f"error: {clip.name} gave {written} frames for {len(frames)} frames of ground truth")
        bags[crowd_name(spec), spec.lighting] = path
        truth[path] = {i: f.visible for i, f in enumerate(frames[:written])}
    return bags, truth


def held_without_face(ev) -> int:
    """Held covers where the reference detector sees no face (the face left or the track was a
    false detection): what a longer hold costs."""
    n = 0
    for r in ev.records:
        for f in r.faces:
            if f.held and (len(r.leaks.truth) == 0 or box_iou(f.box[None], r.leaks.truth).max() < 0.3):
                n += 1
    return n


def leak_row(ev) -> list[object]:
    s = ev.leak_summary()
    return [f"{s.leaked} / {s.face_frames}", s.leaked_hidden, f"{100 * s.rate:.2f}%", s.max_run, s.id_switches,
            ev.held_face_frames(), held_without_face(ev)]


def privacy_table(bags: dict[tuple[str, str], Path], holds: dict[str, int | None], truth: Truth | None = None,
                  max_frames: int = 0, groups: dict[Path, str] | None = None) -> tuple[str, dict]:
    """Leaks per bag and configuration; ``truth`` gives the reference faces of some bags (others: found by
    the leak meter on their original frames, once, then reused for every configuration). The totals are
    kept per (group, configuration): ``groups`` names the group of some bags, the others are BAGS."""
    rows, totals = [], {}
    groups = groups or {}
    truth = dict(truth or {})  # the reference faces depend only on the original frames
    for (video, variant), path in bags.items():
        for label, hold in holds.items():
            ev, _ = evaluate(path, None, Options(config=config(hold), video=False, progress=False,
                                                 max_frames=max_frames), truth.setdefault(path, {}))
            s = ev.leak_summary()
            t = totals.setdefault((groups.get(path, BAGS), label), [0, 0, 0, 0])
            t[0] += s.leaked
            t[1] += s.face_frames
            t[2] = max(t[2], s.max_run)
            t[3] += s.leaked_hidden
            rows.append([video, variant, label, ev.frames, *leak_row(ev)])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return table(["video", "variant", "tracking", "frames", "leaked face-frames", "of which face hidden", "leak rate",
                  "longest leaked run",
                  "id switches", "held face-frames", "held without a face"], rows), totals


def summary_table(totals: dict[tuple[str, str], list[int]]) -> str:
    return table(["bags", "tracking", "leaked face-frames (all these bags)", "of which face hidden",
                  "longest leaked run"], [[g, k, f"{v[0]} / {v[1]}", v[3], v[2]] for (g, k), v in totals.items()])


def ground_truth_table(bags: dict[tuple[str, str], Path], truth: Truth, holds: dict[str, int | None],
                       max_frames: int = 0) -> str:
    """Faces left visible, judged by pixels against the reference boxes (no detector on the output): the
    pipeline runs here on every frame of each bag, as in the offline evaluation."""
    from emoji_privacy.pipeline import Anonymizer
    from emoji_privacy.ros import bags as bag_io
    from emoji_privacy.ros.messages import image_to_bgr, stamp_seconds

    rows = []
    for (video, variant), path in bags.items():
        for label, hold in holds.items():
            anonymizer = Anonymizer(config(hold))
            faces = uncovered = unfound = frames = 0
            ms, shares = [], []
            bag = bag_io.open_bag(path)
            try:
                for _, msg, _ in bag_io.read(bag, [bag_io.choose_image_topic(path, bag_io.topics(bag), None)]):
                    if max_frames and frames >= max_frames:
                        break
                    frame, stamp = image_to_bgr(msg), stamp_seconds(msg)
                    t = time.perf_counter()
                    out, found = anonymizer.process(frame, stamp)
                    ms.append((time.perf_counter() - t) * 1e3)
                    boxes = truth[path].get(frames, np.zeros((0, 4), np.float32))
                    frames += 1
                    if not len(boxes):
                        continue
                    unc, share = synthetic.uncovered_faces(frame, out, boxes)
                    faces += len(boxes)
                    uncovered += int(unc.sum())
                    shares.extend(share[unc].tolist())
                    covers = [f.box for f in found] + [h.box for h in anonymizer.held]
                    iou = box_iou(boxes, np.array(covers, np.float32).reshape(-1, 4)) if covers else None
                    unfound += len(boxes) if iou is None else int((iou.max(axis=1) < 0.3).sum())
            finally:
                bag.close()
            rows.append([video, variant, label, frames, f"{uncovered} / {faces}", unfound,
                         f"{np.median(shares):.2f}" if shares else "-", f"{np.mean(ms):.1f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return table(["video", "variant", "tracking", "frames", "uncovered face-frames", "no pipeline face on it",
                  "median visible share of the uncovered", "pipeline ms"], rows)


def speed_table(folder: Path, repeats: int) -> str:
    """Offline evaluation of fer_woman2 at 640x480 (464 frames): the pipeline alone, the whole
    evaluation without and with the leak metric."""
    path = folder / "fer_woman2_640x480.bag"
    video_to_bag.convert(str(shared_dir() / "data" / "videos" / "fer_woman2.mp4"), path, width=640, height=480,
                         start=1e9, progress=False)
    rows = []
    for label, opts in (("report + MP4, no leak check", Options(leak_check=False, progress=False)),
                        ("report + MP4 + leak check", Options(progress=False))):
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                ev, _ = evaluate(path, Path(out), opts)
                total = time.perf_counter() - t
            ms = ev.process_ms()
            rows.append([label, ev.frames, f"{ms.mean():.1f}", f"{np.percentile(ms, 99):.1f}",
                         f"{ev.pipeline_fps():.1f}", f"{ev.evaluation_fps():.1f}", f"{ev.frames / total:.1f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return table(["run", "frames", "pipeline ms", "pipeline p99 ms", "pipeline fps", "evaluation fps (loop)",
                  "fps incl. start-up and report"], rows)


LEAK_NOTE = ("Independent detector CenterFace: original faces at score 0.5, a leak is a score >= 0.2 detection in "
             "the anonymized frame with IoU >= 0.3, or 5% or more of the face's central ellipse left unchanged "
             "(leaks.PARTIAL_SHARE). default = tracking with hold {hold}; off = no hold and no emotion "
             "smoothing. 'of which face hidden': leaks with under 2% of the face unchanged (the detector fired on "
             "the emoji). Low light: reference faces of the 'low light' videos are CenterFace's on their plain "
             "frames (the same pixels before the dark camera), those of the generated dark audience are its "
             "ground-truth boxes.")
GT_NOTE = ("Ground truth on the low-light set: a face-frame is uncovered when more than "
           f"{synthetic.UNCOVERED_SHARE:g} of its box's central ellipse is unchanged in the anonymized frame "
           "(synthetic.uncovered_faces); 'no pipeline face on it': no detected or held face of the pipeline "
           "overlaps it (IoU >= 0.3). The generated clip: {n} frames of 6-10 300-W faces (helen_test + afw) "
           "40-160 px wide at {w}x{h}, face pixels mostly at levels 10-40, seed {seed}.")
CROWD_NOTE = ("Crowd scenes (evaluation.crowd, seed 0, {n} frames at 30 fps each): real 300-W faces (helen_test + "
              "afw) as an audience, back-row faces 20-40 px wide, front-row ones a sixth of the frame's width, "
              "nearer people hiding 10-60% of some farther faces, a quarter of the faces large-pose and half mirrored, "
              "people swaying and walking, the camera panning and zooming once over the clip; 'close-up' adds one "
              "face 80% of the frame's height in front. dark: a dim hall through a small noisy camera (faces at "
              "levels 10-40); bright: as lit. Reference faces, in both tables: the generator's, each face's visible "
              "part (the box of what the people in front leave of it), faces hidden by more than {hidden:.0%} (by "
              "people in front or the frame's edge) not counted. The clips are made once into bench/.cache/crowd/ "
              "(H.264, CRF 12) and written to bags frame for frame.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweep-hold", action="store_true", help="leaks against hold_frames (saved as hold_sweep.md)")
    ap.add_argument("--only", choices=("privacy", "speed", "lowlight", "crowd"),
                    help="run one part (default: privacy, with the low-light set and the crowd scenes, and speed); "
                         "lowlight: the low-light set alone (saved as bags_lowlight.md); crowd: the crowd scenes "
                         "alone (saved as bags_crowd.md)")
    ap.add_argument("--repeats", type=int, default=1, help="speed runs per row")
    ap.add_argument("--max-frames", type=int, default=0,
                    help="smoke run: at most this many frames per bag, tables printed and not saved (0 = all)")
    args = ap.parse_args()
    if shared_dir() is None:
        sys.exit("error: the shared videos (../shared/data/videos) are needed")
    n = args.max_frames

    def report(name: str, title: str, sections: list[str]) -> None:
        if n:
            print(f"# {title} (smoke run, {n} frames per bag at most: not saved)\n\n" + "\n\n".join(sections))
        else:
            save(name, title, sections)

    default_hold = PipelineConfig().tracking.hold_frames
    holds = {"default": default_hold, "off": None}
    gt_note = GT_NOTE.format(n=min(DARK_FRAMES, n) if n else DARK_FRAMES, w=DARK_SIZE[0], h=DARK_SIZE[1],
                             seed=DARK_SEED)
    crowd_frames = crowd.CrowdSpec().frames
    crowd_note = CROWD_NOTE.format(n=min(crowd_frames, n) if n else crowd_frames, hidden=crowd.HIDDEN_SHARE)
    with tempfile.TemporaryDirectory(prefix="bench_bags_") as tmp:
        folder = Path(tmp)
        if args.sweep_hold:
            bags = make_bags(folder, [v for v in VARIANTS if v != LOW_LIGHT], n)
            dark, truth = low_light_bags(folder, n)
            text, totals = privacy_table({**bags, **dark}, {f"hold {h}": h for h in (0, 3, 5, 8, 12)}, truth, n)
            report("hold_sweep", "Leaked face-frames against tracking/hold_frames", [summary_table(totals), text, (
                "'hold 0' covers only the faces detected in each frame (as tracking off does). 'held without a "
                "face': held covers where the independent detector sees no face, the cost of a longer hold. "
                "Independent detector: CenterFace (original faces at 0.5, leaks at 0.2, IoU >= 0.3); on the "
                "low-light set the reference faces come from the plain frames or the generator.")])
            return
        if args.only == "lowlight":
            dark, truth = low_light_bags(folder, n)
            text, totals = privacy_table(dark, holds, truth, n)
            report("bags_lowlight", "Leaked face-frames on the low-light bags", [
                LEAK_NOTE.format(hold=default_hold), summary_table(totals), text,
                ground_truth_table(dark, truth, holds, n), gt_note])
            return
        if args.only == "crowd":
            crowds, truth = crowd_bags(folder, n)
            text, totals = privacy_table(crowds, holds, truth, n, dict.fromkeys(crowds.values(), CROWD_BAGS))
            report("bags_crowd", "Leaked face-frames on the crowd bags", [
                LEAK_NOTE.format(hold=default_hold), summary_table(totals), text,
                ground_truth_table(crowds, truth, holds, n), crowd_note])
            return
        if args.only != "speed":
            bags = make_bags(folder, [v for v in VARIANTS if v != LOW_LIGHT], n)
            dark, truth = low_light_bags(folder, n)
            crowds, crowd_truth = crowd_bags(folder, n)
            truth.update(crowd_truth)
            text, totals = privacy_table({**bags, **dark, **crowds}, holds, truth, n,
                                         dict.fromkeys(crowds.values(), CROWD_BAGS))
            report("bags", "Leaked face-frames on bags from the shared videos and crowd scenes", [
                LEAK_NOTE.format(hold=default_hold), summary_table(totals), text,
                ground_truth_table({**dark, **crowds}, truth, holds, n), gt_note, crowd_note])
        if args.only != "privacy":
            report("offline_speed", "Offline evaluation speed at 640x480", [
                "fer_woman2 resized to 640x480 (464 frames), default backends, whole bag; 'evaluation fps (loop)' "
                "covers reading, decoding, the pipeline, the leak check when on, and the MP4.",
                speed_table(folder, args.repeats),
                "The machine's 2 cores are shared with other work: compare rows of one run, not across runs."])


if __name__ == "__main__":
    main()
