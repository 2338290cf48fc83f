"""Federated training: the partitioner, the run config, DP accounting, the client's mods and a real
Flower deployment (a SuperLink and two SuperNodes as processes, TLS, SuperNode authentication and SecAgg+
on) on real FER2013 crops, and the credentials it uses."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from dataclasses import fields

import numpy as np
import pytest
import torch
from data_helpers import REPO, shared_path

from emoji_privacy import EMOTIONS
from emoji_privacy.errors import ConfigError
from emoji_privacy.federated.partition import hold_out_public, label_skew, partition_indices, write_partitions
from emoji_privacy.federated.task import FedConfig, get_weights, local_train, new_model, round_lr, set_weights
from emoji_privacy.training.data import DataError, load_fer2013, load_labelled_folder


def _labels(n: int = 7000, seed: int = 1) -> np.ndarray:
    # FER2013-like imbalance: happy common, disgust rare
    p = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], float)
    return np.random.default_rng(seed).choice(7, n, p=p / p.sum())


# --------------------------------------------------------------------------- partitioner


def test_iid_partition_sizes_and_reproducibility():
    y = _labels()
    parts = partition_indices(y, 10, None, total=6000, seed=3)
    assert [len(p) for p in parts] == [600] * 10
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == 6000  # disjoint
    again = partition_indices(y, 10, None, total=6000, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_indices(y, 10, None, total=6000, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))
    # the class-stratified draw keeps the class mix of the whole split (within one face per class)
    want = np.bincount(y, minlength=7) / len(y) * 6000
    assert np.abs(np.bincount(y[allidx], minlength=7) - want).max() <= 1.0
    assert sum(len(p) for p in partition_indices(y, 4)) == len(y)  # total=0: every face


def test_dirichlet_skew_grows_as_alpha_shrinks():
    y = _labels()
    iid = partition_indices(y, 10, None, total=6000, seed=0)
    a05 = partition_indices(y, 10, 0.5, total=6000, seed=0)
    a01 = partition_indices(y, 10, 0.1, total=6000, seed=0)
    for parts in (a05, a01):
        assert sum(len(p) for p in parts) == 6000 and len(np.unique(np.concatenate(parts))) == 6000
        assert min(len(p) for p in parts) >= 10
    s_iid, s05, s01 = label_skew(y, iid), label_skew(y, a05), label_skew(y, a01)
    assert s_iid < 0.06 < 0.25 < s05 < s01, (s_iid, s05, s01)
    assert all(np.array_equal(a, b) for a, b in zip(a05, partition_indices(y, 10, 0.5, total=6000, seed=0),
                                                       strict=True))


def test_label_skew_by_hand():
    y = np.array([0, 0, 1, 1])
    assert label_skew(y, [np.array([0, 2]), np.array([1, 3])]) == 0.0  # both halves match the pool
    assert label_skew(y, [np.array([0, 1]), np.array([2, 3])]) == pytest.approx(0.5)  # each holds one class


def test_partition_errors_are_clear():
    y = _labels(100)
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        partition_indices(y, 2, 0.0)
    with pytest.raises(ConfigError, match="asked for 500 faces"):
        partition_indices(y, 2, None, total=500)
    with pytest.raises(ConfigError, match="cannot give 20 clients"):
        partition_indices(y, 20, None)


def test_written_folders_read_back_as_a_robots_crops(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (60, 48, 48), dtype=np.uint8)
    labels = np.arange(60) % 7
    parts = partition_indices(labels, 3, None, seed=0)
    summary = write_partitions(images, labels, parts, tmp_path / "p", {"seed": 0})
    assert [c["faces"] for c in summary["clients"]] == [20, 20, 20]
    assert json.loads((tmp_path / "p" / "partition.json").read_text())["classes"] == list(EMOTIONS)
    got = load_labelled_folder(tmp_path / "p" / "client_1")
    assert len(got.labels) == 20
    # lossless: every face comes back bit-exact with its label
    by_pixels = {img.tobytes(): int(lab) for img, lab in zip(images[parts[1]], labels[parts[1]], strict=True)}
    assert all(by_pixels[img.tobytes()] == lab for img, lab in zip(got.images, got.labels, strict=True))


def test_public_faces_are_held_out_class_stratified_and_given_to_no_client(tmp_path):
    y = _labels()
    public, rest = hold_out_public(y, 700, seed=0)
    assert len(public) == 700 and len(rest) == len(y) - 700 and not set(public) & set(rest)
    share = np.bincount(y[public], minlength=7) / 700
    assert np.abs(share - np.bincount(y, minlength=7) / len(y)).max() < 0.01  # FER2013's class balance
    assert np.array_equal(public, hold_out_public(y, 700, seed=0)[0])
    parts = partition_indices(y, 10, 0.5, seed=0, pool=rest)
    given = np.concatenate(parts)
    assert sorted(given) == sorted(rest)  # every other face goes to exactly one client, no public one does
    assert len(partition_indices(y, 10, None, total=3000, seed=0, pool=rest)[0]) == 300
    with pytest.raises(ConfigError, match="--public must be between"):
        hold_out_public(y, len(y))
    images = np.random.default_rng(0).integers(0, 255, (60, 48, 48), dtype=np.uint8)
    labels = np.arange(60) % 7
    pub, others = hold_out_public(labels, 14, seed=0)
    summary = write_partitions(images, labels, partition_indices(labels, 2, None, pool=others), tmp_path / "p",
                               public=pub)
    assert summary["public_data"] == {"folder": "public/client_0", "faces": 14, "per_class": [2] * 7}
    assert len(load_labelled_folder(tmp_path / "p" / "public" / "client_0").labels) == 14
    assert sorted(p.name for p in (tmp_path / "p").glob("client_*")) == ["client_0", "client_1"]


# --------------------------------------------------------------------------- config, weights, local training


def test_flower_app_config_matches_fedconfig():
    conf = tomllib.loads((REPO / "config" / "flower" / "pyproject.toml").read_text())
    keys = set(conf["tool"]["flwr"]["app"]["config"])
    assert keys == {f.name.replace("_", "-") for f in fields(FedConfig)}
    cfg = FedConfig.from_run_config(conf["tool"]["flwr"]["app"]["config"])
    assert cfg == FedConfig()  # the app's defaults are the library's
    comps = conf["tool"]["flwr"]["app"]["components"]
    assert comps == {"serverapp": "emoji_privacy.federated.server_app:app",
                     "clientapp": "emoji_privacy.federated.client_app:app"}


def test_run_config_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown parameter 'num-round'"):
        FedConfig.from_run_config({"num-round": 3})
    with pytest.raises(ConfigError, match="parameter 'num-rounds' must be int"):
        FedConfig.from_run_config({"num-rounds": "many"})
    with pytest.raises(ConfigError, match="strategy must be one of"):
        FedConfig.from_run_config({"strategy": "fedsgd"})
    with pytest.raises(ConfigError, match="is not JSON"):
        FedConfig.from_run_config({"net": "{hidden: 3}"})
    assert FedConfig.from_run_config({"secagg": "true", "num_rounds": "3"}).secagg is True
    with pytest.raises(ConfigError, match="overflows SecAgg"):
        FedConfig.from_run_config({"secagg": True, "min-clients": 100})  # 100 x 2^26 >= 2^32
    with pytest.raises(ConfigError, match="dp with strategy fedavgm"):
        FedConfig.from_run_config({"dp": True, "strategy": "fedavgm"})


def test_round_lr_is_a_cosine_from_lr_to_lr_final():
    cfg = FedConfig(lr=0.1, lr_final=0.1, num_rounds=5)
    assert round_lr(cfg, 1) == pytest.approx(0.1)
    assert round_lr(cfg, 5) == pytest.approx(0.01)
    assert round_lr(cfg, 3) == pytest.approx(0.055)


def test_weights_round_trip_and_mismatch():
    cfg = FedConfig(net='{"hidden": 16}')
    a, b = new_model(cfg), new_model(cfg)
    assert all(np.array_equal(x, y) for x, y in zip(get_weights(a), get_weights(b), strict=True))  # same start
    w = [x + 1.0 for x in get_weights(a)]
    set_weights(b, w)
    assert all(np.array_equal(x, y) for x, y in zip(get_weights(b), w, strict=True))
    assert "num_batches_tracked" not in " ".join(k for k, v in a.state_dict().items() if v.dtype.is_floating_point)
    with pytest.raises(ConfigError, match="different architectures"):
        set_weights(new_model(FedConfig(net='{"hidden": 32}')), w)


def _fit_res(weights: list[np.ndarray], n: int):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(weights), n, {})


def test_server_momentum_moves_trained_weights_and_averages_batchnorm_statistics():
    """FedAvgM's momentum acts on the trained weights; a running variance is the robots' plain average
    (Flower's FedAvgM pushed it past the average too, and the global model diverged)."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

    from emoji_privacy.federated.server_app import ServerMomentum
    from emoji_privacy.federated.task import trainable_mask

    model = new_model(FedConfig(net='{"hidden": 16}'))
    mask = trainable_mask(model)
    names = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
    assert [n for n, t in zip(names, mask, strict=True) if not t] == \
        [n for n in names if n.endswith(("running_mean", "running_var"))]
    start = get_weights(model)
    strategy = ServerMomentum(server_learning_rate=1.0, server_momentum=0.9, trainable=mask,
                              initial_parameters=ndarrays_to_parameters(start))
    new = start
    for r in (1, 2):
        strategy.broadcast = new  # what configure_fit records: the weights the robots received
        a, b = [w + 1.0 for w in new], [w + 3.0 for w in new]  # robots moved by +1 and +3: mean +2
        agg, _ = strategy.aggregate_fit(r, [_fit_res(a, 10), _fit_res(b, 10)], [])
        old, new = new, parameters_to_ndarrays(agg)
        moved = 2.0 if r == 1 else 2.0 + 0.9 * 2.0  # momentum: 2, then 0.9 * 2 + 2
        for w0, w1, t in zip(old, new, mask, strict=True):
            np.testing.assert_allclose(w1 - w0, moved if t else 2.0, rtol=1e-5)
    # the companion: Flower's FedAvgM on the same rounds pushes the running statistics past the mean too
    from flwr.server.strategy import FedAvgM

    flower = FedAvgM(server_learning_rate=1.0, server_momentum=0.9, initial_parameters=ndarrays_to_parameters(start))
    new = start
    for r in (1, 2):
        agg, _ = flower.aggregate_fit(r, [_fit_res([w + 1.0 for w in new], 10), _fit_res([w + 3.0 for w in new], 10)],
                                      [])
        old, new = new, parameters_to_ndarrays(agg)
    stats = [i for i, t in enumerate(mask) if not t]
    assert all(np.allclose(new[i] - old[i], 3.8, rtol=1e-5) for i in stats), "Flower's momentum moves statistics"


def test_fedbn_robot_keeps_its_own_batchnorm(fer, tmp_path):
    from flwr.app import RecordDict

    from emoji_privacy.federated.client_app import EmotionClient
    from emoji_privacy.federated.task import batchnorm_mask

    x, y = fer.split("Training")
    write_partitions(x, y, partition_indices(y, 2, None, total=100, seed=0), tmp_path / "clients")
    cfg = FedConfig(net='{"hidden": 16}', strategy="fedbn", augment=False)
    state = RecordDict()
    robot = EmotionClient(cfg, tmp_path / "clients" / "client_0", 0, state)
    bn = batchnorm_mask(robot.model)
    assert any(bn) and not all(bn)
    global_w = get_weights(new_model(cfg))
    after1, _, _ = robot.fit(global_w, {"server_round": 1, "lr": 0.05})
    robot2 = EmotionClient(cfg, tmp_path / "clients" / "client_0", 0, state)  # Flower makes a new client per round
    started = robot2._with_local_batchnorm(global_w)
    for g, a, st, is_bn in zip(global_w, after1, started, bn, strict=True):
        np.testing.assert_array_equal(st, a if is_bn else g)
    plain = EmotionClient(FedConfig(net='{"hidden": 16}', augment=False), tmp_path / "clients" / "client_0", 0, state)
    assert all(np.array_equal(a, b) for a, b in zip(plain._with_local_batchnorm(global_w), global_w, strict=True))


def test_local_training_learns_and_fedprox_pulls_toward_the_global_model():
    rng = np.random.default_rng(0)
    y = np.arange(128) % 2
    x = np.where(y[:, None, None] == 1, 200, 40).astype(np.uint8) + rng.integers(0, 30, (128, 42, 42), dtype=np.uint8)
    cfg = FedConfig(net='{"hidden": 16}', local_epochs=3, batch_size=16, augment=False)
    start = new_model(cfg)
    plain, prox = new_model(cfg), new_model(cfg)
    m = local_train(plain, x, y, cfg, lr=0.05, seed=0)
    assert m["train_acc"] > 0.8 and m["steps"] == 8
    local_train(prox, x, y, cfg, lr=0.05, seed=0, proximal_mu=2.0)
    w0 = [p.detach() for p in start.parameters()]

    def drift(model):
        return math.sqrt(sum(float(((p.detach() - q) ** 2).sum()) for p, q in zip(model.parameters(), w0,
                                                                                  strict=True)))

    assert drift(prox) < drift(plain)


def test_head_only_training_changes_the_output_layer_and_nothing_else():
    """train-layers=head: the features and every batch-norm statistic come back exactly as sent (so under DP they
    need no noise); with train-layers=all, the same training moves them (the check can fail)."""
    from emoji_privacy.federated.task import frozen_mask, head_parameters

    rng = np.random.default_rng(0)
    y = np.arange(128) % 2
    x = np.where(y[:, None, None] == 1, 200, 40).astype(np.uint8) + rng.integers(0, 30, (128, 42, 42), dtype=np.uint8)
    for layers in ("head", "all"):
        cfg = FedConfig(net='{"hidden": 16}', local_epochs=2, batch_size=16, augment=False, train_layers=layers)
        model = new_model(cfg)
        before = get_weights(model)
        local_train(model, x, y, cfg, lr=0.05, seed=0)
        changed = [not np.array_equal(a, b) for a, b in zip(before, get_weights(model), strict=True)]
        frozen = frozen_mask(model, layers)
        if layers == "head":
            assert sum(not f for f in frozen) == 2 and len(head_parameters(model)) == 2  # weight and bias
            assert changed == [not f for f in frozen]
        else:
            assert not any(frozen) and all(changed)
        assert all(p.requires_grad for p in model.parameters())  # the next fit starts from a normal model
    with pytest.raises(ConfigError, match="train-layers must be one of"):
        FedConfig(train_layers="features").validate()


def test_init_starts_the_global_model_from_a_checkpoint(tmp_path):
    from emoji_privacy.emotion.checkpoint import save_checkpoint
    from emoji_privacy.federated.task import load_initial_weights

    cfg = FedConfig(net='{"hidden": 16}')
    trained = new_model(cfg)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    pt = save_checkpoint(trained, tmp_path / "public.pt", {
        "architecture": cfg.architecture, "config": trained.config, "input_size": 42, "classes": list(EMOTIONS),
        "normalization": {"mean": 127.5, "std": 127.5}})
    start = new_model(cfg)
    load_initial_weights(start, str(pt))
    assert all(np.array_equal(a, b) for a, b in zip(get_weights(start), get_weights(trained), strict=True))
    with pytest.raises(ConfigError, match="does not have this run's architecture"):
        load_initial_weights(new_model(FedConfig(net='{"hidden": 32}')), str(pt))


@pytest.mark.slow  # 3 s measured (idle 2-core machine, --durations)
def test_logit_adjustment_keeps_a_robots_absent_classes_alive(fer):
    """A robot that has only seen happy and neutral faces: plain local training teaches the shared model that
    the other five emotions are rare; with logit-adjust the robot's prior is in the loss, not in the model."""
    from emoji_privacy.training.core import predict_probs, resize_faces

    x, y = fer.split("Training")
    seen = [EMOTIONS.index("happy"), EMOTIONS.index("neutral")]
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 160, replace=False) for c in seen])
    tx, ty = fer.split("PublicTest")
    unseen = np.flatnonzero(~np.isin(ty, seen))[::10]
    mass = {}
    for tau in (0.0, 1.0):
        cfg = FedConfig(net='{"hidden": 64}', local_epochs=2, batch_size=32, augment=False, logit_adjust=tau)
        model = new_model(cfg)
        local_train(model, resize_faces(x[idx], 42), y[idx], cfg, lr=0.05, seed=0)
        p = predict_probs(model, resize_faces(tx[unseen], 42))
        mass[tau] = float(np.delete(p, seen, axis=1).sum(1).mean())  # probability left for the unseen emotions
    assert mass[1.0] > 2 * mass[0.0], mass


def test_server_predicts_with_its_own_prior_under_logit_adjustment(fer):
    from emoji_privacy.federated.server_app import FederatedRun
    from emoji_privacy.federated.task import add_prior_to_output, class_log_prior

    np.testing.assert_allclose(np.exp(class_log_prior(np.array([0, 0, 1, 3]))),
                               np.array([2, 1, 0.5, 1, 0.5, 0.5, 0.5]) / 6)
    cfg = FedConfig(net='{"hidden": 16}', logit_adjust=0.5, eval_limit=64)
    raw = new_model(cfg).eval()
    faces = torch.rand(5, 1, 42, 42) * 2 - 1
    shifted = new_model(cfg).eval()
    add_prior_to_output(shifted, class_log_prior(fer.split("PublicTest")[1]), 0.5)
    with torch.no_grad():
        want = raw(faces).numpy() * np.exp(0.5 * class_log_prior(fer.split("PublicTest")[1]))
        np.testing.assert_allclose(shifted(faces).numpy(), want / want.sum(1, keepdims=True), rtol=1e-5)
    run = FederatedRun(cfg, data=fer)
    run._load(get_weights(raw))
    np.testing.assert_allclose(get_weights(run.model)[-1], get_weights(shifted)[-1], rtol=1e-6)
    plain = FederatedRun(FedConfig(net='{"hidden": 16}', eval_limit=64), data=fer)
    plain._load(get_weights(raw))
    np.testing.assert_array_equal(get_weights(plain.model)[-1], get_weights(raw)[-1])


def test_a_server_state_from_before_an_option_existed_resumes(fer, tmp_path):
    from emoji_privacy.federated.server_app import FederatedRun

    ckpt = tmp_path / "server_state.pt"
    cfg = FedConfig(net='{"hidden": 16}', eval_limit=64, checkpoint=str(ckpt))
    run = FederatedRun(cfg, data=fer)
    run._save_state(3, run.global_weights)
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["logit-adjust"]  # as written before logit-adjust existed
    torch.save(state, ckpt)
    assert FederatedRun(cfg, data=fer).done_rounds == 3
    with pytest.raises(ConfigError, match="another run configuration"):
        FederatedRun(FedConfig(net='{"hidden": 16}', eval_limit=64, checkpoint=str(ckpt), logit_adjust=1.0), data=fer)


def test_traffic_is_counted_per_participation_across_a_resume(tmp_path):
    """A resumed run's clients come back with new node ids; a round cut short by the kill is left out."""
    from emoji_privacy.federated.server_app import traffic_summary

    rows = []

    def take_part(node: int, rnd: str | None, messages: int, t: float) -> None:
        for m in range(messages):
            row = {"node": node, "type": "train", "received": 100, "sent": 1000 if m == 2 else 10, "time": t + m}
            rows.append(row if rnd is None else {**row, "round": rnd})

    # process 1: rounds 1-2 with nodes 1 and 2, then killed in round 3 (node 1 answered 2 of 4 messages)
    for r in (1, 2):
        for node in (1, 2):
            take_part(node, str(r), 4, 10.0 * r)
    take_part(1, "3", 2, 30.0)
    # process 2 (--resume): rounds 3-4 again count from 1, with new node ids
    for r in (1, 2):
        for node in (7, 8):
            take_part(node, str(r), 4, 100.0 + 10 * r)
    log = tmp_path / "traffic.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    want = {"client_rounds": 8, "clients_per_round": 2, "messages_per_client_per_round": 4,
            "bytes_received_per_client_per_round": 400.0, "bytes_sent_per_client_per_round": 1030.0}
    assert traffic_summary(log, 4, secagg=True) == want
    # a log written before clients named the round: each node's messages in runs of the protocol's 4
    log.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "round"}) + "\n" for r in rows))
    assert traffic_summary(log, 4, secagg=True) == want
    # with the wrong protocol count every message is a participation: the figures change
    assert traffic_summary(log, 4, secagg=False)["bytes_sent_per_client_per_round"] != 1030.0
    assert traffic_summary(tmp_path / "absent.jsonl", 4, secagg=True) == {}


def test_dp_epsilon_follows_the_gaussian_rdp_bound():
    from emoji_privacy.federated.server_app import dp_epsilon

    eps = dp_epsilon(1.0, 20, 1e-3)
    # RDP of the Gaussian mechanism: T*a/(2 z^2) + log(1/delta)/(a-1), minimized over a; the accountant's
    # conversion is at least as tight as this classic one
    bound = min(20 * a / 2 + math.log(1e3) / (a - 1) for a in np.linspace(1.01, 200, 20000))
    assert 0 < eps <= bound + 1e-6 and eps > 0.5 * bound
    assert dp_epsilon(2.0, 20, 1e-3) < eps < dp_epsilon(1.0, 40, 1e-3)


def test_client_mods_run_only_when_the_server_asks():
    from flwr.app import ConfigRecord, RecordDict
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    from emoji_privacy.federated.client_app import KEY_DP_CLIP_WEIGHTS, _asks_secagg

    plain = RecordDict({"config": ConfigRecord({"lr": 0.1})})
    secagg = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({"stage": "setup"})})
    clipped = RecordDict({"config": ConfigRecord({KEY_DP_CLIP_WEIGHTS: 1.0})})
    assert not _asks_secagg(plain) and _asks_secagg(secagg) and not _asks_secagg(clipped)


def test_dp_clips_weights_and_batchnorm_statistics_apart():
    """Each group's update is clipped to its own norm: statistics that move far must not shrink the weights'
    update (under one norm they took most of the budget)."""
    from emoji_privacy.federated.task import clip_update, trainable_mask

    model = new_model(FedConfig(net='{"hidden": 16}'))
    ref, mask = get_weights(model), trainable_mask(model)
    moved = [r + (0.01 if t else 10.0) for r, t in zip(ref, mask, strict=True)]
    clipped, nw, ns = clip_update(moved, ref, mask, clip_weights=1e6, clip_stats=1.0)

    def norm(ws, group):
        return math.sqrt(sum(float(((w - r) ** 2).sum()) for w, r, t in zip(ws, ref, mask, strict=True) if t is group))

    assert nw == pytest.approx(norm(moved, True), rel=1e-6) and ns == pytest.approx(norm(moved, False), rel=1e-6)
    assert norm(clipped, True) == pytest.approx(nw, rel=1e-5), "the weights' update is untouched"
    assert norm(clipped, False) == pytest.approx(1.0, rel=1e-5), "the statistics' update is clipped to its norm"
    # the same update under ONE norm (what Flower's fixed clipping does): the weights would shrink ~1000x
    joint = 1.0 / math.sqrt(nw ** 2 + ns ** 2)
    assert norm(clipped, True) > 100 * joint * nw


def test_dp_server_noise_per_group_and_accounting():
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

    from emoji_privacy.federated.client_app import KEY_DP_CLIP_STATS, KEY_DP_CLIP_WEIGHTS
    from emoji_privacy.federated.server_app import ClientLevelDP, dp_epsilon

    zeros = [np.zeros(200_000, np.float32), np.zeros(200_000, np.float32)]
    dp = ClientLevelDP(FedAvg_for_test(), noise_multiplier=2.0, clip_weights=1.0, clip_stats=5.0,
                       trainable=[True, False], num_sampled_clients=10)
    agg, _ = dp.aggregate_fit(1, [_fit_res(zeros, 1)], [])
    w, st = parameters_to_ndarrays(agg)
    assert float(w.std()) == pytest.approx(2.0 * 1.0 / 10, rel=0.02)
    assert float(st.std()) == pytest.approx(2.0 * 5.0 / 10, rel=0.02)
    # running variances stay positive under noise (batch norm would answer NaN), other statistics keep theirs
    ones = [np.zeros(1000, np.float32), np.zeros(1000, np.float32), np.ones(1000, np.float32)]
    floored = ClientLevelDP(FedAvg_for_test(), noise_multiplier=2.0, clip_weights=1.0, clip_stats=5.0,
                            trainable=[True, False, False], num_sampled_clients=1, variances=[False, False, True])
    w, mean, var = parameters_to_ndarrays(floored.aggregate_fit(1, [_fit_res(ones, 1)], [])[0])
    assert var.min() == np.float32(ClientLevelDP.VARIANCE_FLOOR) and (var > 1).any() and mean.min() < 0
    from emoji_privacy.federated.task import variance_mask

    model = new_model(FedConfig(net='{"hidden": 16}'))
    keys = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
    assert [k for k, v in zip(keys, variance_mask(model), strict=True) if v] == \
        [k for k in keys if k.endswith("running_var")] != []

    class Manager:  # what configure_fit needs of Flower's client manager
        def num_available(self):
            return 1

        def sample(self, num_clients, min_num_clients):
            return [object()]

    (_, ins), = dp.configure_fit(1, ndarrays_to_parameters(zeros), Manager())
    assert ins.config[KEY_DP_CLIP_WEIGHTS] == 1.0 and ins.config[KEY_DP_CLIP_STATS] == 5.0
    # arrays no robot changes (train-layers=head) come back exactly as sent: no noise on them
    sent = [np.full(1000, 0.5, np.float32), np.full(1000, 0.25, np.float32)]
    head = ClientLevelDP(FedAvg_for_test(), noise_multiplier=2.0, clip_weights=1.0, clip_stats=5.0,
                         trainable=[True, True], num_sampled_clients=1, frozen=[False, True])
    head.configure_fit(1, ndarrays_to_parameters(sent), Manager())
    w, feat = parameters_to_ndarrays(head.aggregate_fit(1, [_fit_res(sent, 1)], [])[0])
    assert np.array_equal(feat, sent[1]) and float(w.std()) == pytest.approx(2.0, rel=0.1)
    from emoji_privacy.federated.server_app import dp_releases

    model = new_model(FedConfig(net='{"hidden": 16}'))
    assert dp_releases(model, "all") == 2 and dp_releases(model, "head") == 1
    # accounting: two releases of z per round are one of z / sqrt(2); sampling 10 of 100 amplifies
    assert dp_epsilon(1.0, 20, 1e-5, releases=2) == pytest.approx(dp_epsilon(1.0 / math.sqrt(2), 20, 1e-5))
    assert dp_epsilon(1.0, 20, 1e-5, sampled=10, population=100) < 0.5 * dp_epsilon(1.0, 20, 1e-5)
    assert dp_epsilon(1.0, 20, 1e-5, sampled=100, population=100) == dp_epsilon(1.0, 20, 1e-5)


def FedAvg_for_test():  # noqa: N802 - a plain Flower FedAvg, named for what it is here
    from flwr.server.strategy import FedAvg

    return FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=1, min_available_clients=1)


def test_client_without_data_says_how_to_give_it(tmp_path):
    from flwr.app import Context, RecordDict

    from emoji_privacy.federated.client_app import _client_data_dir
    from emoji_privacy.federated.task import load_client_data

    ctx = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(ConfigError, match="--node-config \"data-dir="):
        _client_data_dir(FedConfig(), ctx)
    with pytest.raises(DataError, match="does not exist; make client folders"):
        load_client_data(tmp_path / "nope", 42)


def test_cli_errors_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "emoji_privacy.federated", "simulate", "--partitions",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "holds no client_<i>/ folders" in out.stderr


# --------------------------------------------------------------------------- a real deployment


@pytest.fixture(scope="module")
def fer():
    return load_fer2013(shared_path("data", "fer2013", "fer2013_images_train_test.tar.gz"), progress=False)


@pytest.mark.slow  # 124 s measured (--durations=0, 2 cores)
@pytest.mark.timeout(900)
def test_deployment_superlink_two_supernodes_secagg(fer, tmp_path):
    """flower-superlink + 2 flower-supernode processes over loopback with the fleet's security (TLS under a
    fresh CA, SuperNode authentication), flwr run, SecAgg+ on, real crops; a robot whose key the operator
    did not register is refused."""
    from emoji_privacy.emotion.classifiers import load_emotion_classifier
    from emoji_privacy.federated.credentials import write_credentials
    from emoji_privacy.federated.deployment import LoopbackFederation

    x, y = fer.split("Training")
    parts = partition_indices(y, 2, None, total=400, seed=0)
    write_partitions(x, y, parts, tmp_path / "clients")
    dirs = [tmp_path / "clients" / "client_0", tmp_path / "clients" / "client_1"]
    with LoopbackFederation(dirs, tmp_path) as fed:
        assert "https://127.0.0.1" in (tmp_path / "superlink.log").read_text()  # TLS on the robots' port
        assert "insecure" not in (tmp_path / "flwr_home" / "config.toml").read_text()
        # robots the operator did not register are turned away: one with a key of its own, and one without a
        # key (the check that fires when the SuperLink runs without --enable-supernode-auth: it then joins)
        stranger = write_credentials(tmp_path / "stranger", nodes=["stranger"]).node_keys["stranger"][0]
        refused = {"stranger": fed.start_supernode(dirs[0], 8, stranger, log=tmp_path / "stranger.log"),
                   "keyless": fed.start_supernode(dirs[0], 9, None, log=tmp_path / "keyless.log")}
        for name, proc in refused.items():
            assert proc.wait(120) != 0, name
        assert "Failed to activate SuperNode" in (tmp_path / "stranger.log").read_text()
        assert "SuperNode authentication is enabled" in (tmp_path / "keyless.log").read_text()
        run_dir = fed.run({"num-rounds": 2, "secagg": True, "eval-limit": 400, "out": str(tmp_path / "runs"),
                           "name": "deploy", "traffic-log": str(tmp_path / "traffic.jsonl"), "lr": 0.02,
                           "augment": False, "data": str(shared_path("data", "fer2013",
                                                                     "fer2013_images_train_test.tar.gz"))},
                          timeout=800)
    rounds = json.loads((run_dir / "rounds.json").read_text())
    assert rounds["run_config"]["secagg"] is True
    fit = rounds["fit_metrics"]
    assert len(fit) == 2 and fit[1]["train_loss"] < fit[0]["train_loss"], fit  # the loss went down
    assert [r["round"] for r in rounds["rounds"]] == [0, 1, 2]
    assert rounds["traffic"]["clients_per_round"] == 2
    # SecAgg+: 4 messages per round (setup, share keys, masked vector, unmask), the masked vector as integers
    assert rounds["traffic"]["messages_per_client_per_round"] == 4
    n_params = sum(w.size for w in get_weights(new_model(FedConfig())))
    assert rounds["traffic"]["bytes_sent_per_client_per_round"] > 4 * n_params
    for f in ("deploy.pt", "accuracy.png", "curves.png", "confusion.png", "metrics.json"):
        assert (run_dir / f).is_file(), f
    meta = torch.load(run_dir / "deploy.pt", weights_only=True)["metadata"]
    assert meta["federated"]["run_config"]["num-rounds"] == 2 and meta["architecture"] == "paper42"
    clf = load_emotion_classifier("torch", str(run_dir / "deploy.pt"))  # the listener's emotion stage
    import cv2

    crops = np.stack([cv2.resize(f, (42, 42), interpolation=cv2.INTER_AREA) for f in x[:5]])
    p = clf.predict(crops)
    assert p.shape == (5, 7) and np.allclose(p.sum(1), 1, atol=1e-4)
    # the listener's classifier and the server's evaluation agree on the exported weights
    private = json.loads((run_dir / "metrics.json").read_text())["metadata"]["metrics"]["PrivateTest"]
    px, py = fer.split("PrivateTest")
    pc = np.stack([cv2.resize(f, (42, 42), interpolation=cv2.INTER_AREA) for f in px])
    assert float((clf.predict(pc).argmax(1) == py).mean()) == pytest.approx(private["accuracy"], abs=0.005)


@pytest.mark.slow  # 27 s measured for its predecessor test_simulation_fedavgm_with_dp_reports_epsilon (ca1d47c)
@pytest.mark.timeout(600)
def test_simulation_fedbn_with_dp_reports_epsilon(fer, tmp_path):
    """The simulate command (Flower's simulation engine): FedBN + client clipping + server noise."""
    import os

    from emoji_privacy.federated.cli import main as fed_main
    from emoji_privacy.federated.server_app import dp_epsilon

    x, y = fer.split("Training")
    write_partitions(x, y, partition_indices(y, 3, 0.5, total=300, seed=0), tmp_path / "clients")
    env = dict(os.environ)
    rc = fed_main(["simulate", "--partitions", str(tmp_path / "clients"), "--out", str(tmp_path / "runs"),
                   "--name", "sim", "--dp", "--cpus", "2", "--run-config", "num-rounds=2", "strategy=fedbn",
                   "dp-noise=0.5", "dp-clip=2.0", "eval-limit=200", "augment=false"])
    assert rc == 0
    assert dict(os.environ) == env  # Ray's PYTHONPATH edits would break ROS nodes started later
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name.startswith("sim-")]
    rounds = json.loads((run_dir / "rounds.json").read_text())
    assert rounds["run_config"]["strategy"] == "fedbn" and rounds["run_config"]["min-clients"] == 3
    assert rounds["dp"]["epsilon"] == pytest.approx(dp_epsilon(0.5, 2, 1e-3, releases=2))
    assert rounds["fit_metrics"][0]["update_norm_weights"] > 0 and rounds["fit_metrics"][0]["update_norm_stats"] > 0
    assert rounds["traffic"]["clients_per_round"] == 3 and rounds["traffic"]["messages_per_client_per_round"] == 1
    assert len(rounds["fit_metrics"]) == 2 and (run_dir / "sim.pt").is_file()


def stop_server_after_round_1(monkeypatch):
    """Make the server raise right after its round-1 checkpoint (a session that ends); returns the real evaluate."""
    from emoji_privacy.federated import server_app

    evaluate = server_app.FederatedRun.evaluate

    def stop_after_round_1(self, server_round, weights, config):
        result = evaluate(self, server_round, weights, config)
        if self.done_rounds + server_round == 1:
            raise RuntimeError("the session ended")
        return result

    monkeypatch.setattr(server_app.FederatedRun, "evaluate", stop_after_round_1)
    return evaluate


def run_whole_then_stopped_and_resumed(fer, tmp_path, monkeypatch, command, run_config):
    """Run `command` uninterrupted, then again stopped after round 1 and continued with --resume (which takes
    only the saved arguments); returns each run's (rounds.json, final weights) and the checkpoint the stopped run
    left."""
    from emoji_privacy.federated import server_app
    from emoji_privacy.federated.cli import main as fed_main

    x, y = fer.split("Training")
    write_partitions(x, y, partition_indices(y, 2, 0.5, total=200, seed=0), tmp_path / "clients")
    args = [command, "--partitions", str(tmp_path / "clients"), "--cpus", "2", "--run-config", "num-rounds=2",
            "eval-limit=300", "lr=0.02", *run_config]
    assert fed_main(args + ["--out", str(tmp_path / "whole"), "--name", "run"]) == 0
    (whole,) = (tmp_path / "whole").glob("run-*")

    evaluate = stop_server_after_round_1(monkeypatch)
    with pytest.raises(RuntimeError, match="the session ended"):  # Flower re-raises the server's error
        fed_main(args + ["--out", str(tmp_path / "parts"), "--name", "run"])
    (parts,) = (tmp_path / "parts").glob("run-*")
    stopped = torch.load(parts / "server_state.pt", weights_only=True)
    assert stopped["round"] == 1 and not (parts / "run.pt").exists()
    monkeypatch.setattr(server_app.FederatedRun, "evaluate", evaluate)
    assert fed_main([command, "--resume", str(parts), "--cpus", "2"]) == 2  # only the saved arguments
    assert fed_main([command, "--resume", str(parts)]) == 0
    whole_run, resumed_run = ((json.loads((d / "rounds.json").read_text()),
                               torch.load(d / "run.pt", weights_only=True)["state_dict"]) for d in (whole, parts))
    assert [r["round"] for r in resumed_run[0]["rounds"]] == [0, 1, 2]
    return whole_run, resumed_run, stopped


@pytest.mark.slow  # 59 s measured (idle 2-core machine, --durations)
@pytest.mark.timeout(900)
def test_simulation_resumes_after_its_last_round(fer, tmp_path, monkeypatch):
    """A server run stopped after round 1 continues with --resume from its checkpoint (global weights,
    FedAvgM's momentum, log) and ends where an uninterrupted run ends."""
    (a, wa), (b, wb), stopped = run_whole_then_stopped_and_resumed(
        fer, tmp_path, monkeypatch, "simulate", ["strategy=fedavgm", "augment=false"])
    assert stopped["momentum"] is not None
    for ra, rb in zip(a["rounds"], b["rounds"], strict=True):
        assert rb["val_acc"] == pytest.approx(ra["val_acc"], abs=0.004), (a["rounds"], b["rounds"])
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa) < 1e-3


@pytest.mark.slow  # 22 s measured (idle 2-core machine, --durations)
def test_centralized_baseline_resumes_exactly(fer, tmp_path, monkeypatch):
    """The pooled baseline checkpoints every round like a simulation: stopped after round 1 and continued with
    --resume, it ends with the weights of an uninterrupted run."""
    (a, wa), (b, wb), _ = run_whole_then_stopped_and_resumed(fer, tmp_path, monkeypatch, "centralized", [])
    assert len(b["fit_metrics"]) == 2
    # batch norm's batch counters are not part of the weights (a robot's restart at every round too) and do not
    # change what the net computes; everything else must be the uninterrupted run's
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if "num_batches" not in k) < 1e-5
    for ra, rb in zip(a["rounds"], b["rounds"], strict=True):
        assert rb["val_acc"] == pytest.approx(ra["val_acc"], abs=1e-6)


def test_dependencies_stay_ros_compatible():
    """flwr must not drag in numpy 2 (cv_bridge is built against 1.x) or a CUDA torch."""
    from importlib.metadata import requires, version

    import flwr

    major, minor = (int(v) for v in np.__version__.split(".")[:2])
    assert major == 1 and minor >= 26, np.__version__  # flwr needs >= 1.26, ROS needs < 2
    assert torch.version.cuda is None, torch.__version__
    assert flwr.__version__ == version("flwr")
    assert not [r for r in requires("flwr") or [] if r.startswith("torch")]  # flwr itself never pins a torch
    from cv_bridge import CvBridge  # the ROS side still imports against this numpy

    img = CvBridge().cv2_to_imgmsg(np.zeros((4, 4, 3), np.uint8), "bgr8")
    assert CvBridge().imgmsg_to_cv2(img).shape == (4, 4, 3)


# --------------------------------------------------------------------------- credentials for a fleet


def test_credentials_are_a_ca_a_server_certificate_and_robot_keys(tmp_path):
    """What `python -m emoji_privacy.federated credentials` writes verifies as TLS and Flower expect."""
    import datetime
    import os
    import stat

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from emoji_privacy.federated.cli import main as fed_main

    out = tmp_path / "creds"
    assert fed_main(["credentials", "--out", str(out), "--host", "aggregator.lan", "--host", "10.0.0.5",
                     "--nodes", "robot1", "robot2", "--days", "30"]) == 0
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    other_ca = x509.load_pem_x509_certificate(_other_ca(tmp_path).read_bytes())
    with pytest.raises(Exception):  # noqa: B017 - the check can fail: another CA's signature does not verify
        cert.verify_directly_issued_by(other_ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["aggregator.lan"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=30)
    key = serialization.load_pem_private_key((out / "server.key").read_bytes(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    for name in ("robot1", "robot2"):  # the formats flower-supernode and `flwr supernode register` load
        priv = serialization.load_ssh_private_key((out / f"{name}.key").read_bytes(), None)
        pub = serialization.load_ssh_public_key((out / f"{name}.pub").read_bytes())
        assert priv.public_key().public_numbers() == pub.public_numbers()
    for secret in ("ca.key", "server.key", "robot1.key", "robot2.key"):
        assert stat.S_IMODE(os.stat(out / secret).st_mode) == 0o600, secret
    assert stat.S_IMODE(os.stat(out / "robot1.pub").st_mode) & 0o044  # public keys are for sharing


def _other_ca(tmp_path):
    from emoji_privacy.federated.credentials import write_credentials

    return write_credentials(tmp_path / "other", hosts=["aggregator.lan"]).ca_cert


def test_credentials_are_never_overwritten_and_bad_names_are_refused(tmp_path, capsys):
    from emoji_privacy.federated.cli import main as fed_main

    out = tmp_path / "creds"
    assert fed_main(["credentials", "--out", str(out), "--host", "localhost", "--nodes", "robot1"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for args, says in ((["--host", "localhost"], "already holds ca.crt"),
                       (["--nodes", "robot1"], "already holds robot1.key"),
                       (["--nodes", "../escape"], "not usable as file names"),
                       (["--nodes", "r2", "r2"], "repeat"),
                       (["--host", "not a host"], "neither an IP address nor a DNS name"),
                       (["--days", "0", "--nodes", "r3"], "--days must be >= 1"),
                       ([], "nothing to make")):
        assert fed_main(["credentials", "--out", str(out), *args]) == 2, args
        assert says in capsys.readouterr().err, args
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, nothing replaced
    assert fed_main(["credentials", "--out", str(out), "--nodes", "robot9"]) == 0  # a robot joins later
    assert (out / "robot9.pub").is_file() and (out / "ca.crt").read_bytes() == before["ca.crt"]
