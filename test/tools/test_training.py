"""Training tool: FER2013 in both forms, learning on real faces, the run folder and the exported model."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest
import torch
from data_helpers import shared_path

from emoji_privacy import EMOTIONS
from emoji_privacy.emotion.classifiers import load_emotion_classifier
from emoji_privacy.errors import ConfigError, ModelFileError
from emoji_privacy.evaluation.cli import evaluate_emotion_main as evaluate_main
from emoji_privacy.training.cli import main as train_main
from emoji_privacy.training.core import TrainConfig, classification_report, evaluate_model, train
from emoji_privacy.training.data import SPLITS, DataError, load_fer2013, load_labelled_folder
from emoji_privacy.training.search import cross_validate

LEARN_CLASSES = ("happy", "surprise", "neutral")


@pytest.fixture(scope="module")
def fer():
    return load_fer2013(shared_path("data", "fer2013", "fer2013_images_train_test.tar.gz"), progress=False)


def _pick(fer, split: str, per_class: dict[str, int], seed: int = 0):
    x, y = fer.split(split)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == EMOTIONS.index(c)), n, replace=False)
                          for c, n in per_class.items()])
    return x[idx], y[idx]


@pytest.fixture(scope="module")
def small_folder(fer, tmp_path_factory):
    """A real FER2013 subset written in the image-folder layout (split in each file name)."""
    root = tmp_path_factory.mktemp("fer") / "fer2013_images"
    sizes = {"Training": 20, "PublicTest": 6, "PrivateTest": 6}
    for split, n in sizes.items():
        x, y = _pick(fer, split, {c: min(n, 50) for c in EMOTIONS})
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = root / ("train" if split == "Training" else "test") / EMOTIONS[label]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{split}_{i:05d}.png"), img)  # png: lossless, so pixels compare exactly
    return root


def test_folder_tar_and_csv_forms_agree(small_folder, tmp_path):
    a = load_fer2013(small_folder, progress=False)
    assert a.counts() == {"Training": [20] * 7, "PublicTest": [6] * 7, "PrivateTest": [6] * 7}
    tgz = tmp_path / "fer.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(small_folder, arcname="fer2013_images")
    b = load_fer2013(tgz, progress=False, cache=False)
    # the CSV form, as Kaggle ships it: emotion,pixels,Usage
    csv_path = tmp_path / "fer2013.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, label, split in zip(a.images, a.labels, a.splits, strict=True):
            w.writerow([int(label), " ".join(map(str, img.ravel())), SPLITS[split]])
    c = load_fer2013(csv_path, progress=False, cache=False)
    for other in (b, c):
        order_a = np.lexsort((a.labels, a.splits, a.images.reshape(len(a.images), -1).sum(1)))
        order_o = np.lexsort((other.labels, other.splits, other.images.reshape(len(other.images), -1).sum(1)))
        np.testing.assert_array_equal(a.images[order_a], other.images[order_o])
        np.testing.assert_array_equal(a.labels[order_a], other.labels[order_o])
        np.testing.assert_array_equal(a.splits[order_a], other.splits[order_o])


def test_bad_data_gives_clear_errors(small_folder, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fer2013(tmp_path / "nowhere")
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("label,pixels\n0,1 2 3\n")
    with pytest.raises(DataError, match=r"missing columns \['Usage', 'emotion'\]"):
        load_fer2013(bad_csv, cache=False)
    short = tmp_path / "short.csv"
    short.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"short\.csv:2: want 2304 pixels.*got 3 pixels"):
        load_fer2013(short, cache=False)
    truncated = tmp_path / "cut.tar.gz"
    with tarfile.open(tmp_path / "full.tar.gz", "w:gz") as tar:
        tar.add(small_folder, arcname="x")
    truncated.write_bytes((tmp_path / "full.tar.gz").read_bytes()[:3000])
    with pytest.raises(DataError, match="not a readable tar archive"):
        load_fer2013(truncated, cache=False, progress=False)
    plain = tmp_path / "robot_crops" / "happy"
    plain.mkdir(parents=True)
    cv2.imwrite(str(plain / "face1.jpg"), np.full((64, 64), 128, np.uint8))
    with pytest.raises(DataError, match="does not start with a split"):
        load_fer2013(plain.parent, cache=False, progress=False)
    crops = load_labelled_folder(plain.parent)
    assert crops.images.shape == (1, 48, 48) and crops.counts()["Training"][EMOTIONS.index("happy")] == 1
    (plain.parent / "smirk").mkdir()
    cv2.imwrite(str(plain.parent / "smirk" / "a.jpg"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match="'smirk' is not a FER2013 class"):
        load_labelled_folder(plain.parent)


def test_classification_report_by_hand():
    labels = np.array([0, 0, 3, 3, 3, 6])
    pred = np.array([0, 3, 3, 3, 6, 6])
    r = classification_report(labels, np.eye(7)[pred])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["angry"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert r["per_class"]["happy"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["happy"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["neutral"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 2 / 3) / 3)  # only classes present count
    assert r["confusion"][0][3] == 1 and r["confusion"][3][6] == 1


@pytest.mark.slow  # 10 s measured (idle 2-core machine, --durations)
@pytest.mark.parametrize("arch", ["compact_resnet", "paper42"])
def test_learns_real_faces_quickly(fer, arch):
    """A few hundred real faces, a few epochs: well above chance on held-out faces of the same classes."""
    tx, ty = _pick(fer, "Training", dict.fromkeys(LEARN_CLASSES, 150))
    vx, vy = _pick(fer, "PublicTest", dict.fromkeys(LEARN_CLASSES, 60))
    # light augmentation and a gentle rate: a few hundred faces cannot carry the full recipe's regularization
    cfg = TrainConfig(architecture=arch, epochs=8, batch_size=32, lr=0.02, seed=1, ema_decay=0.0, label_smoothing=0.0,
                      rotate_deg=5.0, scale=0.05, shift=0.05, brightness=0.1, contrast=0.1, erase_p=0.0)
    res = train(cfg, tx, ty, progress=False, log=lambda s: None)
    acc = evaluate_model(res.model, vx, vy)["accuracy"]
    # measured 0.60-0.66 over seeds 1-3 for both architectures; chance is 1/3
    assert acc > 0.5, f"{arch}: {acc:.3f} on held-out {LEARN_CLASSES} (chance 0.333)"


def test_run_folder_export_and_listener_load(small_folder, tmp_path, monkeypatch, capsys):
    import emoji_privacy.training.calibrate as calibrate
    import emoji_privacy.training.outputs as outputs

    passes = []  # predictions of both test splits (the metrics and the calibration share one)
    predict = calibrate.probs_on_test_splits
    for module in (calibrate, outputs):
        monkeypatch.setattr(module, "probs_on_test_splits", lambda *a: passes.append(1) or predict(*a))
    out = tmp_path / "runs"
    rc = train_main(["--data", str(small_folder), "--arch", "paper42", "--name", "tiny", "--epochs", "2",
                     "--batch-size", "16", "--out", str(out), "--quiet"])
    assert rc == 0
    (run,) = out.iterdir()
    for f in ("metrics.json", "curves.png", "confusion.png", "per_class.md", "tiny.pt", "tiny.onnx", "reliability.png"):
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    ckpt = torch.load(run / "tiny.pt", weights_only=True)  # no pickled code needed
    meta = ckpt["metadata"]
    assert meta["architecture"] == "paper42" and meta["input_size"] == 42 and meta["classes"] == list(EMOTIONS)
    assert meta["config"] == {"input_size": 42, "hidden": 512, "dropout": 0.25}  # every option, not just the given
    assert set(meta["metrics"]) >= {"PublicTest", "PrivateTest"} and meta["dataset"]["train_split"] == "Training"
    assert "--arch paper42" in meta["training"]["command"] and meta["code_version"]
    cal = meta["calibration"]  # confidence calibrated on PublicTest, measured on both test splits
    assert cal["fitted_on"] == "PublicTest" and cal["temperature"] > 0
    assert set(cal["ece"]) == {"PublicTest", "PrivateTest"}
    assert len(passes) == 1
    data = load_fer2013(small_folder, progress=False)
    clf = load_emotion_classifier("torch", str(run / "tiny.pt"))  # what the listener does
    for split in ("PublicTest", "PrivateTest"):  # the reported metrics are the saved model's
        x, y = data.split(split)
        assert meta["metrics"][split]["accuracy"] == pytest.approx(evaluate_model(clf.model, x, y)["accuracy"])
    faces = data.images[:4]
    crops = np.stack([cv2.resize(f, (42, 42), interpolation=cv2.INTER_AREA) for f in faces])
    p = clf.predict(crops)
    assert p.shape == (4, 7)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(run / "tiny.onnx"), providers=["CPUExecutionProvider"])
    x = ((crops.astype(np.float32) - 127.5) / 127.5)[:, None]
    np.testing.assert_allclose(sess.run(None, {"faces": x})[0], p, atol=1e-4)
    # metadata that does not match the weights or the project fails loudly
    ckpt["metadata"]["input_size"] = 48
    torch.save(ckpt, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="paper42 is defined for 42x42|input_size 48"):
        load_emotion_classifier("torch", str(tmp_path / "wrong.pt"))
    # the calibrate subcommand recalibrates a trained model in place, its ONNX twin with it
    onnx_before = (run / "tiny.onnx").stat().st_mtime_ns
    assert train_main(["calibrate", str(run / "tiny.pt"), "--data", str(small_folder), "--quiet",
                       "--figures", str(tmp_path)]) == 0
    assert "tiny.pt: temperature" in capsys.readouterr().out and (tmp_path / "tiny_reliability.png").is_file()
    assert torch.load(run / "tiny.pt", weights_only=True)["metadata"]["calibration"]["temperature"] == \
        pytest.approx(cal["temperature"]) and (run / "tiny.onnx").stat().st_mtime_ns != onnx_before
    assert train_main(["calibrate", str(run / "tiny.pt"), "--data", str(tmp_path / "none"), "--quiet"]) == 2
    assert "calibrate: error:" in capsys.readouterr().err


def test_bad_arguments_exit_2(small_folder, tmp_path, capsys):
    assert train_main(["--data", str(tmp_path / "none"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_main(["--data", str(small_folder), "--lr", "-1", "--quiet"]) == 2
    assert "lr > 0" in capsys.readouterr().err


@pytest.mark.slow  # 3.1 s measured (idle 2-core machine, --durations)
def test_cross_validation_reports_mean_and_spread(small_folder, tmp_path, capsys):
    rc = train_main(["--data", str(small_folder), "--arch", "paper42", "--cv", "3", "--search", "random",
                     "--trials", "2", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path), "--quiet",
                     "--final", "--final-epochs", "2"])
    assert rc == 0
    (run,) = tmp_path.glob("paper42-cv3-*")
    final = json.loads((run / "final" / "metrics.json").read_text())
    assert [h["epoch"] for h in final["history"]] == [1, 2]  # the final fit's own schedule
    assert train_main(["--data", str(small_folder), "--final-epochs", "2", "--quiet"]) == 2
    assert "--final-epochs N goes with --cv K --final" in capsys.readouterr().err
    rows = json.loads((run / "cv.json").read_text())
    assert len(rows) == 2 and all(len(r["fold_acc"]) == 3 for r in rows)
    for r in rows:
        assert r["acc_mean"] == pytest.approx(np.mean(r["fold_acc"]))
        assert r["acc_std"] == pytest.approx(np.std(r["fold_acc"], ddof=1))
    assert "± " in (run / "cv.md").read_text()


def fold_faults(fits: list[tuple[set[int], set[int]]], n: int) -> list[str]:
    """What is wrong with k-fold fits given as (trained-on ids, validated-on ids): empty when each fit's two
    sets are disjoint and cover all n, and the validated sets partition the n ids."""
    faults = [f"fit {i} trains on {len(tr & va)} of its validation faces" for i, (tr, va) in enumerate(fits) if tr & va]
    faults += [f"fit {i} leaves {n - len(tr | va)} faces out" for i, (tr, va) in enumerate(fits) if len(tr | va) != n]
    seen = [i for _, va in fits for i in va]
    if sorted(seen) != list(range(n)):
        faults.append(f"validation folds cover {len(set(seen))} of {n} faces, {len(seen) - len(set(seen))} twice")
    return faults


def test_cross_validation_folds_never_mix(small_folder, monkeypatch):
    """Spy on what each fit really trains on and is scored on: every face carries its index in two pixels."""
    import emoji_privacy.training.search as search

    _, y = load_fer2013(small_folder, progress=False).split("Training")
    n = len(y)
    x = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    ids = lambda images: {int(a) + 256 * int(b) for a, b in images[:, 0, :2]}  # noqa: E731
    trained, scored = [], []

    def spy_train(cfg, xs, *args, **kw):
        trained.append(ids(xs))
        return train(cfg, xs, *args, **kw)

    def spy_evaluate(model, xs, *args, **kw):
        scored.append(ids(xs))
        return evaluate_model(model, xs, *args, **kw)

    monkeypatch.setattr(search, "train", spy_train)
    monkeypatch.setattr(search, "evaluate_model", spy_evaluate)
    rows = cross_validate([TrainConfig(architecture="paper42", epochs=1, batch_size=16)], x, y, 4, progress=False)
    assert len(rows[0]["fold_acc"]) == 4 and len(trained) == len(scored) == 4
    assert fold_faults(list(zip(trained, scored, strict=True)), n) == []
    # the check fires on a search that trains on everything, or validates a face twice
    every = set(range(n))
    leaky = [(every, va) for va in scored]
    assert fold_faults(leaky, n) and "trains on" in fold_faults(leaky, n)[0]
    twice = [(trained[0], scored[0])] * 4
    assert fold_faults(twice, n)[-1].startswith("validation folds cover")


def test_evaluate_emotion_table(small_folder, capsys):
    rc = evaluate_main(["mini_xception", "fer_resnet.pt", "--split", "PublicTest",
                        "--data", str(small_folder), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| mini_xception |" in out and "| fer_resnet |" in out and "disgust recall" in out
    assert evaluate_main(["nothing.pt", "--data", str(small_folder), "--quiet"]) == 2


class _Killed(Exception):
    """Stands for the session's end killing a training run."""


def _kill_after(epoch: int):
    def log(message: str) -> None:
        if message.startswith(f"epoch={epoch} "):
            raise _Killed
    return log


def test_a_killed_run_resumes_exactly(fer, tmp_path):
    """Weights, optimizer, EMA, schedule, random state and best epoch all continue: the resumed
    result equals the uninterrupted one bit for bit."""
    tx, ty = _pick(fer, "Training", dict.fromkeys(LEARN_CLASSES, 40))
    vx, vy = _pick(fer, "PublicTest", dict.fromkeys(LEARN_CLASSES, 10))
    cfg = TrainConfig(architecture="paper42", net={"hidden": 64}, epochs=3, batch_size=16, lr=0.02, seed=3, threads=1)
    whole = train(cfg, tx, ty, vx, vy, progress=False, log=lambda s: None)
    state = tmp_path / "training_state.pt"
    with pytest.raises(_Killed):
        train(cfg, tx, ty, vx, vy, progress=False, log=_kill_after(2), checkpoint=state)
    partial = torch.load(state, weights_only=True)
    assert partial["epoch"] == 2
    resumed = train(cfg, tx, ty, vx, vy, progress=False, log=lambda s: None, checkpoint=state)
    assert resumed.best_epoch == whole.best_epoch
    for key in ("train_loss", "train_acc", "val_acc", "val_loss", "lr"):  # every epoch, the last one included
        assert [h[key] for h in resumed.history] == [h[key] for h in whole.history], key
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # the comparison can fail: resuming the weights alone (fresh optimizer and random state) ends elsewhere
    broken = dict(partial, optimizer=partial["optimizer"] | {"state": {}},
                  generator=torch.Generator().manual_seed(99).get_state())
    torch.save(broken, tmp_path / "broken.pt")
    drifted = train(cfg, tx, ty, vx, vy, progress=False, log=lambda s: None, checkpoint=tmp_path / "broken.pt")
    assert drifted.history[-1]["train_loss"] != whole.history[-1]["train_loss"]
    # another configuration or other data never continues someone else's checkpoint
    with pytest.raises(ConfigError, match="another configuration"):
        train(TrainConfig(**{**cfg.__dict__, "lr": 0.05}), tx, ty, vx, vy, progress=False, checkpoint=state)
    with pytest.raises(ConfigError, match="other data"):
        train(cfg, tx[1:], ty[1:], vx, vy, progress=False, checkpoint=state)


def test_cli_resume_continues_a_stopped_run_and_search(small_folder, tmp_path, monkeypatch, capsys):
    from emoji_privacy.training import core

    args = ["--data", str(small_folder), "--arch", "paper42", "--name", "tiny", "--epochs", "2", "--batch-size", "16",
            "--out", str(tmp_path / "runs"), "--quiet"]
    real_train = core.train

    def killed_train(*a, **kw):
        return real_train(*a, **{**kw, "log": _kill_after(1)})

    monkeypatch.setattr("emoji_privacy.training.cli.train", killed_train)
    with pytest.raises(_Killed):
        train_main(args)
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "training_state.pt").is_file() and not (run / "tiny.pt").exists()
    monkeypatch.setattr("emoji_privacy.training.cli.train", real_train)
    assert train_main(["--resume", str(run), "--epochs", "5"]) == 2
    assert "drop --epochs 5" in capsys.readouterr().err
    assert train_main(["--resume", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and (run / "tiny.pt").is_file()
    assert train_main(["--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    # a cross-validation search skips the fits it finished
    cv = ["--data", str(small_folder), "--arch", "paper42", "--cv", "2", "--epochs", "1", "--batch-size", "16",
          "--out", str(tmp_path / "cv"), "--quiet"]
    calls = []

    def second_fit_killed(*a, **kw):
        calls.append(1)
        return (real_train if len(calls) == 1 else killed_train)(*a, **kw)

    monkeypatch.setattr("emoji_privacy.training.search.train", second_fit_killed)
    with pytest.raises(_Killed):
        train_main(cv)
    (search,) = (tmp_path / "cv").iterdir()
    assert len((search / "folds.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr("emoji_privacy.training.search.train", real_train)
    assert train_main(["--resume", str(search)]) == 0
    rows = json.loads((search / "cv.json").read_text())
    assert len(rows[0]["fold_acc"]) == 2 and len((search / "folds.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow  # 4.6 s measured (idle 2-core machine, --durations)
def test_distillation_follows_the_teacher(fer, tmp_path):
    """A student with distill_weight 1 learns the teacher's answers, not the labels: a teacher that calls every
    face 'surprise' makes a student that does too (the companion, weight 0, follows the labels and does not).
    The teacher is read from a run's training_state.pt, as for a run that is still going."""
    from emoji_privacy.training.core import predict_probs, resize_faces

    x, y = fer.split("Training")
    x, y = x[:256], y[:256]
    surprise = EMOTIONS.index("surprise")
    quick = dict(architecture="paper42", epochs=2, batch_size=32, ema_decay=0.0, erase_p=0.0, threads=1)
    train(TrainConfig(**quick), x, np.full_like(y, surprise), progress=False,
          checkpoint=tmp_path / "training_state.pt")
    share = {}
    for weight in (1.0, 0.0):
        cfg = TrainConfig(**quick, distill_from=str(tmp_path / "training_state.pt"), distill_weight=weight, mixup=0.2)
        student = train(cfg, x, y, progress=False).model
        share[weight] = float((predict_probs(student, resize_faces(x, 42)).argmax(1) == surprise).mean())
    assert share[1.0] > 0.9 and share[0.0] < 0.5, share
    with pytest.raises(ConfigError, match="does not exist"):
        train(TrainConfig(**quick, distill_from=str(tmp_path / "missing.pt")), x, y, progress=False)


def test_device_choice():
    assert TrainConfig(device="auto").torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device must be"):
        TrainConfig(device="gpu").validate()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            TrainConfig(device="cuda").validate()


_IDLE_CPU = """
import os, sys, time
{imports}
import torch
torch.set_num_threads(2)
with torch.no_grad():
    torch.nn.Conv2d(32, 32, 3)(torch.randn(64, 32, 48, 48))  # wakes OpenMP's workers
c0 = time.process_time()
time.sleep(1.0)
print(os.environ.get("OMP_WAIT_POLICY"), round(time.process_time() - c0, 2))
"""


def _idle_cpu(imports: str, env_policy: str | None = None) -> tuple[str, float]:
    """(OMP_WAIT_POLICY after the imports, CPU seconds the process burns while it sleeps 1 s)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run([sys.executable, "-c", _IDLE_CPU.format(imports=imports)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[-2], float(out[-1])


@pytest.mark.slow  # 12 s measured (idle 2-core machine, --durations)
def test_the_library_leaves_openmp_workers_asleep_while_its_process_waits():
    """Importing the trainer, the federated server or the evaluation tool sets no wait policy: a process that
    evaluates and then waits (a federated server between rounds) and its children keep their cores free."""
    policy, idle = _idle_cpu("import emoji_privacy.training.core, emoji_privacy.federated.server_app, "
                             "emoji_privacy.evaluation.emotion")
    assert policy == "None" and idle < 0.3, (policy, idle)
    # the check fires when the policy leaks in: a spinning worker burns about a core while the process sleeps
    policy, idle = _idle_cpu("", env_policy="ACTIVE")
    assert policy == "ACTIVE" and idle > 0.5, (policy, idle)
    # the training command asks for it in its own process, before torch loads (and only then)
    policy, _ = _idle_cpu("from emoji_privacy.training.openmp import spin_openmp_workers\n"
                          "assert spin_openmp_workers()")
    assert policy == "ACTIVE"
    policy, _ = _idle_cpu("import torch\nfrom emoji_privacy.training.openmp import spin_openmp_workers\n"
                          "assert not spin_openmp_workers()")
    assert policy == "None"


def test_init_from_starts_the_fit_from_a_checkpoint(fer, tmp_path):
    """--init-from loads the checkpoint's weights before the first step: with a learning rate too small to move
    them, the fitted net is the checkpoint's net. A checkpoint of another net is refused by name."""
    x, y = fer.split("Training")
    x, y = x[:128], y[:128]
    quick = dict(architecture="paper42", epochs=1, batch_size=32, ema_decay=0.0, erase_p=0.0, threads=1)
    start = train(TrainConfig(**quick), x, y, progress=False, checkpoint=tmp_path / "training_state.pt").model
    tuned = train(TrainConfig(**quick, lr=1e-9, seed=1, init_from=str(tmp_path / "training_state.pt")), x, y,
                  progress=False).model
    fresh = train(TrainConfig(**quick, lr=1e-9, seed=1), x, y, progress=False).model
    name = next(k for k, v in start.state_dict().items() if v.dtype.is_floating_point and v.dim() == 4)
    w0, w1, w2 = (m.state_dict()[name] for m in (start, tuned, fresh))
    assert torch.allclose(w0, w1, atol=1e-5) and not torch.allclose(w0, w2, atol=1e-3)
    with pytest.raises(ConfigError, match="pass the checkpoint's own --arch"):
        train(TrainConfig(**{**quick, "architecture": "compact_resnet"}, init_from=str(tmp_path / "training_state.pt")),
              x, y, progress=False)
    with pytest.raises(ConfigError, match="init_from: .* does not exist"):
        train(TrainConfig(**quick, init_from=str(tmp_path / "missing.pt")), x, y, progress=False)
    with pytest.raises(ConfigError, match="crops must be whole or aligned"):
        TrainConfig(crops="centred").validate()


def test_pipeline_crops_frame_each_face_like_the_pipeline(small_folder, tmp_path, monkeypatch):
    """Every face is replaced by the pipeline's aligned crop of itself, labels, splits and order kept: the default
    classifier reads the crops about as well as the whole faces (shuffled crops would score near chance). The
    crops are cached: a second call does not run the detector, and a damaged cache file is rebuilt."""
    from emoji_privacy.training import crops

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = load_labelled_folder(small_folder / "test", split="PublicTest")  # 84 real faces, 12 per class
    aligned = crops.pipeline_crops(data, progress=False)
    assert aligned.images.shape == data.images.shape and aligned.images.dtype == np.uint8
    assert (aligned.labels == data.labels).all() and (aligned.splits == data.splits).all()
    assert "pipeline crops" in aligned.source
    classifier = load_emotion_classifier("torch")
    right = {name: float((classifier.predict(d.images).argmax(1) == d.labels).mean())
             for name, d in (("whole", data), ("aligned", aligned))}
    assert right["aligned"] > 0.45 and right["aligned"] > right["whole"] - 0.15, right
    assert not np.array_equal(aligned.images, data.images)  # reframed, not passed through

    def no_detector():
        raise AssertionError("the cached crops should have been used")

    monkeypatch.setattr(crops, "pipeline_tools", no_detector)
    again = crops.pipeline_crops(data, progress=False)
    assert np.array_equal(again.images, aligned.images)
    (cached,) = (tmp_path / "cache").rglob("fer2013-aligned-*.npz")
    cached.write_bytes(b"not an npz")
    with pytest.raises(AssertionError, match="cached crops"):  # rebuilt: the detector is asked for again
        crops.pipeline_crops(data, progress=False)
    assert not cached.exists()


@pytest.mark.slow  # 4.1 s measured (idle 2-core machine, --durations)
def test_cli_trains_on_pipeline_crops(small_folder, tmp_path, monkeypatch):
    """``--crops aligned`` trains, selects and reports on the pipeline's crops, and the model says so."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rc = train_main(["--data", str(small_folder), "--arch", "paper42", "--name", "tiny", "--epochs", "1",
                     "--batch-size", "16", "--crops", "aligned", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    (run,) = tmp_path.glob("tiny-*")
    meta = json.loads((run / "metrics.json").read_text())["metadata"]
    assert meta["training"]["hyperparameters"]["crops"] == "aligned"
    assert meta["dataset"]["source"].endswith("(pipeline crops)")
    assert list((tmp_path / "cache").rglob("fer2013-aligned-*.npz"))
