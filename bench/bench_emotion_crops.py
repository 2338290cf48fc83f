"""Emotion models on FER2013's own crops and on the pipeline's crops of the same faces, side by side.

The listener never sees a FER2013 crop: it cuts every face by its landmarks (training/crops.py gives every
FER2013 face that treatment, cached). This scores each model on both kinds of crop of PublicTest (where a run
selects) and PrivateTest (reported), and gives each model's change against the first one on the same
PrivateTest faces (+- one standard error of the paired difference). Use it to compare a model fine-tuned with
``train_emotion --crops aligned`` against the default and against the same fine-tuning on whole crops.

    python3 bench/bench_emotion_crops.py models/fer_resnet.pt runs/ft_aligned/ft_aligned.pt ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy.emotion.checkpoint import load_checkpoint  # noqa: E402
from emoji_privacy.training.core import predict_probs, resize_faces  # noqa: E402
from emoji_privacy.training.crops import pipeline_crops  # noqa: E402
from emoji_privacy.training.data import load_fer2013  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["models/fer_resnet.pt"], help="emotion .pt files (the first is "
                    "the reference of the paired changes)")
    ap.add_argument("--data", default=None, help="FER2013 (folder, .tar.gz or csv); default: the shared copy")
    args = ap.parse_args()
    whole = load_fer2013(args.data, progress=False)
    aligned = pipeline_crops(whole)
    rows, reference = [], None
    for path in args.models:
        ckpt = load_checkpoint(path)
        model = ckpt.model.eval()
        hp = ckpt.metadata.get("training", {}).get("hyperparameters", {})
        cells = []
        for data in (whole, aligned):
            for split in ("PublicTest", "PrivateTest"):  # each split predicted once; the last is aligned PrivateTest
                x, y = data.split(split)
                right = (predict_probs(model, resize_faces(x, int(model.input_size))).argmax(1) == y).astype(float)
                cells.append(f"{100 * right.mean():.2f}%")
        if reference is None:
            reference, change = right, "-"
        else:
            d = right - reference
            change = f"{100 * d.mean():+.2f} +- {100 * d.std(ddof=1) / np.sqrt(len(d)):.2f}"
        rows.append([Path(path).name, hp.get("crops", "whole"), Path(hp.get("init_from", "")).name or "-",
                     hp.get("epochs", "?"), *cells, change])
    notes = ("Accuracy over the 7 classes, higher is better; each model as its .pt holds it (the listener's "
             "weights). 'aligned' crops: every face upscaled 4x, found by the default detector, given its 68 "
             "landmarks and cut by align_face, as the pipeline cuts a camera face (training/crops.py). The "
             "paired change is on the aligned PrivateTest faces, against the first row. PublicTest is where "
             "each run chose its epoch (on the crops it trained on); PrivateTest is reported, never chosen on.")
    save("emotion_crops", "Emotion models on FER2013's crops and on the pipeline's crops", [table(
        ["model", "trained on crops", "started from", "epochs", "whole PublicTest", "whole PrivateTest",
         "aligned PublicTest", "aligned PrivateTest", "aligned PrivateTest, change against the first (points)"],
        rows), notes])


if __name__ == "__main__":
    main()
