"""Which criterion fits the calibration temperature better: the Brier score or the negative log-likelihood.

The choice is made on PublicTest only: each criterion fits T on one random half of PublicTest and the
expected calibration error (15 bins) is measured on the other half, over many halvings. PrivateTest is
then reported once for both, with T fitted on all of PublicTest, as the run folders and model cards
report it. Nothing is chosen on PrivateTest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy.emotion.calibration import (  # noqa: E402
    CRITERIA,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from emoji_privacy.emotion.checkpoint import load_checkpoint  # noqa: E402
from emoji_privacy.errors import EmojiPrivacyError  # noqa: E402
from emoji_privacy.training.calibrate import probs_on_test_splits  # noqa: E402
from emoji_privacy.training.data import load_fer2013  # noqa: E402

MODELS = ["fer_resnet.pt", "fer_federated.pt", "paper42.pt"]  # bare names: found by the resolver


def held_out_ece(probs: np.ndarray, labels: np.ndarray, criterion: str, halvings: int, seed: int) -> np.ndarray:
    """ECE on the other half of PublicTest for each random halving (the same halvings for every criterion)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(halvings):
        order = rng.permutation(len(labels))
        fit, held = order[: len(labels) // 2], order[len(labels) // 2:]
        t = fit_temperature(probs[fit], labels[fit], criterion)
        out.append(expected_calibration_error(apply_temperature(probs[held], t), labels[held]))
    return np.asarray(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=MODELS, help="project .pt checkpoints")
    ap.add_argument("--data", help="FER2013 (default: the shared copy)")
    ap.add_argument("--halvings", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        data = load_fer2013(args.data, progress=False)
        rows = []
        for spec in args.models:
            ckpt = load_checkpoint(spec)  # the raw network: its stored temperature is not applied here
            probs, labels = probs_on_test_splits(ckpt.model, data)
            held = {c: held_out_ece(probs["PublicTest"], labels["PublicTest"], c, args.halvings, args.seed)
                    for c in CRITERIA}
            raw = expected_calibration_error(probs["PrivateTest"], labels["PrivateTest"])
            for c in CRITERIA:
                other = next(o for o in CRITERIA if o != c)
                t = fit_temperature(probs["PublicTest"], labels["PublicTest"], c)
                scaled = expected_calibration_error(apply_temperature(probs["PrivateTest"], t), labels["PrivateTest"])
                rows.append([Path(ckpt.path).stem, c, f"{held[c].mean():.2%} +- {held[c].std():.2%}",
                             f"{int((held[c] < held[other]).sum())} / {args.halvings}", f"{t:.3f}", f"{raw:.2%}",
                             f"{scaled:.2%}"])
                print(" | ".join(rows[-1]), flush=True)
    except EmojiPrivacyError as e:
        print(f"bench_calibration: {e}", file=sys.stderr)
        return 1
    notes = (f"ECE: expected calibration error of the top label, 15 equal-width bins; lower is better. 'held-out "
             f"half': T fitted on a random half of PublicTest (n={len(labels['PublicTest'])}), ECE on the other half, "
             f"mean +- sd over {args.halvings} halvings (seed {args.seed}; the same halvings for both criteria); a "
             "half is small, so its ECE runs higher than on a whole split. 'lower than the other in': how many "
             "halvings this criterion's ECE was the lower. The last columns fit T on all of PublicTest and report "
             "PrivateTest once, raw and scaled. The project's default criterion is the first in "
             f"emotion.calibration.CRITERIA: {CRITERIA[0]}.")
    save("calibration", "Calibration: the temperature's fitting criterion, chosen on PublicTest", [
        table(["model", "criterion", "held-out half ECE (PublicTest)", "lower than the other in", "T (PublicTest)",
               "PrivateTest ECE raw", "PrivateTest ECE scaled"], rows), notes])
    return 0


if __name__ == "__main__":
    sys.exit(main())
