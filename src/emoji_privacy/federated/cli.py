"""Command line: ``python -m emoji_privacy.federated {partition,simulate,centralized} --help``.

- ``partition``: FER2013 ``Training`` -> ``client_<i>/<class>/`` folders (IID or Dirichlet alpha);
- ``simulate``: a whole federation on this machine with Flower's simulation engine (Ray);
- ``centralized``: the baseline with the same model and local recipe on the pooled client folders (checkpointed
  every round; ``--resume RUN_DIR`` continues it, as for ``simulate``);
- ``deploy-local``: a real deployment on this machine (a SuperLink and one SuperNode per client
  folder as processes, ``flwr run config/flower``), with TLS and SuperNode authentication unless
  ``--insecure``; a fleet runs the same programs (docs/federated.md);
- ``credentials``: the files a fleet's TLS and SuperNode authentication need (a CA, the SuperLink's
  certificate, a key pair per robot).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ..config import key_value_pairs
from ..errors import ConfigError
from ..training.data import DataError, default_fer2013_path, load_fer2013

__all__ = ["main"]


def _run_config(items: list[str]) -> dict[str, Any]:
    return {k: v.strip("'\"") for k, v in key_value_pairs(items, "--run-config", "num-rounds=20").items()}


def _client_folders(partitions: Path | None) -> list[Path]:
    if partitions is None:
        raise ConfigError("--partitions is required: a folder of client_<i>/ folders (see the partition command)")
    folders = sorted((p for p in partitions.glob("client_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    if not folders:
        raise DataError(f"{partitions} holds no client_<i>/ folders; make them with "
                        f"`python -m emoji_privacy.federated partition --out {partitions}`")
    return folders


def cmd_partition(args: argparse.Namespace) -> int:
    from .partition import hold_out_public, partition_indices, write_partitions

    data = load_fer2013(args.data, progress=not args.quiet)
    x, y = data.split("Training")
    public, pool = hold_out_public(y, args.public, args.seed) if args.public else (None, None)
    parts = partition_indices(y, args.clients, args.alpha, args.total, args.seed, pool=pool)
    info = {"source": data.source, "split": "Training", "clients_requested": args.clients, "alpha": args.alpha,
            "total": args.total or int(len(y) - args.public), "seed": args.seed, "public": args.public}
    summary = write_partitions(x, y, parts, args.out, info, public=public)
    sizes = [c["faces"] for c in summary["clients"]]
    print(f"wrote {len(parts)} clients to {args.out}: {sum(sizes)} faces, {min(sizes)}-{max(sizes)} per client, "
          f"label skew (mean TV distance to the pooled mix) {summary['label_skew_tv']:.3f}"
          + (f"; {args.public} public faces for the server in {args.out / 'public'}" if args.public else ""))
    return 0


def _overrides(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """``base``, then ``--run-config`` pairs, then the ``--secagg`` and ``--dp`` switches."""
    rc = {**base, **_run_config(args.run_config)}
    if args.secagg:
        rc["secagg"] = True
    if args.dp:
        rc["dp"] = True
    return rc


def _config(args: argparse.Namespace, clients: int) -> Any:
    from .task import FedConfig

    if args.partitions is None:
        raise ConfigError(f"{args.command} needs --partitions (a folder of client_<i>/ folders)")
    cfg = FedConfig.from_run_config(_overrides(args, {"min-clients": clients, "name": args.name, "out": str(args.out),
                                                      "partitions": str(args.partitions.resolve())}))
    if not cfg.data:
        found = default_fer2013_path()
        if found is None:
            raise DataError("FER2013 not found for the server's evaluation: pass --run-config data=PATH or set "
                            "EMOJI_PRIVACY_DATA to a folder holding fer2013/")
        cfg.data = str(found)
    return cfg


def cmd_simulate(args: argparse.Namespace, command: str, run_dir: Path) -> int:
    # Ray rewrites this process's environment (PYTHONPATH with the source tree first, so a ROS node
    # started later would miss the generated emoji_privacy.msg): put it back when the run ends.
    env, path = dict(os.environ), list(sys.path)
    try:
        return _simulate(args, command, run_dir)
    finally:
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path


def _simulate(args: argparse.Namespace, command: str, run_dir: Path) -> int:
    from flwr.simulation import run_simulation

    from .client_app import make_client_app
    from .server_app import make_server_app

    folders = _client_folders(args.partitions)
    cfg = _config(args, len(folders))
    # the run folder holds the server's per-round checkpoint and the traffic log of every part of the run
    cfg.checkpoint = str(run_dir.resolve() / "server_state.pt")
    cfg.traffic_log = str(run_dir.resolve() / "traffic.jsonl")
    data = load_fer2013(cfg.data, progress=False)
    done: list[Path] = []
    server = make_server_app(cfg, data, on_done=done.append, command=command)
    cpus = args.cpus or os.cpu_count() or 1
    run_simulation(server_app=server, client_app=make_client_app(cfg), num_supernodes=len(folders),
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus, "include_dashboard": False,
                                                 "log_to_driver": False}})
    if not done:
        print("federated: error: the simulation ended without a model; see the Flower log above", file=sys.stderr)
        return 1
    print(f"saved {done[0]}")
    return 0


def cmd_centralized(args: argparse.Namespace, command: str, run_dir: Path) -> int:
    """The pooled baseline, one "round" per pass over the faces; checkpointed after every round into ``run_dir``
    like a simulation, so ``--resume`` continues it exactly (each round's optimizer and shuffling start afresh
    from the round's seed, as a robot's do)."""
    import numpy as np

    from .server_app import FederatedRun
    from .task import get_weights, load_client_data, local_train, round_lr, set_weights

    folders = _client_folders(args.partitions)
    cfg = _config(args, 1)
    cfg.checkpoint = str(run_dir.resolve() / "server_state.pt")
    if not any(a.startswith("threads=") for a in args.run_config):  # one process: every core, not one per robot
        cfg.threads = args.cpus or os.cpu_count() or 1
    data = load_fer2013(cfg.data, progress=False)
    run = FederatedRun(cfg, data)  # resumes from the checkpoint when there is one
    set_weights(run.model, run.global_weights)
    size = int(run.model.input_size)
    pooled = [load_client_data(f, size) for f in folders]
    x = np.concatenate([p[0] for p in pooled])
    y = np.concatenate([p[1] for p in pooled])
    if not run.done_rounds:
        run.evaluate(0, run.global_weights, {})
    for k in range(1, cfg.num_rounds - run.done_rounds + 1):  # numbered from 1 in this process, as Flower does
        epoch = k + run.done_rounds
        run.fit_config(k)
        m = local_train(run.model, x, y, cfg, lr=round_lr(cfg, epoch), seed=cfg.seed * 100_003 + epoch * 1009)
        run.fit_log.append(m)
        run.evaluate(k, get_weights(run.model), {})
    out = run.finish(command)
    print(f"saved {out}")
    return 0


def cmd_deploy_local(args: argparse.Namespace) -> int:
    from .deployment import LoopbackFederation

    folders = _client_folders(args.partitions)
    rc = _overrides(args, {"out": str(args.out.resolve()), "name": args.name})
    work = args.out.resolve() / f".deploy-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    with LoopbackFederation(folders, work, secure=not args.insecure) as fed:
        how = "--insecure" if args.insecure else "TLS, SuperNode authentication"
        print(f"SuperLink on 127.0.0.1:{fed.port} ({how}), {len(folders)} SuperNodes; logs in {work}",
              file=sys.stderr)
        out = fed.run(rc)
    print(f"saved {out}")
    return 0


def cmd_credentials(args: argparse.Namespace) -> int:
    from .credentials import write_credentials

    creds = write_credentials(args.out, args.host, args.nodes, args.days)
    if creds.ca_cert is not None:
        print(f"{creds.ca_cert}: the CA every robot and operator trusts (--root-certificates)")
        print(f"{creds.server_cert}, {creds.server_key}: the SuperLink's certificate and key for "
              f"{', '.join(args.host)} (--ssl-certfile, --ssl-keyfile; keep ca.key offline)")
    for name, (key, pub) in creds.node_keys.items():
        print(f"{key}: {name}'s secret (--auth-supernode-private-key, on {name} only); "
              f"register {pub} with `flwr supernode register {pub} <superlink>`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emoji_privacy.federated",
                                 description="Federated training of the emotion CNN with Flower.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("partition", help="split FER2013 Training into client folders")
    p.add_argument("--out", type=Path, required=True, help="folder for client_<i>/<class>/ folders")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--alpha", type=float, default=None, help="Dirichlet concentration (label skew); omit for IID")
    p.add_argument("--total", type=int, default=0, help="use this many Training faces (class-stratified); 0 = all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--public", type=int, default=0, metavar="N", help="hold out N Training faces (class-stratified) "
                   "as the server's public data in OUT/public/, given to no client (pretrain with `centralized "
                   "--partitions OUT/public`, then start the robots from it with -c init=MODEL.pt)")
    p.add_argument("--data", help="FER2013 folder, .tar.gz or fer2013.csv (default: ../shared/data/fer2013)")
    p.add_argument("--quiet", action="store_true")
    for name, text in (("simulate", "run a federation on this machine (Flower simulation engine)"),
                       ("centralized", "baseline: the same model and recipe on the pooled client folders"),
                       ("deploy-local", "a SuperLink and one SuperNode per client folder as processes, then flwr run")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--partitions", type=Path, help="folder of client_<i>/ folders (required)")
        s.add_argument("--name", default="centralized" if name == "centralized" else "federated")
        s.add_argument("--out", type=Path, default=Path("runs"), help="parent of the run folder")
        s.add_argument("--run-config", "-c", nargs="*", default=[], metavar="KEY=VALUE",
                       help="Flower run-config overrides, e.g. num-rounds=20 strategy=fedprox (see config/flower)")
        s.add_argument("--secagg", action="store_true", help="SecAgg+ secure aggregation")
        s.add_argument("--dp", action="store_true", help="client-side clipping + server noise (dp-noise, dp-clip)")
        s.add_argument("--cpus", type=int, default=0, help="cores for the simulation (default: all)")
        if name == "deploy-local":
            s.add_argument("--insecure", action="store_true", help="no TLS and no SuperNode authentication "
                           "(default: both, with credentials made in the run's work folder)")
        if name in ("simulate", "centralized"):
            s.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run after its last "
                           "round, with the arguments saved in RUN_DIR/run.json; give no other options")
    c = sub.add_parser("credentials", help="a CA, the SuperLink's TLS certificate and a key pair per robot")
    c.add_argument("--out", type=Path, required=True, help="folder for the files (never overwritten)")
    c.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="a DNS name or IP address the robots use to reach the SuperLink (repeat for several); "
                   "makes ca.crt/ca.key and server.pem/server.key")
    c.add_argument("--nodes", nargs="*", default=[], metavar="ROBOT", help="robot names: ROBOT.key and ROBOT.pub each")
    c.add_argument("--days", type=int, default=365, help="how long the certificates are valid")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ..training.cli import new_run_folder, saved_arguments

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    run_dir: Path | None = None
    try:
        if args.command in ("simulate", "centralized") and args.resume is not None:
            run_dir = args.resume
            extra = [a for a in argv if a not in (args.command, "--resume", str(run_dir))]
            if extra:
                raise ConfigError(f"--resume continues a run with its own saved arguments; drop {' '.join(extra)}")
            argv = saved_arguments(run_dir)
            args = build_parser().parse_args(argv)
        command = "python -m emoji_privacy.federated " + " ".join(shlex.quote(a) for a in argv)
        if args.command == "partition":
            return cmd_partition(args)
        if args.command in ("simulate", "centralized"):
            _client_folders(args.partitions)  # say what is wrong before making a run folder
            if run_dir is None:
                run_dir = new_run_folder(args.out, args.name, argv)
            run = cmd_simulate if args.command == "simulate" else cmd_centralized
            return run(args, command, run_dir)
        if args.command == "deploy-local":
            return cmd_deploy_local(args)
        return cmd_credentials(args)
    except ConfigError as e:  # DataError is a ConfigError
        print(f"federated: error: {e}", file=sys.stderr)
        return 2

