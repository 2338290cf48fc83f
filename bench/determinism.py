"""Does `emoji-privacy anonymize` give the same output run after run? Each clip is anonymized ``--runs`` times
(files.video.anonymize_video, one Anonymizer loaded once, reset by every run) while busy-loop processes
(``--load``, one per core by default) keep the cores full, as a shared server or a laptop doing other work would:
the two stages of the video tool then finish in a different order every run. Every run's decoded output frames
and faces JSON are compared with the first run's, frame for frame:

- frames differing: any output pixel differs;
- frames with another face count: the faces JSON lists another number of faces (listed, plus listed held);
- JSON lines differing: any field of the frame's faces JSON line differs (ids, boxes, emotions...);
- tracks: distinct track ids in the faces JSON (what the website's clip page counts).

Run: ``python bench/determinism.py CLIP [CLIP ...] --runs 5``. Prints a table; nothing is saved (the numbers
before and after the fix are in docs/files.md, "Deterministic output")."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from emoji_privacy.config import PipelineConfig
from emoji_privacy.files.video import anonymize_video, frame_to_bgr
from emoji_privacy.pipeline import Anonymizer


def _spin(stop: mp.Event) -> None:  # type: ignore[valid-type]
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [frame_to_bgr(f) for f in c.decode(c.streams.video[0])]


def read_json(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def face_count(line: dict) -> int:
    return len(line["faces"]) + len(line.get("held", []))


def tracks(lines: list[dict]) -> int:
    return len({f["track_id"] for line in lines for f in line["faces"] + line.get("held", [])})


def compare(clip: Path, anonymizer: Anonymizer, runs: int, folder: Path, fresh: bool) -> list[str]:
    rows = []
    ref_frames: list[np.ndarray] = []
    ref_json: list[dict] = []
    for r in range(runs):
        out, faces = folder / f"run{r}.mp4", folder / f"run{r}.jsonl"
        t0 = time.perf_counter()
        anonymize_video(clip, out, anonymizer.sharing_models() if fresh else anonymizer, faces_json=faces)
        seconds = time.perf_counter() - t0
        frames, lines = read_frames(out), read_json(faces)
        if r == 0:
            ref_frames, ref_json = frames, lines
            rows.append(f"| {clip.name} | {r} | {len(frames)} | - | - | - | {tracks(lines)} | {seconds:.1f} |")
            continue
        pixels = sum(not np.array_equal(a, b) for a, b in zip(frames, ref_frames, strict=True))
        counts = sum(face_count(a) != face_count(b) for a, b in zip(lines, ref_json, strict=True))
        records = sum(a != b for a, b in zip(lines, ref_json, strict=True))
        rows.append(f"| {clip.name} | {r} | {len(frames)} | {pixels} | {counts} | {records} | {tracks(lines)} "
                    f"| {seconds:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy-loop processes (0: idle)")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--fresh", action="store_true",
                    help="a fresh Anonymizer over the same models for each run (as the website does); default: one "
                         "Anonymizer for all runs (as one `emoji-privacy anonymize` command does for its inputs)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the outputs in this folder")
    args = ap.parse_args()
    anonymizer = Anonymizer(PipelineConfig.from_yaml(args.config) if args.config else None)
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    print("| clip | run | frames | frames differing | frames with another face count | JSON lines differing "
          "| tracks | s |\n|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for clip in args.clips:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) if args.keep is None else args.keep / clip.stem
                folder.mkdir(parents=True, exist_ok=True)
                rows = compare(clip, anonymizer, args.runs, folder, args.fresh)
                print(rows[0], flush=True)
    finally:
        stop.set()
        for p in spinners:
            p.join(5)


if __name__ == "__main__":
    main()
