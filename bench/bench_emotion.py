"""Emotion models side by side on FER2013 PrivateTest (and PublicTest), through the listener's own
classifier code: accuracy, macro-F1, per-class recall, calibration error (ECE), parameters, ms per face
(batch 1, one CPU thread), then the issue's targets. PrivateTest is only reported here; nothing is chosen on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy import EMOTIONS  # noqa: E402
from emoji_privacy.errors import EmojiPrivacyError  # noqa: E402
from emoji_privacy.evaluation.emotion import compare, comparison_table  # noqa: E402

PAPER42_PUBLISHED = 0.678  # the emoji-replacement paper's accuracy for its 42x42 CNN
MODELS = ["mini_xception", "paper42.pt", "fer_federated.pt", "fer_resnet.pt"]  # bare names: found by the resolver


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="*", default=MODELS, help="backend names or .pt files")
    ap.add_argument("--data", help="FER2013 (default: the shared copy)")
    ap.add_argument("--save-as", default="emotion", metavar="NAME",
                    help="results/NAME.md and NAME.json (another name keeps an experiment beside the main table)")
    args = ap.parse_args()
    specs = list(args.models)
    try:
        private = compare(specs, "PrivateTest", args.data)
        public = compare(specs, "PublicTest", args.data)
    except EmojiPrivacyError as e:
        print(f"bench_emotion: {e}", file=sys.stderr)
        return 1
    sections = ["## FER2013 PrivateTest (reported only; n=3589)\n\nHigher is better, except ms/face.\n\n"
                + comparison_table(private),
                "## FER2013 PublicTest (the split models and epochs were selected on)\n\n" + comparison_table(public)]
    flips = []
    for r in private:
        m = (r["metadata"].get("metrics") or {}).get("PrivateTest+flip")
        if m:
            flips.append([r["name"], f"{m['accuracy']:.2%}", f"{m['macro_f1']:.3f}"])
    if flips:
        sections.append("With test-time mirroring (mean of the face and its mirror image; twice the cost per "
                        "face, so not what the listener runs), as measured by the trainer on PrivateTest:\n\n"
                        + table(["model", "accuracy", "macro-F1"], flips))
    by = {r["name"]: r for r in private}
    rows = []
    if "paper42" in by:
        acc = by["paper42"]["report"]["accuracy"]
        rows.append(["paper42 reproduction", f"paper: {PAPER42_PUBLISHED:.1%}",
                     f"{acc:.2%} ({(acc - PAPER42_PUBLISHED) * 100:+.1f} points)"])
    if "fer_resnet" in by:
        r = by["fer_resnet"]
        m = r["report"]
        rows += [["best model accuracy (single model, one view)", ">= 73%",
                  f"{m['accuracy']:.2%} ({'met' if m['accuracy'] >= 0.73 else 'not met'})"],
                 ["parameters", "<= 2 M", f"{r['parameters'] / 1e6:.2f} M "
                  f"({'met' if r['parameters'] <= 2e6 else 'not met'})"],
                 ["ms per face, one core, batch 1", "<= 2 ms", f"{r['ms_per_face']:.2f} ms "
                  f"({'met' if r['ms_per_face'] <= 2 else 'not met'})"],
                 ["calibration error (ECE, 15 bins)", "<= 3%", f"{m['ece']:.2%} "
                  f"({'met' if m['ece'] <= 0.03 else 'not met'})"],
                 ["macro-F1", "reported", f"{m['macro_f1']:.3f}"],
                 ["fear / disgust recall", "reported", f"{m['per_class']['fear']['recall']:.2f} / "
                  f"{m['per_class']['disgust']['recall']:.2f}"]]
    if rows:
        sections.append("## Against the targets\n\n" + table(["target", "wanted", "measured"], rows))
    save(args.save_as, "Emotion models on FER2013", sections)
    (Path(__file__).resolve().parent / "results" / f"{args.save_as}.json").write_text(json.dumps(
        {"classes": list(EMOTIONS), "PrivateTest": [{k: v for k, v in r.items() if k != "metadata"}
                                                    for r in private]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
