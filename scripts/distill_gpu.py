"""Train teachers, then distil them into the small emotion nets, on one GPU inside a fixed time budget.

How the shipped emotion models were made when a GPU was lent for a few minutes (see models/README.md).
Phase A trains large teachers (and, beside them, the small nets without a teacher, for comparison);
phase B trains the small nets again with the teachers' mean softened logits as a second target
(``--distill-from``). Every run is an ordinary ``python -m emoji_privacy.training`` run folder.

The number of epochs is what fits: each phase first runs every job for two epochs side by side (the way
they will share the GPU), reads the seconds per epoch from their logs, and then starts the real runs
with as many epochs as fit the phase's budget (one-cycle schedules need the count up front).

    PYTHONPATH=src python scripts/distill_gpu.py --data FER2013.tar.gz --out runs/gpu --budget-a 200 --budget-b 220
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

TEACHER = ["--net", "widths=[64,128,256,512]", "blocks=[2,2,2,2]"]
WIDE = ["--net", "widths=[24,64,128,256]", "blocks=[1,2,2,1]"]  # 1.58 M parameters, ~1.1 ms/face (onnxruntime)
PHASE_A = {
    "teacher1": TEACHER + ["--seed", "1"],
    "teacher2": TEACHER + ["--seed", "2"],
    "teacher3": TEACHER + ["--seed", "3"],
    "compact": [],
    "compact_wide": WIDE,
    "paper42": ["--arch", "paper42"],
}
PHASE_B = {  # teachers are added as --distill-from
    "compact_kd": [],
    "compact_wide_kd": WIDE,
    "paper42_kd": ["--arch", "paper42"],
}
MAX_EPOCHS = {"teacher": 150}
EPOCH_LINE = re.compile(r"^epoch=(\d+) .*seconds=([0-9.]+)", re.M)


COMMON: list[str] = ["--device", "cuda", "--threads", "2"]


def launch(name: str, extra: list[str], epochs: int, out: Path, data: str) -> tuple[subprocess.Popen, Path]:
    log = out / f"{name}.log"
    cmd = [sys.executable, "-m", "emoji_privacy.training", "--data", data, "--quiet", *COMMON,
           "--out", str(out), "--name", name, "--epochs", str(epochs), *extra]
    with log.open("w") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT), log


def seconds_per_epoch(jobs: dict[str, list[str]], out: Path, data: str, timeout: float) -> dict[str, float]:
    """Two epochs of every job side by side; the second epoch's duration (warm) of each."""
    out.mkdir(parents=True, exist_ok=True)
    procs = {n: launch(n, extra, 2, out, data) for n, extra in jobs.items()}
    speed: dict[str, float] = {}
    end = time.time() + timeout
    while len(speed) < len(procs) and time.time() < end:
        time.sleep(1)
        for n, (p, log) in procs.items():
            rows = EPOCH_LINE.findall(log.read_text())
            if len(rows) >= 2 and n not in speed:
                speed[n] = float(rows[1][1]) - float(rows[0][1])
                p.kill()
            elif p.poll() not in (None, -9) and n not in speed:
                raise SystemExit(f"probe {n} failed:\n{log.read_text()[-3000:]}")
    for p, _ in procs.values():
        p.kill()
    missing = set(procs) - set(speed)
    if missing:
        raise SystemExit(f"probe: no two epochs within {timeout:.0f} s for {sorted(missing)}")
    return speed


def run_phase(jobs: dict[str, list[str]], budget: float, out: Path, data: str, margin: float) -> dict[str, Path]:
    """Probe, then run every job with the epochs that fit ``budget`` seconds; returns each job's run folder."""
    t0 = time.time()
    speed = seconds_per_epoch(jobs, out / "probe", data, timeout=120)
    left = budget - (time.time() - t0) - margin
    procs = {}
    for n, extra in jobs.items():
        cap = next((v for k, v in MAX_EPOCHS.items() if n.startswith(k)), 400)
        epochs = max(5, min(cap, int(left / speed[n])))
        print(f"{n}: {speed[n]:.2f} s/epoch side by side -> {epochs} epochs", flush=True)
        procs[n] = launch(n, extra, epochs, out, data)
    deadline = t0 + budget + 30  # a run past its estimate keeps its checkpoint (best epoch so far)
    for n, (p, _) in procs.items():
        try:
            p.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            p.kill()
            print(f"{n}: stopped at the deadline", flush=True)
    folders = {}
    for n in jobs:
        found = sorted(out.glob(f"{n}-2*"))
        if found:
            folders[n] = found[-1]
        print(f"{n}: {(out / f'{n}.log').read_text().strip().splitlines()[-1][:200]}", flush=True)
    return folders


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FER2013 (folder, .tar.gz or fer2013.csv)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-a", type=float, default=200, help="seconds for the teachers (phase A)")
    ap.add_argument("--budget-b", type=float, default=220, help="seconds for the distilled students (phase B)")
    ap.add_argument("--margin", type=float, default=30, help="seconds kept for each run's evaluation and files")
    ap.add_argument("--teacher-net", default=" ".join(TEACHER[1:]), help="--net of the teachers")
    ap.add_argument("--common", default=" ".join(COMMON), help="trainer options of every run (a dry run on "
                    "the CPU: '--device cpu --limit 300')")
    args = ap.parse_args()
    COMMON[:] = shlex.split(args.common)
    for n in PHASE_A:
        if n.startswith("teacher"):
            PHASE_A[n][1:len(TEACHER)] = shlex.split(args.teacher_net)
    args.out.mkdir(parents=True, exist_ok=True)
    # decode the data once into the cache, so the side-by-side runs only load arrays
    subprocess.run([sys.executable, "-c", "import sys; from emoji_privacy.training.data import load_fer2013; "
                    "load_fer2013(sys.argv[1], progress=False)", args.data], check=True)
    a = run_phase(PHASE_A, args.budget_a, args.out, args.data, args.margin)
    # a finished teacher's .pt, else the best epoch in the checkpoint of one stopped at the deadline
    teachers = [next((f for f in (a[n] / f"{n}.pt", a[n] / "training_state.pt") if f.exists()), None)
                for n in sorted(a) if n.startswith("teacher")]
    teachers = [t for t in teachers if t is not None]
    if not teachers:
        print("no teacher finished; phase B skipped", file=sys.stderr)
        return 1
    distill = ["--distill-from", ",".join(str(t) for t in teachers)]
    run_phase({n: extra + distill for n, extra in PHASE_B.items()}, args.budget_b, args.out, args.data, args.margin)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
