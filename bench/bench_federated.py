#!/usr/bin/env python3
"""Federated vs centralized training of the default emotion model: PrivateTest accuracy, gap, round time, bytes.

The whole FER2013 Training split over 10 clients (IID, Dirichlet alpha 0.5 and 0.1), the default model's
architecture, one local recipe everywhere. Strategies FedAvg, FedProx, FedAvgM (server momentum on the
trained weights only) and FedBN (batch norm kept by each robot); SecAgg+ on and off over three seeds; and
client-level DP with 100 robots, 10 sampled per round, at noise multipliers that give epsilon ~1, 3 and 8;
and DP that learns: the server pretrains on a public 10% of Training that no robot holds (row
``public-pretrain``, ``centralized`` on the partition's ``public/``), then 100 robots holding the other 90%,
20 per round, train from that model, every layer or the output layer alone (``train-layers=head``), without
noise and at epsilon ~8, 3 and 1 (rows ``dp100p-*``).
The centralized reference is the shipped default model, trained by the project's own trainer on the same
Training faces (its PrivateTest accuracy is read from its metadata). Each run is a separate
``python -m emoji_privacy.federated simulate`` process, checkpointed every round: a run stopped by a session's
end continues where it was when the benchmark is started again. Writes ``bench/results/federated.md``,
``federated.json`` and ``federated_rounds.png`` after every run.

    python3 bench/bench_federated.py --only fedavg-a0.5-secagg            # one row (about 45 min on 2 cores)
    python3 bench/bench_federated.py --add fedavg-a0.5-secagg=runs/fer_federated-20261130-115259
    python3 bench/bench_federated.py --report-only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, commit, machine, table  # noqa: E402

BENCH = Path(__file__).resolve().parent

# name, partition, strategy, extra flags, run-config overrides
RUNS: list[tuple[str, str, str, list[str], list[str]]] = [
    ("fedavg-iid", "iid", "fedavg", [], []),
    ("fedavg-a0.5", "a0.5", "fedavg", [], []),
    ("fedavg-a0.5-secagg", "a0.5", "fedavg", ["--secagg"], []),
    ("fedavg-a0.5-secagg-r120", "a0.5", "fedavg", ["--secagg"], ["num-rounds=120"]),  # models/fer_federated.pt
    ("fedavg-a0.1", "a0.1", "fedavg", [], []),
    ("fedprox-a0.5", "a0.5", "fedprox", [], []),
    ("fedavgm-a0.5", "a0.5", "fedavgm", [], ["server-lr=0.1"]),  # FedAvg's step size in the long run
    ("fedbn-a0.5", "a0.5", "fedbn", [], []),
    ("fedbn-a0.1", "a0.1", "fedbn", [], []),
    # the centralized curve: the same model and local recipe (SGD, lr 0.05 cosine) on the pooled faces of the
    # a0.5 robots (the whole Training split), one epoch per "round": what federation costs at the same recipe
    ("centralized-pooled", "a0.5", "centralized", [], []),
    # the rest of the strategy x alpha grid (issue 16 item 2), run after the rows above
    ("fedprox-a0.1", "a0.1", "fedprox", [], []),
    ("fedavgm-a0.1", "a0.1", "fedavgm", [], ["server-lr=0.1"]),
    ("fedprox-iid", "iid", "fedprox", [], []),
    ("fedavgm-iid", "iid", "fedavgm", [], ["server-lr=0.1"]),
    ("fedbn-iid", "iid", "fedbn", [], []),
    # logit adjustment against the label skew (each robot's class prior in its loss only)
    ("fedavg-a0.5-secagg-la", "a0.5", "fedavg", ["--secagg"], ["logit-adjust=1"]),
    ("fedavg-a0.1-la", "a0.1", "fedavg", [], ["logit-adjust=1"]),
    # SecAgg+ costs nothing: three seeds with and without it
    ("fedavg-a0.5-seed1", "a0.5", "fedavg", [], ["seed=1"]),
    ("fedavg-a0.5-secagg-seed1", "a0.5", "fedavg", ["--secagg"], ["seed=1"]),
    ("fedavg-a0.5-seed2", "a0.5", "fedavg", [], ["seed=2"]),
    ("fedavg-a0.5-secagg-seed2", "a0.5", "fedavg", ["--secagg"], ["seed=2"]),
    # client-level DP: 100 robots, 10 per round; the same run without noise is the reference
    ("dp100-none", "iid100", "fedavg", [], ["fraction-fit=0.1"]),
    ("dp100-eps8", "iid100", "fedavg", ["--dp"], ["fraction-fit=0.1", "epsilon=8"]),
    ("dp100-eps3", "iid100", "fedavg", ["--dp"], ["fraction-fit=0.1", "epsilon=3"]),
    ("dp100-eps1", "iid100", "fedavg", ["--dp"], ["fraction-fit=0.1", "epsilon=1"]),
    # DP that learns: the server pretrains on its public 10% of Training (given to no robot), the robots
    # (the other 90%, 100 of them, 20 per round) train from there; "head": the output layer alone, its update
    # clipped to 0.05 (a fifth of its typical norm after one local epoch, ~0.25): the noise then stays small
    # against the layer's weights (norm ~3.4) over 60 rounds
    ("public-pretrain", "iid100p", "centralized", [], ["num-rounds=40"]),
    ("dp100p-none-all", "iid100p", "fedavg", [], ["fraction-fit=0.2", "init=@public-pretrain"]),
    ("dp100p-none-head", "iid100p", "fedavg", [], ["fraction-fit=0.2", "init=@public-pretrain",
                                                   "train-layers=head"]),
    ("dp100p-eps8-head", "iid100p", "fedavg", ["--dp"], ["fraction-fit=0.2", "init=@public-pretrain",
                                                         "train-layers=head", "dp-clip=0.05", "epsilon=8"]),
    ("dp100p-eps3-head", "iid100p", "fedavg", ["--dp"], ["fraction-fit=0.2", "init=@public-pretrain",
                                                         "train-layers=head", "dp-clip=0.05", "epsilon=3"]),
    ("dp100p-eps1-head", "iid100p", "fedavg", ["--dp"], ["fraction-fit=0.2", "init=@public-pretrain",
                                                         "train-layers=head", "dp-clip=0.05", "epsilon=1"]),
]
ROW_STRATEGY = {name: strategy for name, _, strategy, _, _ in RUNS}
PARTITIONS = {"iid": (10, None), "a0.5": (10, 0.5), "a0.1": (10, 0.1), "iid100": (100, None), "iid100p": (100, None)}
PUBLIC_FACES = {"iid100p": 2871}
"""Training faces a partition holds out as the server's public data (10%)."""
SEEDS = ("", "-seed1", "-seed2")
TRAINING_FACES = 28709


def partition(work: Path, name: str, args: argparse.Namespace) -> Path:
    out = work / f"clients-{name}"
    clients, alpha = PARTITIONS[name]
    public = PUBLIC_FACES.get(name, 0)
    want = {"clients_requested": clients, "alpha": alpha, "total": args.total or TRAINING_FACES - public, "seed": 0,
            **({"public": public} if public else {})}
    info = out / "partition.json"
    if info.is_file() and all(json.loads(info.read_text()).get(k) == v for k, v in want.items()):
        return out
    cmd = [sys.executable, "-m", "emoji_privacy.federated", "partition", "--out", str(out), "--clients",
           str(clients), "--total", str(args.total), "--seed", "0", "--quiet", "--public", str(public)]
    if alpha is not None:
        cmd += ["--alpha", str(alpha)]
    subprocess.run(cmd, check=True)
    return out


def noise_for_epsilon(epsilon: float, rounds: int, delta: float, sampled: int, population: int,
                      releases: int = 2) -> float:
    """The noise multiplier whose accountant epsilon after ``rounds`` is ``epsilon`` (bisection); ``releases``:
    2 when the robots send batch-norm statistics, 1 when they train the output layer alone."""
    from emoji_privacy.federated.server_app import dp_epsilon

    lo, hi = 0.05, 100.0
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        if dp_epsilon(mid, rounds, delta, sampled, population, releases=releases) > epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def run_config(args: argparse.Namespace, extra: list[str], clients: int, work: Path | None = None) -> list[str]:
    """The run config of one row; ``init=@NAME`` is the model the row NAME made (in ``work``)."""
    rc = [f"architecture={args.arch}", f"net={args.net}", f"num-rounds={args.rounds}",
          f"local-epochs={args.local_epochs}", f"batch-size={args.batch_size}", f"lr={args.lr}",
          f"secagg-max-weight={args.secagg_max_weight}", f"dp-delta={args.dp_delta}", f"dp-clip={args.dp_clip}",
          f"dp-clip-stats={args.dp_clip_stats}"]
    for item in extra:
        key, value = item.split("=", 1)
        if key == "epsilon":  # not a run-config key: the noise multiplier that reaches it
            fraction = next(float(e.split("=")[1]) for e in extra if e.startswith("fraction-fit="))
            sampled = max(1, int(clients * fraction))
            releases = 1 if "train-layers=head" in extra else 2
            z = noise_for_epsilon(float(value), args.rounds, args.dp_delta, sampled, clients, releases)
            rc.append(f"dp-noise={z:.4f}")
        elif key == "init" and value.startswith("@"):
            rc.append(f"init={made_by(work, value[1:])}")
        else:
            rc.append(item)
    return rc


def made_by(work: Path | None, name: str) -> Path:
    """The model of the finished row ``name`` (its newest run folder under ``work``)."""
    done = sorted((work or Path()).glob(f"runs/{name}-2*/{name}.pt"))
    if not done:
        raise SystemExit(f"bench_federated: this row starts from the model of {name}; run --only {name} first")
    return done[-1]


def run_one(work: Path, name: str, part: Path, strategy: str, flags: list[str], extra: list[str],
            args: argparse.Namespace) -> dict:
    """One simulation (or, for strategy "centralized", one model on the pooled faces: the server's pretraining on
    the partition's public faces, or all the robots' faces of a partition without them); a run folder left by an
    earlier, stopped run is resumed, not started over."""
    clients = PARTITIONS[part.name.replace("clients-", "")][0]
    runs = work / "runs"
    command = "centralized" if strategy == "centralized" else "simulate"
    stopped = [d for d in sorted(runs.glob(f"{name}-2*")) if (d / "server_state.pt").is_file()
               and not (d / "rounds.json").is_file()]
    if stopped:
        cmd = [sys.executable, "-m", "emoji_privacy.federated", command, "--resume", str(stopped[-1])]
    elif strategy == "centralized":
        rc = run_config(args, extra, 1, work)  # the row's num-rounds comes later and wins
        pooled = part / "public" if (part / "public").is_dir() else part
        cmd = [sys.executable, "-m", "emoji_privacy.federated", "centralized", "--partitions", str(pooled),
               "--out", str(runs), "--name", name, "--cpus", str(args.cpus), "--run-config", *rc]
    else:
        rc = run_config(args, extra, clients, work) + [f"strategy={strategy}"]
        cmd = [sys.executable, "-m", "emoji_privacy.federated", "simulate", "--partitions", str(part), "--out",
               str(runs), "--name", name, "--cpus", str(args.cpus), *flags, "--run-config", *rc]
    return _run_logged(cmd, work, name)


def _run_logged(cmd: list[str], work: Path, name: str) -> dict:
    log = work / f"{name}.log"
    t0 = time.perf_counter()
    with log.open("a") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, check=False)
    wall = time.perf_counter() - t0
    saved = [ln[6:] for ln in proc.stdout.splitlines() if ln.startswith("saved ")]
    if proc.returncode or not saved:
        raise SystemExit(f"bench_federated: {name} failed (exit {proc.returncode}); see {log}")
    return collect(name, Path(saved[-1]), wall)


def collect(name: str, run_dir: Path, wall: float | None = None) -> dict:
    """One table row from a finished run folder."""
    meta = json.loads((run_dir / "metrics.json").read_text())["metadata"]
    fed = json.loads((run_dir / "rounds.json").read_text())
    rc = fed["run_config"]
    part = Path(rc["partitions"])
    info = json.loads((part / "partition.json").read_text()) if (part / "partition.json").is_file() else {}
    rounds = [r for r in fed["rounds"] if r["round"] > 0]
    times = [r["round_seconds"] for r in rounds if "round_seconds" in r]
    sampled = max(1, int(rc["min-clients"] * rc["fraction-fit"]))
    # passes over the Training faces per round: the sampled robots' share of the faces the robots hold
    passes = rc["local-epochs"] * sampled / rc["min-clients"] * info.get("total", TRAINING_FACES) / TRAINING_FACES
    if part.name == "public":  # the server's pretraining: its public faces, pooled (no client)
        part = part.parent
        info = json.loads((part / "partition.json").read_text()) if (part / "partition.json").is_file() else {}
        strategy = f"centralized on the {info.get('public', '?')} public faces"
        passes = rc["local-epochs"] * info.get("public", 0) / TRAINING_FACES
    elif ROW_STRATEGY.get(name) == "centralized":
        strategy = "centralized on the robots' pooled faces, same recipe"
    else:
        strategy = rc["strategy"] + (f" + logit-adjust {rc['logit-adjust']:g}" if rc.get("logit-adjust") else "")
        if rc.get("init"):
            strategy += f", from {Path(rc['init']).stem}"
        if rc.get("train-layers", "all") != "all":
            strategy += f", trains {rc['train-layers']} only"
    return {"name": name, "partition": part.name, "clients": rc["min-clients"], "alpha": info.get("alpha"),
            "strategy": strategy, "init": Path(rc["init"]).stem if rc.get("init") else None,
            "secagg": bool(rc["secagg"]), "seed": rc["seed"], "dp": fed.get("dp"),
            "private": meta["metrics"]["PrivateTest"], "public": meta["metrics"]["PublicTest"],
            "best_round": fed["best_round"], "rounds": rc["num-rounds"],
            "round_seconds": sum(times) / max(len(times), 1),
            "traffic": _traffic(run_dir, rc, fed), "curve": [(r["round"], r["val_acc"]) for r in fed["rounds"]],
            "passes_per_round": passes, "architecture": rc["architecture"],
            "wall_seconds": wall if wall is not None else fed["rounds"][-1]["seconds"], "run_dir": str(run_dir)}


def _traffic(run_dir: Path, rc: dict, fed: dict) -> dict:
    """Per participating client and round, recounted from the run's log (older runs counted per node id,
    which a resume renews and a sampled client does not use every round)."""
    from emoji_privacy.federated.server_app import traffic_summary

    return traffic_summary(run_dir / "traffic.jsonl", rc["num-rounds"], rc["secagg"]) or fed.get("traffic", {})


def reference(path: Path) -> dict:
    """The centralized model of the same architecture, trained by the project's trainer on the same faces."""
    import torch

    meta = torch.load(path, map_location="cpu", weights_only=True)["metadata"]
    return {"name": f"centralized ({path.name}, train_emotion)", "architecture": meta["architecture"],
            "private": meta["metrics"]["PrivateTest"]}


def plot(results: list[dict], ref: dict, path: Path) -> None:
    """PublicTest accuracy per round and per client epoch: the 10-robot runs above (with the centralized curve
    of the same recipe, black), the 100-robot DP runs below; dashed: SecAgg+."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [[r for r in results if "100" not in r["partition"]], [r for r in results if "100" in r["partition"]]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 5.5 * len(groups)), sharey=True, squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for row, group in zip(axes, groups, strict=True):
        top = ref["private"]["accuracy"]
        for i, r in enumerate(group):
            rounds, acc = zip(*r["curve"], strict=True)
            pooled = r["strategy"].startswith("centralized on the robots")
            style = dict(label=r["name"], ls="--" if r["secagg"] else "-", lw=2.2 if pooled else 1.1,
                         color="k" if pooled else colours[i % len(colours)])
            row[0].plot(rounds, acc, **style)
            row[1].plot([k * r["passes_per_round"] for k in rounds], acc, **style)
            top = max(top, *acc)
        for ax in row:
            ax.axhline(ref["private"]["accuracy"], color="0.4", lw=1, ls=":", label=f"{ref['name']}: PrivateTest")
            ax.set_ylim(0, top + 0.03)
            ax.grid(alpha=0.3)
        row[0].set_xlabel("round"), row[1].set_xlabel("client epochs (passes over the Training faces)")
        row[0].set_ylabel("PublicTest accuracy")
        row[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results: list[dict], ref: dict, args: argparse.Namespace, cmdline: str) -> str:
    base = ref["private"]["accuracy"]
    rows = []
    for r in results:
        acc = r["private"]["accuracy"]
        tr = r["traffic"]
        eps = f"{r['dp']['epsilon']:.3g} (z={r['dp']['noise_multiplier']}, clip {r['dp']['clipping_norm']:g})" \
            if r["dp"] else "-"
        mb = (tr["bytes_sent_per_client_per_round"] + tr["bytes_received_per_client_per_round"]) / 1e6 if tr else None
        rows.append([r["name"], "IID" if r["alpha"] is None else r["alpha"], r["clients"], r["strategy"],
                     "yes" if r["secagg"] else "no", eps, f"{acc:.2%}", f"{r['private']['macro_f1']:.3f}",
                     f"{(acc - base) * 100:+.2f}", f"{r['best_round']} / {r['rounds']}", f"{r['round_seconds']:.1f}",
                     "-" if mb is None else f"{mb:.2f}"])
    headers = ["run", "alpha", "clients", "strategy", "SecAgg+", "DP epsilon (delta 1e-5)", "PrivateTest",
               "macro-F1", "gap to centralized (points)", "round kept / rounds", "s per round",
               "MB per client per round (sent + received)"]
    by = {r["name"]: r for r in results}
    goals = []
    for head in (by[n] for n in ("fedavg-a0.5-secagg", "fedavg-a0.5-secagg-r120") if n in by):
        gap = (base - head["private"]["accuracy"]) * 100
        goals.append(f"- FedAvg, alpha 0.5, SecAgg+, {head['rounds']} rounds: {gap:.2f} points behind the "
                     "centralized model -> "
                     f"{'met' if gap <= 3 else 'NOT met'} (within 3); above the seed paper's 60.12%: "
                     f"{'yes' if head['private']['accuracy'] > 0.6012 else 'no'}")
    pairs = [(by[f"fedavg-a0.5{s}"], by[f"fedavg-a0.5-secagg{s}"]) for s in SEEDS
             if f"fedavg-a0.5{s}" in by and f"fedavg-a0.5-secagg{s}" in by]
    if pairs:
        import statistics

        def sd(v: list[float]) -> float:
            return statistics.stdev(v) if len(v) > 1 else float("nan")

        plain = [a["private"]["accuracy"] * 100 for a, _ in pairs]
        sec = [b["private"]["accuracy"] * 100 for _, b in pairs]
        goals.append(f"- SecAgg+ over {len(pairs)} seed(s) at alpha 0.5: without {statistics.mean(plain):.2f} "
                     f"+- {sd(plain):.2f}%, with {statistics.mean(sec):.2f} +- {sd(sec):.2f}%")
    if "centralized-pooled" in by:  # the same recipe without federation: what federating itself costs
        pooled = by["centralized-pooled"]["private"]["accuracy"]
        for n in ("fedavg-iid", "fedavg-a0.5", "fedavg-a0.1"):
            if n in by:
                goals.append(f"- {n} against centralized-pooled (the same recipe and epochs on the pooled faces, "
                             f"{pooled:.2%}): {(by[n]['private']['accuracy'] - pooled) * 100:+.2f} points")
    for r in results:
        if not r["dp"]:
            continue
        # the same clients without noise: the same recipe, and (for a head-only row) every layer trained
        refs = dict.fromkeys(n for n in (re.sub(r"-eps[0-9.]+", "-none", r["name"]),
                                         re.sub(r"-eps[0-9.]+-head$", "-none-all", r["name"]))
                             if n in by and n != r["name"])
        for n in refs:
            gap = (by[n]["private"]["accuracy"] - r["private"]["accuracy"]) * 100
            goals.append(f"- DP {r['name']}: epsilon {r['dp']['epsilon']:.2f}, {gap:.2f} points below {n} (the "
                         "same clients without noise)" + (f" -> {'met' if gap <= 8 else 'NOT met'} (epsilon <= 8 "
                                                         "within 8 points)" if r["dp"]["epsilon"] <= 8.5 else ""))
    for r in results:  # what a run started from a pretrained model learned from the robots
        start = r.get("init")
        if start in by:
            gain = (r["private"]["accuracy"] - by[start]["private"]["accuracy"]) * 100
            goals.append(f"- {r['name']}: {gain:+.2f} points against its starting model {start} "
                         f"({by[start]['private']['accuracy']:.2%}): what the robots added")
    net_options = f" (options {args.net})" if json.loads(args.net) else ""
    return "\n".join([
        "# Federated training of the emotion CNN (Flower)", "",
        f"Machine: {machine()}  ", f"Commit: {commit()}  ", f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Command: `{cmdline}` (after `source build/setup.bash`)", "",
        f"Every FER2013 Training face, shared out over the clients of each partition (Dirichlet over classes; "
        f"seed 0); model {args.arch}{net_options}; {args.rounds} rounds (unless the row says otherwise) x "
        f"{args.local_epochs} local epoch(s), "
        f"SGD batch {args.batch_size}, lr {args.lr} with momentum 0.9, cosine over the rounds. Each run keeps "
        f"the round best on PublicTest and is evaluated once on PrivateTest (3589 faces). The centralized "
        f"reference is {ref['name']}: {base:.2%} on PrivateTest. s per round: fit and aggregation without the "
        f"server's PublicTest pass; MB: protobuf size of every message a client sends and receives in a round "
        f"(SecAgg+ adds its key exchange and sends the masked vector as 64-bit integers). DP: client-level, "
        f"clip {args.dp_clip} on the weights' update and {args.dp_clip_stats} on the batch-norm statistics', "
        f"noise multiplier chosen for the epsilon, RDP accountant with Poisson sampling.", "",
        table(headers, rows), "",
        "Targets (issue 16):", *goals, "",
        "Accuracy per round and per client epoch: `federated_rounds.png`. Each run's folder (model, curves, "
        "confusion, rounds.json, traffic.jsonl) is under the work folder.", ""])


def save(results: list[dict], ref: dict, args: argparse.Namespace, cmdline: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "federated.json").write_text(json.dumps(results, indent=1))
    plot(results, ref, RESULTS / "federated_rounds.png")
    text = report(results, ref, args, cmdline)
    (RESULTS / "federated.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="compact_resnet", help="architecture (the default model's)")
    ap.add_argument("--net", default="{}", help="architecture options, JSON")
    ap.add_argument("--reference", type=Path, default=BENCH.parent / "models" / "fer_resnet.pt",
                    help="the centralized model of the same architecture (train_emotion)")
    ap.add_argument("--total", type=int, default=0, help="Training faces shared out (0 = all 28709)")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--secagg-max-weight", type=float, default=10000, help="at least the largest client's faces")
    ap.add_argument("--dp-clip", type=float, default=1.0)
    ap.add_argument("--dp-clip-stats", type=float, default=5.0)
    ap.add_argument("--dp-delta", type=float, default=1e-5)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=[], help="run names to run; the others are kept from "
                    "results/federated.json")
    ap.add_argument("--add", nargs="*", default=[], metavar="NAME=RUN_DIR", help="put finished run folders into "
                    "the table under these names (a run made by hand with the same settings)")
    ap.add_argument("--work", type=Path, default=BENCH.parent / "runs" / "bench_federated")
    ap.add_argument("--report-only", action="store_true", help="rewrite the table from results/federated.json")
    args = ap.parse_args()
    cmdline = " ".join(["python3 bench/bench_federated.py", *sys.argv[1:]])
    store = RESULTS / "federated.json"
    ref = reference(args.reference)
    previous = {r["name"]: r for r in json.loads(store.read_text())} if store.is_file() else {}
    for name, r in previous.items():  # recounted from the run folder where it is still there
        if Path(r.get("run_dir", "")).joinpath("rounds.json").is_file():
            previous[name] = collect(name, Path(r["run_dir"]), r.get("wall_seconds"))
    for item in args.add:
        name, run_dir = item.split("=", 1)
        previous[name] = collect(name, Path(run_dir))
    known = {x[0] for x in RUNS}

    def ordered(rows: dict) -> list:
        return [rows[n] for n, *_ in RUNS if n in rows] + [r for n, r in rows.items() if n not in known]

    if args.report_only or args.add and not args.only:
        print(save(ordered(previous), ref, args, cmdline))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    rows = dict(previous)  # a run killed half-way through the list loses none of the rows saved before
    for name, pname, strategy, flags, extra in RUNS:
        if args.only and name not in args.only:
            continue
        part = partition(args.work, pname, args)
        print(f"[bench_federated] {name} ...", file=sys.stderr, flush=True)
        rows[name] = run_one(args.work, name, part, strategy, flags, extra, args)
        print(f"[bench_federated] {name}: PrivateTest {rows[name]['private']['accuracy']:.4f}, "
              f"{rows[name]['wall_seconds'] / 60:.1f} min", file=sys.stderr, flush=True)
        save(ordered(rows), ref, args, cmdline)  # after every run: a long benchmark keeps what it measured
    print(save(ordered(rows), ref, args, cmdline))
    print(f"saved {RESULTS / 'federated.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
