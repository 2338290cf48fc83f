"""The aggregator: strategy, SecAgg+ and DP switches, PublicTest each round, PrivateTest once, export.

Selection discipline matches the centralized trainer: the round kept is the one best on
PublicTest; PrivateTest is evaluated once on that model and only reported. The run folder is
the centralized trainer's (``metrics.json``, ``curves.png``, ``confusion.png``, ``<name>.pt``
loadable by the listener's ``torch`` emotion backend) plus ``rounds.json``, ``accuracy.png``
and ``traffic.json`` (bytes per client per round, when clients log them).
"""

from __future__ import annotations

import copy
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Context
from flwr.common import Metrics, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import Grid, LegacyContext, ServerConfig
from flwr.server.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAvg,
    FedProx,
    Strategy,
)
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import ServerApp

from ..atomic import atomic_write
from ..errors import ConfigError
from ..training.core import TrainResult, resize_faces
from ..training.data import FerData, load_fer2013
from ..training.outputs import export_folder, write_run
from .task import (
    FedConfig,
    add_prior_to_output,
    class_log_prior,
    evaluate_weights,
    frozen_mask,
    get_weights,
    load_initial_weights,
    new_model,
    round_lr,
    set_weights,
    trainable_mask,
    variance_mask,
)

__all__ = ["FederatedRun", "ServerMomentum", "ClientLevelDP", "dp_epsilon", "dp_releases", "make_server_app", "app"]

SERVER_STATE_FORMAT = 1


def dp_epsilon(noise_multiplier: float, rounds: int, delta: float, sampled: int = 0, population: int = 0,
               releases: int = 1) -> float:
    """User-level epsilon of ``rounds`` rounds (RDP accountant).

    Each round makes ``releases`` Gaussian releases of the same noise multiplier (the trained weights, and the
    batch-norm statistics under their own clipping norm: together one Gaussian mechanism with multiplier
    ``z / sqrt(releases)``). With ``sampled < population`` each round trains a sample of the clients, which
    amplifies privacy; it is accounted as Poisson sampling with rate ``sampled / population`` (the usual
    DP-FedAvg accounting; Flower draws a fixed-size sample). Otherwise every client takes part every round.
    """
    import dp_accounting

    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier / math.sqrt(releases))
    if 0 < sampled < population:
        event = dp_accounting.PoissonSampledDpEvent(sampled / population, event)
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(event, rounds)
    return float(acc.get_epsilon(delta))


def dp_releases(model: torch.nn.Module, train_layers: str) -> int:
    """Gaussian releases per round: one for the trained weights, one more when the robots also send batch-norm
    statistics (not with ``train-layers=head``, where batch norm stays as the server sent it)."""
    stats = [not t and not f for t, f in zip(trainable_mask(model), frozen_mask(model, train_layers), strict=True)]
    return 1 + any(stats)


def _weighted_mean(metrics: list[tuple[int, Metrics]]) -> Metrics:
    n = sum(k for k, _ in metrics)
    keys = set.intersection(*(set(m) for _, m in metrics)) if metrics else set()
    out: Metrics = {key: float(sum(k * float(m[key]) for k, m in metrics) / max(n, 1)) for key in sorted(keys)}
    if "fit_seconds" in keys:
        out["fit_seconds_max"] = max(float(m["fit_seconds"]) for _, m in metrics)
    return out


class ServerMomentum(FedAvg):
    """FedAvgM with the momentum on the trained weights only.

    Flower's FedAvgM gives every array momentum, batch-norm running statistics included. Those are not
    gradients' results but averages of what the robots saw: pushed past the average by momentum, a running
    variance overshoots and turns negative, and the model's outputs become NaN (measured by
    bench/bench_federated_batchnorm.py: negative after round 2; here it stays positive). Here the weighted
    mean of the robots' statistics is taken as is, and the pseudo-gradient (broadcast weights minus their
    mean) is measured from the weights the robots actually received this round. With momentum 0.9 a server learning
    rate of 0.1 keeps FedAvg's step size in the long run; 1.0 makes it ten times larger.
    """

    def __init__(self, *, server_learning_rate: float, server_momentum: float, trainable: list[bool],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server_learning_rate, self.server_momentum = server_learning_rate, server_momentum
        self.trainable = trainable
        self.momentum: list[np.ndarray] | None = None
        self.broadcast: list[np.ndarray] | None = None

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
        self.broadcast = parameters_to_ndarrays(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> tuple[Any, dict]:
        aggregated, metrics = super().aggregate_fit(server_round, results, failures)
        if aggregated is None or self.broadcast is None:
            return aggregated, metrics
        mean = parameters_to_ndarrays(aggregated)
        step = [b - m for b, m, t in zip(self.broadcast, mean, self.trainable, strict=True) if t]
        if self.momentum is None or self.server_momentum == 0:
            self.momentum = step
        else:
            self.momentum = [self.server_momentum * v + g for v, g in zip(self.momentum, step, strict=True)]
        velocity = iter(self.momentum)
        new = [b - self.server_learning_rate * next(velocity) if t else m
               for b, m, t in zip(self.broadcast, mean, self.trainable, strict=True)]
        return ndarrays_to_parameters([w.astype(np.float32) for w in new]), metrics


class ClientLevelDP(DifferentialPrivacyClientSideFixedClipping):
    """Client-level DP with two clipping norms: the trained weights' update and the batch-norm statistics'
    update are clipped apart by each robot (``client_app``) and noised apart here, each with standard
    deviation ``z * clip / sampled clients``.

    Why two: one local epoch moves the running statistics several times farther than the trained weights
    (bench/bench_federated_batchnorm.py), so under one norm the statistics took most of the clipping budget
    and the noise drowned the weights' update. The accountant counts
    the two releases of each round (``dp_epsilon(..., releases=2)``). Robots send an unweighted update.

    The noised running variances are raised to at least VARIANCE_FLOOR: noise could make them negative and
    batch norm's output NaN. Changing a released value is post-processing; the guarantee is unchanged.
    """

    VARIANCE_FLOOR = 1e-3

    def __init__(self, strategy: Strategy, *, noise_multiplier: float, clip_weights: float, clip_stats: float,
                 trainable: list[bool], num_sampled_clients: int, variances: list[bool] | None = None,
                 frozen: list[bool] | None = None) -> None:
        super().__init__(strategy, noise_multiplier=noise_multiplier, clipping_norm=clip_weights,
                         num_sampled_clients=num_sampled_clients)
        self.clip_stats, self.trainable = clip_stats, trainable
        self.variances = variances or [False] * len(trainable)
        # arrays no robot changes (train-layers=head): sent back as broadcast, never noised (no data in them)
        self.frozen = frozen or [False] * len(trainable)
        self.broadcast: list[np.ndarray] | None = None
        self.rng = np.random.default_rng()  # unseeded: noise nobody can predict

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
        from .client_app import KEY_DP_CLIP_STATS, KEY_DP_CLIP_WEIGHTS

        self.broadcast = parameters_to_ndarrays(parameters) if any(self.frozen) else None
        ins = self.strategy.configure_fit(server_round, parameters, client_manager)
        for _, fit_ins in ins:
            fit_ins.config.update({KEY_DP_CLIP_WEIGHTS: self.clipping_norm, KEY_DP_CLIP_STATS: self.clip_stats})
        return ins

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> tuple[Any, dict]:
        if failures:
            return None, {}
        aggregated, metrics = self.strategy.aggregate_fit(server_round, results, failures)
        if aggregated is None:
            return aggregated, metrics
        n = self.num_sampled_clients
        stds = [self.noise_multiplier * (self.clipping_norm if t else self.clip_stats) / n for t in self.trainable]
        # an array no robot changes is kept as sent (no noise drawn for it)
        keep = self.broadcast if self.broadcast is not None else [None] * len(stds)
        noised = [b if f and b is not None else a + self.rng.normal(0.0, sd, a.shape).astype(np.float32)
                  for a, b, sd, f in zip(parameters_to_ndarrays(aggregated), keep, stds, self.frozen, strict=True)]
        noised = [np.maximum(a, np.float32(self.VARIANCE_FLOOR)) if v else a
                  for a, v in zip(noised, self.variances, strict=True)]
        return ndarrays_to_parameters(noised), metrics


class FederatedRun:
    """State of one run on the server: data for evaluation, per-round log, the best round's weights."""

    def __init__(self, cfg: FedConfig, data: FerData | None = None):
        self.cfg = cfg
        self.data = data if data is not None else load_fer2013(cfg.data or None, progress=False)
        self.model = new_model(cfg)
        size = int(self.model.input_size)
        vx, self.val_y = self.data.split("PublicTest")
        if cfg.eval_limit and cfg.eval_limit < len(vx):  # a fixed random subset: the split is sorted by class
            keep = np.sort(np.random.default_rng(0).choice(len(vx), cfg.eval_limit, replace=False))
            vx, self.val_y = vx[keep], self.val_y[keep]
        self.val_x = resize_faces(vx, size)
        # logit-adjust: the robots fit prior-free logits; the class prior the model predicts with is the one of
        # the server's own evaluation split (no robot reveals its class counts)
        self.log_prior = class_log_prior(self.data.split("PublicTest")[1])
        self.rounds: list[dict[str, Any]] = []
        self.best: tuple[float, int, list[np.ndarray] | None] = (-1.0, 0, None)
        self.round_started: dict[int, float] = {}
        self.fit_log: list[Metrics] = []
        self.t0 = time.perf_counter()
        self.done_rounds = 0  # rounds finished before this process started (a resumed run)
        if cfg.init:  # the server's starting point, e.g. pretrained on its public faces (before a resume)
            load_initial_weights(self.model, cfg.init)
        self.global_weights = get_weights(self.model)
        self._strategy: Strategy | None = None
        self._momentum: list[np.ndarray] | None = None
        if cfg.checkpoint and Path(cfg.checkpoint).is_file():
            self._resume(Path(cfg.checkpoint))

    # --- checkpoint: after every round, so a stopped run continues where it was
    def _state_config(self) -> dict[str, Any]:
        # what decides the result; where files go may change between the parts of a run
        return {k: v for k, v in self.cfg.to_run_config().items()
                if k not in ("checkpoint", "out", "traffic-log", "export", "threads", "data", "partitions")}

    def _save_state(self, server_round: int, weights: list[np.ndarray]) -> None:
        momentum = getattr(self._inner_strategy(), "momentum", None)
        state = {"format": SERVER_STATE_FORMAT, "config": self._state_config(), "round": server_round,
                 "weights": [torch.from_numpy(np.ascontiguousarray(w)) for w in weights],
                 "momentum": None if momentum is None else [torch.from_numpy(np.ascontiguousarray(m))
                                                            for m in momentum],
                 "best_acc": self.best[0], "best_round": self.best[1],
                 "best_weights": None if self.best[2] is None else [torch.from_numpy(w) for w in self.best[2]],
                 "rounds": self.rounds, "fit_log": self.fit_log, "seconds": time.perf_counter() - self.t0}
        # atomic: a kill while writing leaves the previous round's state
        atomic_write(Path(self.cfg.checkpoint), lambda tmp: torch.save(state, tmp))

    def _resume(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # zip/pickle/EOF errors all mean the same thing here
            raise ConfigError(f"server checkpoint {path} is unreadable ({type(e).__name__}); delete it to start "
                              "the run over") from e
        saved = state.get("config") or {}
        # a key the run's code did not have yet had its default then (a new option is off by default)
        defaults = FedConfig().to_run_config()
        saved = {**{k: defaults[k] for k in self._state_config() if k not in saved}, **saved}
        if state.get("format") != SERVER_STATE_FORMAT or saved != self._state_config():
            raise ConfigError(f"server checkpoint {path} belongs to another run configuration; resume with the "
                              "run's own arguments (--resume RUN_DIR) or delete it to start over")
        self.done_rounds = int(state["round"])
        self.global_weights = [t.numpy() for t in state["weights"]]
        self._momentum = None if state["momentum"] is None else [t.numpy() for t in state["momentum"]]
        best = state["best_weights"]
        self.best = (float(state["best_acc"]), int(state["best_round"]),
                     None if best is None else [t.numpy() for t in best])
        self.rounds, self.fit_log = list(state["rounds"]), list(state["fit_log"])
        self.t0 = time.perf_counter() - float(state["seconds"])
        print(f"[federated] resumed from {path} after round {self.done_rounds}", file=sys.stderr, flush=True)

    def _load(self, weights: list[np.ndarray]) -> None:
        """The global weights into the server's model, as it is evaluated and exported."""
        set_weights(self.model, weights)
        if self.cfg.logit_adjust:
            add_prior_to_output(self.model, self.log_prior, self.cfg.logit_adjust)

    def _inner_strategy(self) -> Strategy | None:
        s = self._strategy
        return getattr(s, "strategy", s)  # inside the DP wrapper

    # --- strategy callbacks
    def fit_config(self, server_round: int) -> dict[str, Any]:
        server_round += self.done_rounds  # Flower counts the rounds of this process from 1
        self.round_started[server_round] = time.perf_counter()
        return {"server_round": server_round, "lr": round_lr(self.cfg, server_round)}

    def evaluate(self, server_round: int, weights: list[np.ndarray], _: dict) -> tuple[float, dict[str, Any]]:
        ended = time.perf_counter()
        if self.done_rounds and server_round == 0:  # the resumed model: evaluated and logged already
            last = self.rounds[-1] if self.rounds else {"val_loss": float("nan"), "val_acc": float("nan")}
            return last["val_loss"], {"accuracy": last["val_acc"]}
        server_round += self.done_rounds
        self._load(weights)
        loss, acc = evaluate_weights(self.model, self.val_x, self.val_y)
        row = {"round": server_round, "val_loss": loss, "val_acc": acc, "seconds": ended - self.t0,
               "max_abs_weight": float(max(np.abs(w).max() for w in weights))}
        if self.cfg.secagg and row["max_abs_weight"] > 0.9 * self.cfg.secagg_clip:
            print(f"[federated] warning: a weight reached {row['max_abs_weight']:.1f}, near SecAgg+'s quantization "
                  f"range +-{self.cfg.secagg_clip}; raise secagg-clip", file=sys.stderr, flush=True)
        if server_round in self.round_started:
            row["round_seconds"] = ended - self.round_started[server_round]
        self.rounds.append(row)
        if server_round > 0 and acc > self.best[0]:
            self.best = (acc, server_round, [w.copy() for w in weights])
        print(f"[federated] round {server_round}: PublicTest acc {acc:.4f} loss {loss:.4f}", file=sys.stderr,
              flush=True)
        if server_round > 0 and self.cfg.checkpoint:
            self._save_state(server_round, weights)
        return loss, {"accuracy": acc}

    # --- the run
    def strategy(self) -> Strategy:
        cfg = self.cfg
        common = dict(fraction_fit=cfg.fraction_fit, fraction_evaluate=0.0, min_fit_clients=cfg.sampled_clients,
                      min_available_clients=cfg.min_clients, evaluate_fn=self.evaluate,
                      on_fit_config_fn=self.fit_config, fit_metrics_aggregation_fn=self._fit_metrics_logged,
                      initial_parameters=ndarrays_to_parameters(self.global_weights))
        if cfg.strategy == "fedprox":
            strategy: Strategy = FedProx(proximal_mu=cfg.proximal_mu, **common)
        elif cfg.strategy == "fedavgm":
            strategy = ServerMomentum(server_learning_rate=cfg.server_lr, server_momentum=cfg.server_momentum,
                                      trainable=trainable_mask(self.model), **common)
            strategy.momentum = self._momentum
        else:  # fedavg, and fedbn: the server averages everything; each robot keeps its own batch norm
            strategy = FedAvg(**common)
        if cfg.dp:
            strategy = ClientLevelDP(strategy, noise_multiplier=cfg.dp_noise, clip_weights=cfg.dp_clip,
                                     clip_stats=cfg.dp_clip_stats, trainable=trainable_mask(self.model),
                                     num_sampled_clients=cfg.sampled_clients, variances=variance_mask(self.model),
                                     frozen=frozen_mask(self.model, cfg.train_layers))
        self._strategy = strategy
        return strategy

    def _fit_metrics_logged(self, metrics: list[tuple[int, Metrics]]) -> Metrics:
        agg = _weighted_mean(metrics)
        self.fit_log.append(agg)
        return agg

    def run(self, grid: Grid, context: Context) -> None:
        cfg = self.cfg
        fit_workflow = None
        if cfg.secagg:
            # Flower takes an int above 2 as a count and a float as a fraction of the sampled clients.
            shares: int | float = cfg.secagg_shares if cfg.secagg_shares > 2 else 1.0
            fit_workflow = SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=float(cfg.secagg_threshold),
                                              # under DP each robot's update counts once (weight 1)
                                              max_weight=1.0 if cfg.dp else cfg.secagg_max_weight,
                                              clipping_range=cfg.secagg_clip,
                                              quantization_range=cfg.secagg_quantization)
        left = cfg.num_rounds - self.done_rounds
        if left <= 0:  # a resumed run whose rounds were all done: only the run folder is left to write
            return
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=left), strategy=self.strategy())
        DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)

    def finish(self, command: str) -> Path:
        """Keep the best PublicTest round, evaluate PrivateTest once, write the run folder."""
        cfg = self.cfg
        acc, best_round, weights = self.best
        if weights is None:
            raise RuntimeError("no round finished: see the SuperLink/SuperNode logs above for the failure")
        self._load(weights)
        self.model.eval()
        history = []
        for i, r in enumerate(x for x in self.rounds if x["round"] > 0):
            fit = self.fit_log[i] if i < len(self.fit_log) else {}
            history.append({"epoch": r["round"], "train_loss": float(fit.get("train_loss", np.nan)),
                            "train_acc": float(fit.get("train_acc", np.nan)), "val_loss": r["val_loss"],
                            "val_acc": r["val_acc"], "seconds": r["seconds"],
                            "round_seconds": r.get("round_seconds", np.nan), "lr": round_lr(cfg, r["round"])})
        result = TrainResult(copy.deepcopy(self.model), cfg.train_config(), history, best_round, {},
                             time.perf_counter() - self.t0)
        fed = {"run_config": cfg.to_run_config(), "best_round": best_round, "rounds": self.rounds,
               "fit_metrics": self.fit_log}
        if cfg.dp:
            releases = dp_releases(self.model, cfg.train_layers)
            fed["dp"] = {"noise_multiplier": cfg.dp_noise, "clipping_norm": cfg.dp_clip, "delta": cfg.dp_delta,
                         "clipping_norm_stats": cfg.dp_clip_stats, "sampled_clients": cfg.sampled_clients,
                         "population": cfg.min_clients,
                         "epsilon": dp_epsilon(cfg.dp_noise, cfg.num_rounds, cfg.dp_delta, cfg.sampled_clients,
                                               cfg.min_clients, releases=releases),
                         "accounting": f"user-level, RDP, {releases} Gaussian release(s) per round (weights"
                                       f"{', batch-norm statistics' if releases == 2 else ''}), "
                                       + ("every client in every round" if cfg.sampled_clients >= cfg.min_clients
                                          else f"{cfg.sampled_clients} of {cfg.min_clients} clients per round, "
                                               "accounted as Poisson sampling")}
        traffic = traffic_summary(Path(cfg.traffic_log), cfg.num_rounds, cfg.secagg) if cfg.traffic_log else {}
        if traffic:
            fed["traffic"] = traffic
        # a checkpointed run writes beside its checkpoint (the folder --resume names)
        out_dir = Path(cfg.checkpoint).parent if cfg.checkpoint else \
            Path(cfg.out) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        write_run(result, self.data, out_dir, cfg.name, command, export_folder() if cfg.export else None,
                  extra_metadata={"federated": {k: v for k, v in fed.items() if k not in ("rounds", "fit_metrics")}})
        if traffic and Path(cfg.traffic_log).resolve() != (out_dir / "traffic.jsonl").resolve():
            (out_dir / "traffic.jsonl").write_bytes(Path(cfg.traffic_log).read_bytes())
        (out_dir / "rounds.json").write_text(json.dumps(fed, indent=1, default=float))
        _plot_accuracy(self.rounds, best_round, cfg, out_dir / "accuracy.png")
        print(f"[federated] kept round {best_round} (PublicTest {acc:.4f}); PrivateTest "
              f"{result.metrics['PrivateTest']['accuracy']:.4f}; saved {out_dir}", file=sys.stderr, flush=True)
        return out_dir


SECAGG_MESSAGES = 4
"""Messages a client answers per SecAgg+ round (setup, share keys, masked vector, unmask); 1 without it."""


def traffic_summary(path: Path, rounds: int, secagg: bool) -> dict[str, Any]:
    """Bytes and messages per participating client per round, from a run's ``traffic.jsonl``.

    A participation is one client in one round: rows are grouped by (node, round) where the client
    logged the round, else by each node's messages in runs of the protocol's count. Node ids are new
    in every process, so a resumed run's clients are counted by participation, not by node, and a
    participation cut short by a kill (fewer messages than the rest) is left out.
    """
    if not path.is_file():
        return {}
    per_node: dict[int, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        per_node.setdefault(int(row["node"]), []).append(row)
    k = SECAGG_MESSAGES if secagg else 1
    parts: dict[tuple[int, Any], list[int]] = {}
    for node, rows in per_node.items():
        rows.sort(key=lambda r: r.get("time", 0.0))
        for i, row in enumerate(rows):
            tot = parts.setdefault((node, row["round"] if "round" in row else i // k), [0, 0, 0])
            tot[0] += int(row["received"])
            tot[1] += int(row["sent"])
            tot[2] += 1
    if not parts:
        return {}
    counts = [v[2] for v in parts.values()]
    usual = max(set(counts), key=counts.count)
    whole = [v for v in parts.values() if v[2] == usual]
    per_round = len(whole) / max(rounds, 1)
    return {"client_rounds": len(whole), "clients_per_round": int(per_round) if per_round.is_integer() else per_round,
            "messages_per_client_per_round": usual,
            "bytes_received_per_client_per_round": float(np.mean([v[0] for v in whole])),
            "bytes_sent_per_client_per_round": float(np.mean([v[1] for v in whole]))}


def _plot_accuracy(rounds: list[dict[str, Any]], best_round: int, cfg: FedConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["round"] for r in rounds], [r["val_acc"] for r in rounds], marker="o", ms=3, label="PublicTest")
    ax.axvline(best_round, color="gray", ls="--", label=f"kept: round {best_round}")
    extras = [cfg.strategy] + (["SecAgg+"] if cfg.secagg else []) + ([f"DP z={cfg.dp_noise}"] if cfg.dp else [])
    ax.set_title(f"{cfg.name}: {cfg.architecture}, {' + '.join(extras)}", fontsize=9)
    ax.set_xlabel("round"), ax.set_ylabel("accuracy"), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_server_app(cfg: FedConfig | None = None, data: FerData | None = None,
                    on_done: Any = None, command: str = "") -> ServerApp:
    """The ServerApp; with ``cfg`` None each run's run config decides (``flwr run``)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        c = cfg if cfg is not None else FedConfig.from_run_config(dict(context.run_config))
        run = FederatedRun(c, data)
        run.run(grid, context)
        out = run.finish(command or "flwr run config/flower --run-config " + shlex.quote(
            " ".join(f"{k}={v!r}" for k, v in dict(context.run_config).items())))
        if on_done is not None:
            on_done(out)

    return server


app = make_server_app()
