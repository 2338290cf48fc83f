"""Landmark accuracy and speed of every landmark backend on 300-W helen_test and afw, with faces from
the project's detector (emoji_privacy.evaluation.landmarks does the measuring). Also saves the CED plot
bench/results/landmarks_ced.png and checks the default backend against the targets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, save, table  # noqa: E402

from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.detection import load_face_detector  # noqa: E402
from emoji_privacy.errors import EmojiPrivacyError  # noqa: E402
from emoji_privacy.evaluation.landmarks import (  # noqa: E402
    Result,
    detect_faces,
    evaluate,
    failure_rate,
    report,
    save_ced_plot,
    single_thread,
)
from emoji_privacy.landmarks.align import LandmarkDetector, load_landmark_detector  # noqa: E402
from emoji_privacy.model_files import shared_dir  # noqa: E402

DEFAULT = "facemesh (default)"
VARIANTS: dict[str, Callable[[], LandmarkDetector]] = {
    "facemesh, nearest-vertex table": lambda: load_landmark_detector(
        "facemesh", num_threads=1, use_map=False, use_refiner=False),
    "facemesh, learned map only": lambda: load_landmark_detector("facemesh", num_threads=1, use_refiner=False),
    DEFAULT: lambda: load_landmark_detector("facemesh", num_threads=1),
    "fan": lambda: load_landmark_detector("fan"),
}
TARGETS = {"helen_test": 0.036, "afw": 0.048}  # mean inter-ocular NME of the default backend
TARGET_FAILURE, TARGET_MS = 0.01, 4.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="faces per set (0 = all)")
    args = ap.parse_args()
    base = shared_dir()
    if base is None:
        sys.exit("error: ../shared (or $EMOJI_PRIVACY_SHARED) is needed for the 300-W faces")
    single_thread()
    dc = PipelineConfig().detector
    detector = load_face_detector(dc.backend, score_threshold=dc.score_threshold, max_side=dc.max_side)
    built: dict[str, LandmarkDetector | str] = {}
    for label, make in VARIANTS.items():
        try:
            built[label] = make()
        except EmojiPrivacyError as e:
            built[label] = str(e)
    results: list[Result] = []
    for name in TARGETS:
        faces = detect_faces(base / "data" / "landmarks" / name, detector)
        if args.limit:
            faces = faces[: args.limit]
        for label, lmk in built.items():
            if isinstance(lmk, str):
                results.append(Result(label, name, missed=sum(not f.detected for f in faces),
                                      error=f"weights absent here ({lmk})"))
                continue
            res = evaluate(lmk, faces, name)
            res.backend = label
            results.append(res)
    ced = save_ced_plot({f"{r.backend}, {r.dataset}": r.nme for r in results if not r.error},
                        RESULTS / "landmarks_ced.png", "Cumulative error distribution, 300-W (YuNet boxes)")
    checks = []
    for r in results:
        if r.backend != DEFAULT:
            continue
        target = TARGETS[r.dataset]
        checks.append([r.dataset, f"NME io mean <= {100 * target:.1f}%", f"{100 * np.mean(r.nme):.2f}%",
                       "yes" if np.mean(r.nme) <= target else "**no**"])
        checks.append([r.dataset, f"failure@0.1 <= {100 * TARGET_FAILURE:.0f}%", f"{100 * failure_rate(r.nme):.2f}%",
                       "yes" if failure_rate(r.nme) <= TARGET_FAILURE else "**no**"])
        checks.append([r.dataset, f"ms/face on one core <= {TARGET_MS:g}", f"{np.mean(r.cpu_ms):.2f} (CPU)",
                       "yes" if np.mean(r.cpu_ms) <= TARGET_MS else "**no**"])
    save("landmarks", "Landmark accuracy on 300-W (helen_test, afw)", [
        report(results),
        f"CED plot: [{ced.name}]({ced.name}). Sets: helen_test (330 faces) and afw (337), never used for fitting; "
        "the learned parts of the facemesh backend were fitted on helen_train only (scripts/fit_facemesh68.py).",
        "### Default backend against the targets\n\n" + table(["set", "target", "measured", "met"], checks)])


if __name__ == "__main__":
    main()
