"""Emotion over time on the two shared videos: per track, the raw per-frame emotion against the
emoji shown after smoothing, and how often each changes per minute. A sanity check of the default
emotion model and of the tracker's smoothing on real footage (no ground truth: a face that laughs
through a clip should not flicker between sad and angry). Writes a timeline PNG per main track."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_emotion_refresh import VIDEOS, read_video  # noqa: E402
from common import RESULTS, describe_pipeline, save, table  # noqa: E402

from emoji_privacy import EMOTIONS  # noqa: E402
from emoji_privacy.evaluation.records import Evaluation, FaceObservation, FrameRecord  # noqa: E402
from emoji_privacy.evaluation.report import plot_timeline  # noqa: E402
from emoji_privacy.model_files import shared_dir  # noqa: E402
from emoji_privacy.pipeline import Anonymizer  # noqa: E402


def evaluate_video(anonymizer: Anonymizer, path: Path) -> Evaluation:
    """The pipeline on every frame of ``path`` as a stream (tracking and smoothing on, as in the listener)."""
    frames, fps = read_video(path)
    anonymizer.reset()
    records = []
    for i, frame in enumerate(frames):
        _, faces = anonymizer.process(frame, i / fps)
        obs = [FaceObservation.detected(f) for f in faces] + [FaceObservation.held_face(h) for h in anonymizer.held]
        records.append(FrameRecord(i, i / fps, obs))
    h, w = frames[0].shape[:2] if frames else (0, 0)
    return Evaluation(path.name, "offline", "video", records, width=w, height=h, input_frames=len(frames))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--min-seconds", type=float, default=2.0, help="plot and list tracks at least this long")
    args = ap.parse_args()
    base = shared_dir()
    if base is None:
        sys.exit("error: the shared data folder (../shared) is absent; the shared videos are needed")
    anonymizer = Anonymizer()
    rows, pictures = [], []
    for video in VIDEOS:
        ev = evaluate_video(anonymizer, base / "data" / "videos" / video)
        for t in ev.tracks():
            if t.lifetime_s < args.min_seconds:
                continue
            minutes = t.lifetime_s / 60
            picture = f"timeline_{Path(video).stem}_track{t.track_id}.png"
            plot_timeline(ev, t, RESULTS / picture)
            pictures.append(f"![{video} track {t.track_id}]({picture})")
            shares = ", ".join(f"{EMOTIONS[e]} {n / t.detected:.0%}" for e, n in t.shown.most_common(3))
            rows.append([video, t.track_id, f"{t.lifetime_s:.1f}", t.detected, t.held, shares,
                         f"{t.raw_changes / minutes:.1f}", f"{t.shown_changes / minutes:.1f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    notes = ("Each shared video runs through the default pipeline as a stream (`Anonymizer.process` per frame, "
             "stamps from the file's frame rate). Per track at least "
             f"{args.min_seconds:g} s long: 'raw changes/min' is how often the per-frame argmax of the "
             "(calibrated) probabilities changes, what an unsmoothed emoji would do; 'shown changes/min' is how "
             "often the emoji actually shown changes after the tracker's smoothing and hysteresis "
             "(`tracking/smoothing`, `tracking/hysteresis`). Lower shown changes with the same main emotions "
             f"is the goal. Pipeline: {describe_pipeline(anonymizer)}.")
    save("emotion_timeline", "Emotion timelines on the shared videos", [
        table(["video", "track", "seconds", "detected frames", "held frames", "emoji shown (top 3)",
               "raw changes/min", "shown changes/min"], rows), notes, "\n\n".join(pictures)])


if __name__ == "__main__":
    main()
