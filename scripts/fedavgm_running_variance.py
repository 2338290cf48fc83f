"""Why Flower's FedAvgM diverged: the smallest batch-norm running variance of the global model per round,
Flower's FedAvgM against the project's ServerMomentum, on three clients of a partition (no Ray, one process).

    PYTHONPATH=src python scripts/fedavgm_running_variance.py --partitions clients-a05 --clients 0 3 9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvgM

from emoji_privacy.federated.server_app import ServerMomentum
from emoji_privacy.federated.task import (
    FedConfig,
    evaluate_weights,
    get_weights,
    load_client_data,
    local_train,
    new_model,
    set_weights,
    trainable_mask,
)
from emoji_privacy.training.core import resize_faces
from emoji_privacy.training.data import load_fer2013


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=Path, required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[0, 3, 9])
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    cfg = FedConfig(architecture="compact_resnet", net="{}", batch_size=32, threads=2)
    clients = [load_client_data(args.partitions / f"client_{i}", 48) for i in args.clients]
    vx, vy = load_fer2013(progress=False).split("PublicTest")
    keep = np.random.default_rng(0).choice(len(vx), 800, replace=False)  # the split is sorted by class
    vx, vy = resize_faces(vx[keep], 48), vy[keep]
    model = new_model(cfg)
    names = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
    variances = [i for i, k in enumerate(names) if k.endswith("running_var")]
    print("| strategy | round | smallest running variance | PublicTest (800 faces) acc | loss |")
    print("|---|---|---|---|---|")
    for name in ("Flower FedAvgM", "ServerMomentum"):
        start = get_weights(new_model(cfg))
        common = dict(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=1, min_available_clients=1,
                      initial_parameters=ndarrays_to_parameters(start))
        strategy = FedAvgM(server_learning_rate=1.0, server_momentum=0.9, **common) if name.startswith("Flower") \
            else ServerMomentum(server_learning_rate=1.0, server_momentum=0.9, trainable=trainable_mask(model),
                                **common)
        global_w = start
        for r in range(1, args.rounds + 1):
            if isinstance(strategy, ServerMomentum):
                strategy.broadcast = global_w  # what configure_fit records in a real run
            results = []
            for i, (x, y) in enumerate(clients):
                m = new_model(cfg)
                set_weights(m, global_w)
                local_train(m, x, y, cfg, lr=0.05, seed=r * 10 + i)
                update = ndarrays_to_parameters(get_weights(m))
                results.append((None, FitRes(Status(Code.OK, ""), update, len(x), {})))
            global_w = parameters_to_ndarrays(strategy.aggregate_fit(r, results, [])[0])
            m = new_model(cfg)
            set_weights(m, global_w)
            loss, acc = evaluate_weights(m, vx, vy)
            smallest = min(float(global_w[i].min()) for i in variances)
            print(f"| {name} | {r} | {smallest:+.4f} | {acc:.3f} | {loss:.3f} |", flush=True)


if __name__ == "__main__":
    main()
