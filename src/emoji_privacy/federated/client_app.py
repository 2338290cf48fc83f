"""The robot's side: train the received model on local face crops, send back weights only.

Data: ``node-config`` ``data-dir`` (a deployment SuperNode: ``--node-config "data-dir='/crops'"``)
or, in a simulation, ``<partitions>/client_<partition-id>``. SecAgg+ masking is a Flower mod and DP
clipping a step of ``fit``; both act only when the server asks for them, so one ClientApp serves every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from ..errors import ConfigError
from .task import (
    FedConfig,
    batchnorm_mask,
    clip_update,
    get_weights,
    load_client_data,
    local_train,
    new_model,
    set_weights,
    trainable_mask,
)

__all__ = ["EmotionClient", "make_client_app", "app"]

KEY_DP_CLIP_WEIGHTS = "dp_clip_weights"  # what the server's ClientLevelDP puts in the fit config
KEY_DP_CLIP_STATS = "dp_clip_stats"
FEDBN_STATE = "fedbn-local-batchnorm"  # this robot's own batch-norm arrays, kept in its node state


class EmotionClient(NumPyClient):
    """One robot: its crops, the shared model, a local training recipe."""

    def __init__(self, cfg: FedConfig, data_dir: Path, client_id: int, state: RecordDict | None = None):
        self.cfg = cfg
        self.client_id = client_id
        self.state = state  # the node's state across rounds (Flower's Context.state)
        self.model = new_model(cfg)
        self.x, self.y = load_client_data(data_dir, int(self.model.input_size))

    def _with_local_batchnorm(self, parameters: list[np.ndarray]) -> list[np.ndarray]:
        """FedBN: the global arrays, except this robot's own batch norm (weights, biases and running
        statistics) from its previous round: each robot's class mix and camera differ, and batch norm is
        where that difference lives. The first round takes the global ones."""
        if self.cfg.strategy != "fedbn" or self.state is None or FEDBN_STATE not in self.state:
            return parameters
        local = iter(self.state[FEDBN_STATE].to_numpy_ndarrays())
        return [next(local) if bn else p for p, bn in zip(parameters, batchnorm_mask(self.model), strict=True)]

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        set_weights(self.model, self._with_local_batchnorm(parameters))
        server_round = int(config.get("server_round", 1))
        t0 = time.perf_counter()
        metrics = local_train(self.model, self.x, self.y, self.cfg, lr=float(config.get("lr", self.cfg.lr)),
                              seed=self.cfg.seed * 100_003 + server_round * 1009 + self.client_id,
                              proximal_mu=float(config.get("proximal_mu", 0.0)))
        weights = get_weights(self.model)
        if self.cfg.strategy == "fedbn" and self.state is not None:  # kept as trained, before any clipping
            self.state[FEDBN_STATE] = ArrayRecord(numpy_ndarrays=[
                w for w, bn in zip(weights, batchnorm_mask(self.model), strict=True) if bn])
        examples = len(self.x)
        if KEY_DP_CLIP_WEIGHTS in config:  # client-level DP: bound what this robot can move the model by
            weights, metrics["update_norm_weights"], metrics["update_norm_stats"] = clip_update(
                weights, parameters, trainable_mask(self.model), float(config[KEY_DP_CLIP_WEIGHTS]),
                float(config[KEY_DP_CLIP_STATS]))
            examples = 1  # an unweighted mean: a robot's weight may not depend on its data
        metrics["update_norm"] = float(np.sqrt(sum(float(((w - p) ** 2).sum())
                                                   for w, p in zip(weights, parameters, strict=True))))
        metrics["fit_seconds"] = time.perf_counter() - t0
        return weights, examples, metrics


def _client_data_dir(cfg: FedConfig, context: Context) -> tuple[Path, int]:
    node = context.node_config
    if "data-dir" in node:
        return Path(str(node["data-dir"])), int(node.get("partition-id", context.node_id % 1_000_000))
    if "partition-id" in node:
        if not cfg.partitions:
            raise ConfigError("a simulated client needs run-config partitions=<folder of client_<i>/ folders>")
        pid = int(node["partition-id"])
        return Path(cfg.partitions) / f"client_{pid}", pid
    raise ConfigError("this SuperNode has no data: start it with --node-config \"data-dir='<folder of "
                      "<class>/ crops>'\"")


def _only_when_asked(mod: Callable, asked: Callable[[RecordDict], bool]) -> Callable:
    """Run a Flower mod only on messages whose content carries its configuration."""

    def wrapped(msg: Message, ctxt: Context, call_next: Callable) -> Message:
        return mod(msg, ctxt, call_next) if asked(msg.content) else call_next(msg, ctxt)

    wrapped.__name__ = f"optional_{getattr(mod, '__name__', 'mod')}"
    return wrapped


def _asks_secagg(content: RecordDict) -> bool:
    return RECORD_KEY_CONFIGS in content.config_records


def _wire_bytes(msg: Message) -> int:
    """Size of a message's content as Flower serializes it for the wire (protobuf)."""
    from flwr.common.serde import recorddict_to_proto

    return int(recorddict_to_proto(msg.content).ByteSize())


def _traffic_mod(log_path: Callable[[Context], str]) -> Callable:
    """Count the bytes of every message a client receives and sends (arrays and configs)."""

    def traffic(msg: Message, ctxt: Context, call_next: Callable) -> Message:
        path = log_path(ctxt)
        received = _wire_bytes(msg)
        reply = call_next(msg, ctxt)
        if path:
            sent = _wire_bytes(reply) if not reply.has_error() else 0
            row = {"node": int(ctxt.node_id), "round": msg.metadata.group_id, "type": msg.metadata.message_type,
                   "received": int(received), "sent": int(sent), "time": time.time()}
            with open(path, "a") as f:  # one short line per message: appends from clients do not interleave
                f.write(json.dumps(row) + "\n")
        return reply

    return traffic


def make_client_app(cfg: FedConfig | None = None) -> ClientApp:
    """The ClientApp; with ``cfg`` None the run config of each run decides (``flwr run``)."""

    def config_of(context: Context) -> FedConfig:
        return cfg if cfg is not None else FedConfig.from_run_config(dict(context.run_config))

    def client_fn(context: Context):
        c = config_of(context)
        data_dir, client_id = _client_data_dir(c, context)
        return EmotionClient(c, data_dir, client_id, context.state).to_client()

    mods = [_traffic_mod(lambda ctxt: config_of(ctxt).traffic_log),
            _only_when_asked(secaggplus_mod, _asks_secagg)]
    return ClientApp(client_fn=client_fn, mods=mods)


app = make_client_app()
