"""A fleet's recordings: `emoji-privacy anonymize` on this machine against `--ray` with 1 and 2 workers, on 8 inputs
(the shared videos and crowd clips as MP4, ROS 1 bags and ROS 2 bags), what Ray itself costs (start-up, per file,
per frame), and from those figures a model of a cluster of up to 100 nodes (docs/fleet.md).

Every run writes the same outputs (checked here: the faces JSON of each run is the plain tool's, byte for byte).
Run it on an idle machine: the figures are wall times.

    python3 bench/bench_fleet.py            # about 6 min on 2 cores; results/fleet.md
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import crowd_clips, save, table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "videos"
CACHE = Path(__file__).resolve().parent / ".cache" / "fleet"
TOOL = [sys.executable, "-m", "emoji_privacy", "anonymize"]
START = 1000.0  # the bags' first stamp: fixed, so a bag made again is the same bag
FLEET_FRAMES_PER_DAY = 10 * 8 * 3600 * 30  # ten robots, 8 h a day, 30 fps (the example)
CORES_PER_NODE = 8  # the model's node: 8 cores, one worker each
STORAGE_GBPS = 1.25  # the model's shared storage: a 10 GbE NFS server (an assumption, not a measurement)


def make_inputs() -> list[Path]:
    """The 8 inputs, made once into bench/.cache/fleet."""
    from emoji_privacy.evaluation.crowd import CrowdSpec
    from emoji_privacy.evaluation.video_to_bag import convert
    from emoji_privacy.ros.ros2_bags import video_to_ros2_bag

    for name in ("fer_test.mp4", "fer_woman2.mp4"):
        if not (SHARED / name).is_file():
            sys.exit(f"error: {SHARED / name} is missing (../shared/data/videos)")
    clips = crowd_clips([CrowdSpec(lighting="dark"), CrowdSpec(lighting="bright")])
    dark, bright = (clips[s] for s in clips)
    CACHE.mkdir(parents=True, exist_ok=True)
    made = {
        "fer_test.mp4": lambda p: shutil.copy(SHARED / "fer_test.mp4", p),
        "fer_woman2.mp4": lambda p: shutil.copy(SHARED / "fer_woman2.mp4", p),
        "crowd_dark.mp4": lambda p: shutil.copy(dark, p),
        "crowd_bright.mp4": lambda p: shutil.copy(bright, p),
        "fer_test.bag": lambda p: convert(str(SHARED / "fer_test.mp4"), p, start=START, progress=False),
        "crowd_bright.bag": lambda p: convert(str(bright), p, start=START, progress=False),
        "fer_woman2_ros2": lambda p: video_to_ros2_bag(SHARED / "fer_woman2.mp4", p, "sqlite3", start=START),
        "crowd_dark_ros2": lambda p: video_to_ros2_bag(dark, p, "mcap", start=START),
    }
    for name, make in made.items():
        if not (CACHE / name).exists():
            print(f"making {CACHE / name}", flush=True)
            make(CACHE / name)
    return [CACHE / name for name in made]


def frames_of(inputs: list[Path]) -> dict[str, int]:
    from emoji_privacy.files.batch import estimate_frames, plan

    return {j.src.name: estimate_frames(j) for j in plan(inputs, None)}


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(inputs: list[Path], out: Path, *extra: str) -> float:
    """One run of the tool into a fresh ``out``; its wall time (process start to exit, models and Ray included)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)  # a folder even for one input
    t0 = time.perf_counter()
    r = subprocess.run([*TOOL, *map(str, inputs), "-o", str(out), "--faces-json", str(out) + ".jsonl", "--quiet",
                        *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(extra) or 'the plain tool'} failed: {r.stderr[-2000:]}")
    return seconds


def ray_costs(work: Path) -> dict[str, float]:
    """Ray's own costs, measured in this process: starting a local cluster, a worker ready with its models (against
    loading the same models here), and per file (16 copies of one photo, Ray with 1 worker against the plain tool)."""
    from emoji_privacy.config import PipelineConfig
    from emoji_privacy.files.fleet import FileWorker, ProgressBoard
    from emoji_privacy.pipeline import Anonymizer

    t0 = time.perf_counter()
    Anonymizer(PipelineConfig())
    load = time.perf_counter() - t0
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    started = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        worker = ray.remote(num_cpus=1)(FileWorker).remote(asdict(PipelineConfig()), board)
        ray.get(worker.ready.remote())
        ready = time.perf_counter() - t0
    finally:
        ray.shutdown()
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    frame = _first_frame()
    files = [photos / f"p{i:02d}.jpg" for i in range(16)]
    for f in files:
        cv2.imwrite(str(f), frame)
    plain = run(files, work / "p_plain")
    on_ray = run(files, work / "p_ray", "--ray", "--workers", "1")
    plain_one = run(files[:1], work / "p_plain1")
    ray_one = run(files[:1], work / "p_ray1", "--ray", "--workers", "1")
    return {"load": load, "init": started, "ready": ready, "plain_per_file": (plain - plain_one) / 15,
            "ray_per_file": (on_ray - ray_one) / 15, "ray_fixed": ray_one - plain_one}


def _first_frame():
    import av

    with av.open(str(SHARED / "fer_test.mp4")) as c:
        return next(c.decode(video=0)).to_ndarray(format="bgr24")


def model_rows(fps_core: float, per_file: float, startup: float, bytes_per_frame: dict[str, float],
               split_s: float, warmup_frames: int) -> list[list[object]]:
    """A day of the fleet (8.6 M frames in 80 one-hour recordings, cut into segments of ``split_s``) on N nodes
    of CORES_PER_NODE cores, one worker per core, all recordings MP4 or all raw bags."""
    files = 80
    per_file_frames = FLEET_FRAMES_PER_DAY // files
    segments = files * math.ceil(3600 / split_s)
    unit_frames = per_file_frames / (segments / files) + warmup_frames  # a segment and its warm-up
    caps = {kind: STORAGE_GBPS * 1e9 / b for kind, b in bytes_per_frame.items()}
    rows = []
    for nodes in (1, 2, 5, 10, 20, 50, 100):
        workers = nodes * CORES_PER_NODE
        busy = min(workers, segments)  # one segment runs on one worker: more workers than segments idle
        compute = busy * fps_core
        hours = {}
        for kind, cap in caps.items():
            rate = min(compute, cap)
            work = segments * unit_frames / rate + segments * per_file / busy
            hours[kind] = (startup + max(work, unit_frames / fps_core)) / 3600
        limits = []
        if workers >= segments:
            limits.append(f"the largest segment ({unit_frames / fps_core / 60:.0f} min on one core)")
        limits += [f"storage for {kind} ({cap:.0f} frames/s)" for kind, cap in caps.items() if cap < compute]
        rows.append([nodes, workers, f"{compute:.0f}", f"{hours['MP4']:.2f}", f"{hours['raw bags']:.2f}",
                     "; ".join(limits) or "compute"])
    return rows


def main() -> None:
    from emoji_privacy.config import PipelineConfig
    from emoji_privacy.files.cli import DEFAULT_SPLIT_S
    from emoji_privacy.files.segments import warmup_frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, help="folder for the outputs (default: a temporary one)")
    args = ap.parse_args()
    inputs = make_inputs()
    frames = frames_of(inputs)
    total = sum(frames.values())
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_fleet."))
    print(f"{len(inputs)} inputs, {total} frames; outputs in {work}", flush=True)
    times = {"plain tool": run(inputs, work / "plain")}
    for n in (1, 2):
        times[f"--ray, {n} worker{'s' if n > 1 else ''}"] = run(inputs, work / f"ray{n}", "--ray", "--workers", str(n))
    reference = (work / "plain.jsonl").read_bytes()
    same = {name: (work / f"ray{n}.jsonl").read_bytes() == reference for n, name in ((1, "1"), (2, "2"))}
    costs = ray_costs(work)
    rows = [[name, f"{s:.1f}", f"{total / s:.1f}", f"{times['plain tool'] / s:.2f}x"] for name, s in times.items()]
    in_rows = [[p.name, frames[p.name], f"{size_of(p) / 2 ** 20:.1f}",
                f"{size_of(p) / max(frames[p.name], 1) / 1e3:.0f}"] for p in inputs]
    ray2 = times["--ray, 2 workers"]
    fixed = costs["init"] + costs["ready"]
    # a core's share when both workers keep both cores busy (num_cpus=1 is Ray's scheduling label, not a limit:
    # one worker alone uses both cores, in its pipeline's two stages and the detector's threads)
    fps_core = total / max(ray2 - fixed - len(inputs) * costs["ray_per_file"] / 2, 1e-9) / 2
    plain_fps = total / max(times["plain tool"] - costs["load"], 1e-9)
    raw = [p for p in inputs if p.suffix == ".bag" or p.name.endswith("_ros2")]
    mp4 = [p for p in inputs if p.suffix == ".mp4"]
    # read and write: an output is about the size of its input
    bpf = {"raw bags": 2 * sum(size_of(p) for p in raw) / sum(frames[p.name] for p in raw),
           "MP4": 2 * sum(size_of(p) for p in mp4) / sum(frames[p.name] for p in mp4)}
    cost_rows = [
        ["start a local Ray cluster (ray.init)", f"{costs['init']:.1f} s", "once per job"],
        ["a worker ready with its models (actor start + model load)", f"{costs['ready']:.1f} s",
         f"once per worker, in parallel; loading the models in the plain tool: {costs['load']:.1f} s"],
        ["per file, Ray (16 photos, 1 worker)", f"{1e3 * costs['ray_per_file']:.0f} ms",
         f"plain tool: {1e3 * costs['plain_per_file']:.0f} ms a file"],
        ["a job of one photo, Ray against plain", f"{costs['ray_fixed']:.1f} s", "Ray's fixed cost per command"],
        ["per frame and core, 2 Ray workers on the 2 cores", f"{1e3 / fps_core:.1f} ms ({fps_core:.1f} frames/s)",
         f"plain tool: {1e3 / plain_fps:.1f} ms a frame ({plain_fps:.1f} frames/s on the 2 cores)"],
    ]
    sections = [
        "## Inputs\n\n" + table(["input", "frames", "MiB", "KB a frame"], in_rows),
        "## Throughput on this machine (2 cores)\n\nWall time of the whole command (models, Ray's start-up, "
        "every input written). The faces JSON of the Ray runs is the plain tool's, byte for byte: "
        f"1 worker {'yes' if same['1'] else 'NO'}, 2 workers {'yes' if same['2'] else 'NO'}.\n\n"
        + table(["run", "seconds", "frames/s", "speed-up"], rows),
        "## What Ray costs\n\n" + table(["cost", "measured", "note"], cost_rows),
        f"## A cluster of up to 100 nodes (a model, not a measurement)\n\nFrom the figures above: {fps_core:.1f} "
        f"frames/s per core, {costs['ray_per_file'] * 1e3:.0f} ms per file, {fixed:.0f} s to start. "
        f"Nodes of {CORES_PER_NODE} cores, one worker each; shared storage of {STORAGE_GBPS} GB/s (10 GbE NFS, "
        f"assumed); every frame read once and written once ({bpf['raw bags'] / 1e3:.0f} KB a frame for raw bags, "
        f"{bpf['MP4'] / 1e3:.0f} KB for MP4, from these inputs). The job: a day of the issue's fleet, "
        f"{FLEET_FRAMES_PER_DAY / 1e6:.1f} M frames in 80 one-hour recordings, each cut into segments of "
        f"{DEFAULT_SPLIT_S:.0f} s (the default `--split-seconds`), every segment with its warm-up.\n\n"
        + table(["nodes", "workers", "frames/s (compute)", "hours for the day, MP4", "hours, raw bags",
                 "what stops the scaling"],
                model_rows(fps_core, costs["ray_per_file"], fixed, bpf, DEFAULT_SPLIT_S,
                           warmup_frames(PipelineConfig()))),
    ]
    save("fleet", "Fleet throughput: the plain tool against Ray workers", sections)


if __name__ == "__main__":
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    main()
