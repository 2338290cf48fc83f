"""Detection recall of each detector backend on 300-W faces (helen_test, afw): a face counts
as found when a detection overlaps its landmark box (IoU >= 0.3, or the landmark box centre
lies inside the detection and the detection is at most 4x its area)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy.detection import DETECTOR_BACKENDS, box_iou, load_face_detector  # noqa: E402
from emoji_privacy.landmarks.geometry import read_pts  # noqa: E402
from emoji_privacy.model_files import shared_dir  # noqa: E402


def found(gt: np.ndarray, boxes: np.ndarray) -> bool:
    if len(boxes) == 0:
        return False
    if box_iou(gt[None], boxes).max() >= 0.3:
        return True
    cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
    area = (gt[2] - gt[0]) * (gt[3] - gt[1])
    inside = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return bool((inside & (areas <= 4 * area)).any())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=0, help="images per set (0 = all)")
    args = ap.parse_args()
    base = shared_dir()
    if base is None:
        sys.exit("error: ../shared (or $EMOJI_PRIVACY_SHARED) is needed for the 300-W faces")
    rows = []
    for name in ("helen_test", "afw"):
        pts = sorted((base / "data" / "landmarks" / name).glob("*.pts"))
        if args.limit:
            pts = pts[: args.limit]
        items = []
        for p in pts:
            img = cv2.imread(str(p.with_suffix(".jpg")))
            if img is None:
                continue
            lm = read_pts(p)
            items.append((img, np.array([*lm.min(0), *lm.max(0)], np.float32)))
        for backend in sorted(DETECTOR_BACKENDS):
            det = load_face_detector(backend)
            hits, ms, px = 0, [], []
            for img, gt in items:
                t = time.perf_counter()
                boxes = det.detect(img).boxes
                ms.append((time.perf_counter() - t) * 1e3)
                px.append(img.shape[0] * img.shape[1])
                hits += found(gt, boxes)
            rows.append([name, backend, len(items), f"{100 * hits / len(items):.1f}%", f"{np.mean(ms):.1f}",
                         f"{np.sqrt(np.mean(px)):.0f}"])
    notes = ("Default thresholds (yunet 0.6, centerface 0.5), frames downscaled to max side 640 as in the pipeline. "
             "Ground truth: the box of the 68 annotated landmarks. ms per image on these crops "
             "(their mean side is in the last column).")
    save("detection", "Face detection recall on 300-W", [table(
        ["set", "detector", "faces", "recall", "ms/image", "mean image side px"], rows), notes])


if __name__ == "__main__":
    main()
