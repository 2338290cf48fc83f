"""`python -m emoji_privacy.training` / `rosrun emoji_privacy train_emotion`: one run, or a cross-validated search;
``calibrate MODEL.pt...`` as the first argument recalibrates trained models instead (``calibrate_main``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import argparse_type, key_value_pairs
from ..emotion.calibration import CRITERIA, ECE_BINS
from ..emotion.nets import EMOTION_NETS
from ..errors import ConfigError, EmojiPrivacyError
from .calibrate import calibrate
from .core import TrainConfig, TrainResult, evaluate_model, train
from .crops import pipeline_crops
from .data import FerData, load_fer2013
from .outputs import export_folder, export_onnx, per_class_markdown, write_run
from .search import cross_validate, cv_markdown, search_trials


def _parse_net(items: list[str]) -> dict[str, Any]:
    net: dict[str, Any] = {}
    for key, value in key_value_pairs(items, "--net", "widths=[32,64,128,256]").items():
        try:
            net[key] = json.loads(value)
        except json.JSONDecodeError:
            net[key] = value
    return net


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="train_emotion", description="Train an emotion CNN on FER2013 (Training fits, PublicTest selects, "
        "PrivateTest is reported once).", epilog="train_emotion calibrate MODEL.pt... recalibrates trained models "
        "in place (calibrate --help).")
    ap.add_argument("--data", help="FER2013 image folder, its .tar.gz, or Kaggle fer2013.csv "
                    "(default: $EMOJI_PRIVACY_DATA/fer2013 or ../shared/data/fer2013)")
    ap.add_argument("--arch", default="compact_resnet", choices=sorted(EMOTION_NETS), help="architecture")
    ap.add_argument("--net", nargs="*", default=[], metavar="KEY=VALUE", help="architecture options (JSON values)")
    ap.add_argument("--name", help="model name (default: the architecture)")
    ap.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of the run folder")
    ap.add_argument("--export", action="store_true", help="also copy <name>.pt (and .onnx) into models/")
    ap.add_argument("--limit", type=int, default=0, help="use at most this many Training images (quick runs)")
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="k-fold cross-validation on Training instead "
                    "of one run; reports mean and spread per configuration")
    ap.add_argument("--search", default="none", choices=["none", "random", "grid"], help="with --cv: vary "
                    "hyper-parameters (see SEARCH_SPACE)")
    ap.add_argument("--trials", type=int, default=8, help="configurations to try (random; a subset for grid)")
    ap.add_argument("--final", action="store_true", help="with --cv: then train the best configuration on all "
                    "of Training, select the epoch on PublicTest and report PrivateTest")
    ap.add_argument("--final-epochs", type=int, default=0, metavar="N", help="with --final: the final fit's "
                    "epochs (default: --epochs; a search usually ranks on a shorter schedule than the final fit)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run (or --cv search) from "
                    "its last epoch, with the arguments saved in RUN_DIR/run.json; give no other options")
    for f in fields(TrainConfig):
        if f.name in ("architecture", "net"):
            continue
        flag = f"--{f.name.replace('_', '-')}"
        ap.add_argument(flag, type=argparse_type(f.default, flag), default=f.default,
                        metavar=type(f.default).__name__.upper(), help=f"(default {f.default})")
    return ap


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("architecture", "net")}
    cfg = TrainConfig(architecture=args.arch, net=_parse_net(args.net), **kw)
    cfg.validate()
    return cfg


def _subset(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
    return x[keep], y[keep]


def new_run_folder(out: Path, stem: str, argv: list[str]) -> Path:
    """``out/<stem>-<time>/`` with ``run.json`` (the arguments), so ``--resume`` can continue it."""
    run_dir = out / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "run.json").write_text(json.dumps({"argv": argv, "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    print(f"run folder {run_dir} (if stopped, continue with --resume {run_dir})", file=sys.stderr, flush=True)
    return run_dir


def saved_arguments(run_dir: Path) -> list[str]:
    """The arguments a run folder was started with (its ``run.json``)."""
    try:
        argv = json.loads((run_dir / "run.json").read_text())["argv"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--resume {run_dir}: not a run folder of this trainer (no readable run.json: "
                          f"{type(e).__name__}); pass the folder the trainer printed at its start") from None
    if "--resume" in argv:
        raise ConfigError(f"--resume {run_dir}: its run.json is damaged (it names --resume)")
    return [str(a) for a in argv]


def run_training(cfg: TrainConfig, data: FerData, name: str, run_dir: Path, export: bool, limit: int,
                 progress: bool, command: str) -> TrainResult:
    """Train (checkpointing every epoch into ``run_dir``), evaluate, and write the run folder."""
    tx, ty = _subset(*data.split("Training"), limit, cfg.seed)
    vx, vy = data.split("PublicTest")
    res = train(cfg, tx, ty, vx, vy, progress=progress, checkpoint=run_dir / "training_state.pt")
    for split in ("PublicTest", "PrivateTest"):  # PrivateTest: once, on the finished model, reported only
        x, y = data.split(split)
        res.metrics[f"{split}+flip"] = evaluate_model(res.model, x, y, tta=True)
    write_run(res, data, run_dir, name, command, export_folder() if export else None)
    return res


CALIBRATE_DESCRIPTION = """\
Fit a model's confidence calibration on PublicTest and report it on PrivateTest.

Every run folder gets this automatically; for a model trained before calibration existed::

    python -m emoji_privacy.training calibrate models/fer_resnet.pt

rewrites the checkpoint's metadata with ``calibration`` (temperature, ECE before and after) and
saves ``<name>_reliability.png`` beside it (or in ``--figures``); an ONNX twin beside the ``.pt`` is
re-exported with the temperature built in. The weights are unchanged.
"""


def calibrate_main(argv: list[str] | None = None) -> int:
    """``python -m emoji_privacy.training calibrate MODEL.pt...``: calibrate trained models in place."""
    from ..emotion.checkpoint import load_checkpoint, save_checkpoint

    ap = argparse.ArgumentParser(prog="python -m emoji_privacy.training calibrate", description=CALIBRATE_DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="project .pt checkpoints (rewritten in place)")
    ap.add_argument("--data", help="FER2013 folder, .tar.gz or fer2013.csv (default: the shared copy)")
    ap.add_argument("--figures", type=Path, help="folder for <name>_reliability.png (default: beside the model)")
    ap.add_argument("--criterion", choices=CRITERIA, default=CRITERIA[0],
                    help="what the temperature minimises on PublicTest (default: %(default)s)")
    ap.add_argument("--degraded", action="store_true", help="fit on PublicTest and its camera-degraded copies "
                    "(training/degrade.py), for a model meant for real light")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        data = load_fer2013(args.data, progress=not args.quiet)
        for path in args.models:
            ckpt = load_checkpoint(path)
            figure = (args.figures or path.parent) / f"{path.stem}_reliability.png"
            cal = calibrate(ckpt.model, data, figure, path.stem, args.criterion, degraded=args.degraded)
            save_checkpoint(ckpt.model, path, {**ckpt.metadata, "calibration": cal})
            if path.with_suffix(".onnx").exists():  # its ONNX twin gives the calibrated probabilities too
                export_onnx(ckpt.model, path.with_suffix(".onnx"), cal["temperature"])
            e = cal["ece"]["PrivateTest"]
            print(f"{path}: temperature {cal['temperature']:.3f}; PrivateTest ECE {e['raw']:.2%} -> "
                  f"{e['calibrated']:.2%} ({ECE_BINS} bins)")
    except EmojiPrivacyError as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:
        return calibrate_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        resume: Path | None = args.resume
        if resume is not None:
            extra = [a for a in argv if a not in ("--resume", str(args.resume), "--quiet")]
            if extra:
                raise ConfigError(f"--resume continues a run with its own saved arguments; drop {' '.join(extra)}")
            quiet = args.quiet
            argv = saved_arguments(resume)
            args = build_parser().parse_args(argv)
            args.quiet = args.quiet or quiet
        command = "train_emotion " + shlex.join(argv)
        cfg = _config_from_args(args)
        if args.final_epochs < 0 or (args.final_epochs and not (args.cv and args.final)):
            raise ConfigError("--final-epochs N goes with --cv K --final, and N >= 1")
        if args.export:
            export_folder()  # fail now, not after hours of training
        data = load_fer2013(args.data, progress=not args.quiet)
        if cfg.crops == "aligned":  # every split, so that PublicTest selects and PrivateTest reports on them too
            data = pipeline_crops(data, progress=not args.quiet)
        name = args.name or cfg.architecture
        if args.cv:
            out_dir = resume or new_run_folder(args.out, f"{name}-cv{args.cv}", argv)
            x, y = _subset(*data.split("Training"), args.limit, cfg.seed)
            configs = search_trials(cfg, args.search, args.trials, cfg.seed)
            rows = cross_validate(configs, x, y, args.cv, cfg.seed, progress=not args.quiet, work_dir=out_dir)
            text = cv_markdown(rows, args.cv)
            (out_dir / "cv.md").write_text(f"Command: `{command}`\n\n{text}")
            (out_dir / "cv.json").write_text(json.dumps(rows, indent=1))
            print(text)
            print(f"saved {out_dir}")
            if args.final:
                best = configs[max(rows, key=lambda r: r["acc_mean"])["trial"]]
                if args.final_epochs:
                    best = replace(best, epochs=args.final_epochs)
                (out_dir / "final").mkdir(exist_ok=True)
                res = run_training(best, data, name, out_dir / "final", args.export, args.limit, not args.quiet,
                                   command)
                print(per_class_markdown(res.metrics))
                print(f"saved {out_dir / 'final'}")
            return 0
        run_dir = resume or new_run_folder(args.out, name, argv)
        res = run_training(cfg, data, name, run_dir, args.export, args.limit, not args.quiet, command)
        print(per_class_markdown(res.metrics))
        print(f"saved {run_dir}")
        return 0
    except ConfigError as e:  # DataError is a ConfigError
        print(f"train_emotion: error: {e}", file=sys.stderr)
        return 2
