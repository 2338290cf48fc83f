"""Emotion over time: how steady the shown emoji is, and whether it still says what the face shows (issue 34,
part 4). On the two shared videos and on crowd clips (bright and dark, 640x360, 10 faces), each run through
the pipeline as a stream. Per source, over all its tracks: shown changes per track-minute (target <= 12) and
agreement with the trailing 1 s majority of the calibrated per-frame probabilities (target >= 90%), both as
defined in emoji_privacy.evaluation.steadiness. Per main track of the shared videos the same figures and a
timeline PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_emotion_refresh import VIDEOS, read_video  # noqa: E402
from common import RESULTS, crowd_clips, describe_pipeline, save, table  # noqa: E402

from emoji_privacy import emotion_name  # noqa: E402
from emoji_privacy.evaluation.crowd import CrowdSpec  # noqa: E402
from emoji_privacy.evaluation.records import Evaluation, FaceObservation, FrameRecord  # noqa: E402
from emoji_privacy.evaluation.report import plot_timeline  # noqa: E402
from emoji_privacy.evaluation.steadiness import WINDOW_S, Steadiness, total, track_steadiness  # noqa: E402
from emoji_privacy.model_files import shared_dir  # noqa: E402
from emoji_privacy.pipeline import Anonymizer  # noqa: E402

CROWDS = (CrowdSpec(640, 360, 10, "bright"), CrowdSpec(640, 360, 10, "dark"))
MAX_CHANGES_PER_MINUTE = 12.0
MIN_AGREEMENT = 0.90


def evaluate_video(anonymizer: Anonymizer, path: Path) -> Evaluation:
    """The pipeline on every frame of ``path`` as a stream (tracking and the emotion filter on, as in the listener;
    ``Anonymizer.process`` per frame, so the result does not depend on thread timing)."""
    frames, fps = read_video(path)
    anonymizer.reset()
    records = []
    for i, frame in enumerate(frames):
        _, faces = anonymizer.process(frame, i / fps)
        obs = [FaceObservation.detected(f) for f in faces] + [FaceObservation.held_face(h) for h in anonymizer.held]
        records.append(FrameRecord(i, i / fps, obs))
    h, w = frames[0].shape[:2] if frames else (0, 0)
    return Evaluation(path.name, "offline", "video", records, width=w, height=h, input_frames=len(frames))


def figures(st: Steadiness, centred: Steadiness) -> list[object]:
    """The table cells of one track or source: changes, agreement (trailing, then centred), unknown share."""
    return [f"{st.changes}", f"{st.changes_per_minute:.1f}", f"{st.majority_changes_per_minute:.1f}",
            f"{st.agreement:.1%}", f"{centred.agreement:.1%}", f"{st.unknown_share:.1%}"]


def met(st: Steadiness) -> str:
    ok = st.changes_per_minute <= MAX_CHANGES_PER_MINUTE and st.agreement >= MIN_AGREEMENT
    return "yes" if ok else "no"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--min-seconds", type=float, default=2.0, help="list and plot shared-video tracks this long")
    args = ap.parse_args()
    base = shared_dir()
    if base is None:
        sys.exit("error: the shared data folder (../shared) is absent; the shared videos are needed")
    sources = [(v, base / "data" / "videos" / v) for v in VIDEOS]
    sources += [(s.label, p) for s, p in crowd_clips(list(CROWDS)).items()]
    anonymizer = Anonymizer()
    track_rows, source_rows, pictures, plots = [], [], [], []
    for name, path in sources:
        ev = evaluate_video(anonymizer, path)
        trailing, centred = track_steadiness(ev.records), track_steadiness(ev.records, centred=True)
        if name in VIDEOS:
            for t in ev.tracks():
                if t.lifetime_s < args.min_seconds:
                    continue
                picture = f"timeline_{Path(name).stem}_track{t.track_id}.png"
                plots.append((ev, t, RESULTS / picture))
                pictures.append(f"![{name} track {t.track_id}]({picture})")
                shares = ", ".join(f"{emotion_name(e)} {n / t.detected:.0%}"
                                   for e, n in t.shown.most_common(3))
                st = trailing[t.track_id]
                track_rows.append([name, t.track_id, f"{t.lifetime_s:.1f}", t.detected, shares,
                                   f"{t.raw_changes / (t.lifetime_s / 60):.1f}",
                                   *figures(st, centred[t.track_id]), met(st)])
                print(" | ".join(map(str, track_rows[-1])), flush=True)
        st = total(trailing)
        source_rows.append([name, len(trailing), f"{st.minutes * 60:.1f}", *figures(st, total(centred)), met(st)])
        print(" | ".join(map(str, source_rows[-1])), flush=True)
    heads = ["shown changes", "shown changes/min", "1 s majority changes/min", "agreement (trailing 1 s)",
             "agreement (centred 1 s)", "unknown shown"]
    notes = (f"Each source runs through the default pipeline as a stream (`Anonymizer.process` per frame, stamps "
             "from the file's frame rate); the crowd clips are made by `emoji_privacy.evaluation.crowd` "
             "(bench/common.py `crowd_clips`). Figures (`emoji_privacy.evaluation.steadiness`): **shown "
             "changes/min** = times a track's shown emotion changes from one emotion to another (a track's first "
             "emotion after 'unknown' is its first reading, not a change) over the track's lifetime in minutes "
             f"(first to last frame); per source, all tracks' changes over all their minutes. Target <= "
             f"{MAX_CHANGES_PER_MINUTE:g}. **Agreement (trailing {WINDOW_S:g} s)** = share of detected frames "
             "showing a known emotion whose emotion is the argmax of the sum of the track's published calibrated "
             f"per-frame probabilities over the frames with stamps in (t - {WINDOW_S:g} s, t] whose reading the "
             "reliability rule accepted (reading 'read': an ignored reading is no vote): the majority a live "
             "system can know at that frame (the centred window (t - 0.5 s, t + 0.5 s] also needs the future, and is "
             f"given for comparison). Target >= {MIN_AGREEMENT:.0%}, trailing. **1 s majority changes/min**: how "
             "often that majority itself changes (what an emoji that followed it exactly would do); **unknown "
             "shown**: frames whose majority is known but whose track shows 'unknown' (not settled yet; not judged "
             "in the agreement). 'met' = both targets. A 4.6 s track with one real change of expression is at 13.0 "
             f"changes/min. Pipeline: {describe_pipeline(anonymizer)}.")
    save("emotion_timeline", "Emotion timelines: a steady emoji that still agrees with the face", [
        "Per source (all tracks):",
        table(["source", "tracks", "track-seconds", *heads, "met"], source_rows),
        f"Per track of the shared videos (at least {args.min_seconds:g} s):",
        table(["video", "track", "seconds", "detected frames", "emoji shown (top 3)", "raw argmax changes/min",
               *heads, "met"], track_rows), notes, "\n\n".join(pictures)])
    for ev, t, path in plots:  # after saving, so the report's commit is not "dirty" from its own pictures
        plot_timeline(ev, t, path)


if __name__ == "__main__":
    main()
