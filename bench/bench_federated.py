#!/usr/bin/env python3
"""Federated vs centralized training of the emotion CNN: PrivateTest accuracy, round time, bytes.

10 clients made from FER2013 Training (IID, Dirichlet alpha 0.5 and 0.1), the same model and
local recipe everywhere, the same budget of local epochs (rounds x local epochs = centralized
epochs). Each run is a separate ``python -m emoji_privacy.federated`` process (Flower's simulation
engine), so its numbers are what a user gets from that command. Writes ``bench/federated.md``,
``bench/results/federated.json`` and ``bench/results/federated_rounds.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, commit, machine, table  # noqa: E402

BENCH = Path(__file__).resolve().parent

# name, partition, strategy, extra flags, run-config overrides
RUNS: list[tuple[str, str, str, list[str], list[str]]] = [
    ("centralized", "iid", "-", [], []),
    ("fedavg-iid", "iid", "fedavg", [], []),
    ("fedavg-iid-secagg", "iid", "fedavg", ["--secagg"], []),
    ("fedavg-a0.5", "a0.5", "fedavg", [], []),
    ("fedavg-a0.5-secagg", "a0.5", "fedavg", ["--secagg"], []),
    ("fedavg-a0.1", "a0.1", "fedavg", [], []),
    ("fedavg-a0.1-secagg", "a0.1", "fedavg", ["--secagg"], []),
    ("fedavg-iid-dp", "iid", "fedavg", ["--dp"], []),
    ("fedavgm-a0.5", "a0.5", "fedavgm", [], []),
    # server momentum 0.9 at server lr 1.0 on top of clients' own momentum: try a third of the step
    ("fedavgm-a0.5-slr0.3", "a0.5", "fedavgm", [], ["server-lr=0.3"]),
    # the same alpha=0.1 run from another initialization and client seed: how much two runs differ
    ("fedavg-a0.1-seed1", "a0.1", "fedavg", [], ["seed=1"]),
]
PARTITIONS = {"iid": None, "a0.5": 0.5, "a0.1": 0.1}


def partition(work: Path, name: str, args: argparse.Namespace) -> Path:
    out = work / f"clients-{name}"
    want = {"clients_requested": args.clients, "alpha": PARTITIONS[name], "total": args.total, "seed": args.seed}
    info = out / "partition.json"
    if info.is_file() and all(json.loads(info.read_text()).get(k) == v for k, v in want.items()):
        return out
    cmd = [sys.executable, "-m", "emoji_privacy.federated", "partition", "--out", str(out), "--clients",
           str(args.clients), "--total", str(args.total), "--seed", str(args.seed), "--quiet"]
    if PARTITIONS[name] is not None:
        cmd += ["--alpha", str(PARTITIONS[name])]
    subprocess.run(cmd, check=True)
    return out


def run_one(work: Path, name: str, part: Path, strategy: str, flags: list[str], extra: list[str],
            args: argparse.Namespace) -> dict:
    mode = "centralized" if strategy == "-" else "simulate"
    rc = [f"num-rounds={args.rounds}", f"local-epochs={args.local_epochs}", f"seed={args.seed}",
          f"dp-noise={args.dp_noise}", f"dp-clip={args.dp_clip}"]
    if strategy != "-":
        rc.append(f"strategy={strategy}")
    rc += extra
    cmd = [sys.executable, "-m", "emoji_privacy.federated", mode, "--partitions", str(part), "--out",
           str(work / "runs"), "--name", name, *flags, "--run-config", *rc]
    log = work / f"{name}.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, check=False)
    wall = time.perf_counter() - t0
    saved = [ln[6:] for ln in proc.stdout.splitlines() if ln.startswith("saved ")]
    if proc.returncode or not saved:
        raise SystemExit(f"bench_federated: {name} failed (exit {proc.returncode}); see {log}")
    return collect(name, part, strategy, flags, Path(saved[-1]), wall, " ".join(cmd[1:]))


def collect(name: str, part: Path, strategy: str, flags: list[str], run_dir: Path, wall: float, command: str) -> dict:
    """One table row from a finished run folder."""
    meta = json.loads((run_dir / "metrics.json").read_text())["metadata"]
    fed = json.loads((run_dir / "rounds.json").read_text())
    rounds = [r for r in fed["rounds"] if r["round"] > 0]
    times = [r["round_seconds"] for r in rounds if "round_seconds" in r]
    return {"name": name, "partition": part.name, "strategy": strategy, "secagg": "--secagg" in flags,
            "dp": fed.get("dp"), "private": meta["metrics"]["PrivateTest"], "public": meta["metrics"]["PublicTest"],
            "best_round": fed["best_round"], "round_seconds": sum(times) / max(len(times), 1),
            "traffic": fed.get("traffic", {}), "curve": [(r["round"], r["val_acc"]) for r in fed["rounds"]],
            "wall_seconds": wall, "run_dir": str(run_dir), "command": command}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        xs, ys = zip(*r["curve"], strict=True)
        ax.plot(xs, ys, label=r["name"], ls="--" if r["secagg"] else "-", lw=2 if r["strategy"] == "-" else 1.2)
    ax.set_xlabel("round (centralized: epoch block of the same local epochs)"), ax.set_ylabel("PublicTest accuracy")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: list[dict], args: argparse.Namespace, cmdline: str) -> str:
    base = next((r for r in results if r["strategy"] == "-"), None)
    rows = []
    for r in results:
        acc = r["private"]["accuracy"]
        delta = f"{(acc - base['private']['accuracy']) * 100:+.2f}" if base and r is not base else "-"
        tr = r["traffic"]
        eps = f"{r['dp']['epsilon']:.3g} (z={r['dp']['noise_multiplier']}, C={r['dp']['clipping_norm']}, " \
              f"δ={r['dp']['delta']})" if r["dp"] else "-"
        rows.append([r["name"], r["partition"].replace("clients-", ""), r["strategy"],
                     "yes" if r["secagg"] else "no", eps, f"{acc:.2%}", f"{r['private']['macro_f1']:.3f}", delta,
                     r["best_round"], f"{r['round_seconds']:.1f}",
                     f"{tr['bytes_sent_per_client_per_round'] / 1e6:.2f}" if tr else "-",
                     f"{tr['bytes_received_per_client_per_round'] / 1e6:.2f}" if tr else "-",
                     f"{r['wall_seconds'] / 60:.1f}"])
    headers = ["run", "clients' data", "strategy", "SecAgg+", "DP epsilon", "PrivateTest acc", "macro-F1",
               "vs centralized (points)", "round kept", "s per round", "MB sent per client per round",
               "MB received per client per round", "wall min"]
    by = {r["name"]: r["private"]["accuracy"] for r in results}
    goals = []
    if base and "fedavg-a0.5" in by:
        gap = (base["private"]["accuracy"] - by["fedavg-a0.5"]) * 100
        goals.append(f"- FedAvg alpha=0.5 within 3 points of centralized: {gap:.2f} points behind -> "
                     f"{'met' if gap <= 3 else 'NOT met'}")
    for p in ("iid", "a0.5", "a0.1"):
        pairs = [(by[f"fedavg-{p}{s}"], by[f"fedavg-{p}-secagg{s}"]) for s in ("", "-seed1")
                 if f"fedavg-{p}{s}" in by and f"fedavg-{p}-secagg{s}" in by]
        if pairs:
            costs = [(a - b) * 100 for a, b in pairs]
            cost = sum(costs) / len(costs)
            each = f" (seeds: {', '.join(f'{c:+.2f}' for c in costs)})" if len(costs) > 1 else ""
            goals.append(f"- SecAgg+ cost on {p}: {cost:+.2f} points{each} -> "
                         f"{'met' if cost <= 0.5 else 'NOT met'} (goal <= 0.5)")
    dp = next((r for r in results if r["dp"]), None)
    if dp:
        from emoji_privacy.federated.server_app import dp_epsilon

        d = dp["dp"]
        scale = ", ".join(f"z={z}: {dp_epsilon(z, args.rounds, d['delta']):.3g}" for z in (0.5, 1.0, 2.0, 4.0))
        goals.append(f"- DP: {dp['name']} reached {dp['private']['accuracy']:.2%} at epsilon {d['epsilon']:.3g} "
                     f"(noise multiplier {d['noise_multiplier']}, clip {d['clipping_norm']}, delta {d['delta']}); "
                     f"for scale, {args.rounds} rounds with every client in every round give epsilon {scale}. With "
                     f"{args.clients} clients the noise on the average is z * clip / {args.clients} per weight, "
                     f"which only a fleet of hundreds of robots per round makes small")
    if "fedavg-a0.1" in by and "fedavg-a0.1-seed1" in by:
        goals.append(f"- for scale, the same alpha=0.1 FedAvg run from two seeds: "
                     f"{by['fedavg-a0.1'] * 100:.2f}% and {by['fedavg-a0.1-seed1'] * 100:.2f}%")
    skew = {}
    for p in PARTITIONS:
        f = Path(args.work) / f"clients-{p}" / "partition.json"
        if f.is_file():
            d = json.loads(f.read_text())
            sizes = [c["faces"] for c in d["clients"]]
            skew[p] = f"{p}: {min(sizes)}-{max(sizes)} faces per client, label skew (mean TV distance) " \
                      f"{d['label_skew_tv']:.3f}"
    return "\n".join([
        "# Federated training of the emotion CNN (Flower)", "",
        f"Machine: {machine()}  ", f"Commit: {commit()}  ", f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Command: `{cmdline}` (after `source build/setup.bash`)", "",
        f"{args.clients} clients from {args.total} FER2013 Training faces (class-stratified draw, seed {args.seed}); "
        f"model paper42 (hidden 256, 0.48 M parameters: 1.93 MB of float32 weights and batch-norm "
        f"statistics per model); {args.rounds} rounds x {args.local_epochs} local epoch(s), "
        f"SGD batch 32, lr 0.05 Nesterov; centralized = the same recipe for {args.rounds} x {args.local_epochs} "
        f"epochs on the pooled faces. Every run keeps the round best on PublicTest and is evaluated once on "
        f"PrivateTest (3589 faces). Higher accuracy is better. Each run is one Flower simulation process "
        f"(Ray, one client per core; centralized: one process, one torch thread); s per round = fit and "
        f"aggregation, without the server's PublicTest pass (centralized: one block of the same local epochs); "
        f"bytes = protobuf size of every message a client receives and sends (SecAgg+ adds its key-exchange "
        f"stages and sends the masked, quantized vector as 64-bit integers).", "",
        "Client data: " + "; ".join(skew.values()), "",
        table(headers, rows), "",
        "Targets:", *goals, "",
        "Accuracy per round: `results/federated_rounds.png`; every run's folder (model, curves, confusion, "
        "rounds.json) is under the work folder given by `--work`.", ""])


def save(results: list[dict], store: Path, args: argparse.Namespace, cmdline: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(results, indent=1))
    plot(results, RESULTS / "federated_rounds.png")
    text = report(results, args, cmdline)
    (BENCH / "federated.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--total", type=int, default=12000, help="Training faces shared out (0 = all 28709)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--dp-noise", type=float, default=0.01)
    ap.add_argument("--dp-clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=[], help="run names to (re)run; others are read from the last "
                    "results/federated.json")
    ap.add_argument("--work", type=Path, default=BENCH.parent / "runs" / "bench_federated")
    ap.add_argument("--report-only", action="store_true", help="rewrite federated.md from results/federated.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    given = [a for a in sys.argv[1:] if a != "--report-only"]
    cmdline = " ".join(["python3 bench/bench_federated.py", *given])
    store = RESULTS / "federated.json"
    if args.report_only:
        print(save(json.loads(store.read_text()), store, args, cmdline))
        return 0
    previous = {r["name"]: r for r in json.loads(store.read_text())} if args.only and store.is_file() else {}
    results = []
    for name, pname, strategy, flags, extra in RUNS:
        if args.only and name not in args.only:
            if name in previous:
                results.append(previous[name])
            continue
        part = partition(args.work, pname, args)
        print(f"[bench_federated] {name} ...", file=sys.stderr, flush=True)
        results.append(run_one(args.work, name, part, strategy, flags, extra, args))
        print(f"[bench_federated] {name}: PrivateTest {results[-1]['private']['accuracy']:.4f}, "
              f"{results[-1]['wall_seconds'] / 60:.1f} min", file=sys.stderr, flush=True)
        save(results, store, args, cmdline)  # after every run: a long benchmark keeps what it measured
    text = save(results, store, args, cmdline)
    print(text)
    print(f"saved {BENCH / 'federated.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
