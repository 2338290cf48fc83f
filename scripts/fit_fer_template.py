#!/usr/bin/env python3
"""Fit the FER2013 framing template used by landmarks.align_face.

The emotion CNN was trained on FER2013 crops, so faces must reach it framed the same way. This runs
the facemesh backend on FER2013 *Training* images (48x48 upscaled to 192, box = whole image), keeps
faces FaceMesh is confident about, and stores the median position, in 0..1 image coordinates, of the
template points (eye centers, nose tip, mouth corners, chin) in models/fer_template.npz.

    PYTHONPATH=src .venv/bin/python scripts/fit_fer_template.py [--n 3000]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from emoji_privacy.landmarks.facemesh import FaceMeshLandmarks
from emoji_privacy.landmarks.geometry import template_points
from emoji_privacy.model_files import REPO_ROOT, shared_dir

UPSCALE = 192


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="number of Training images to use")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "fer_template.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sd = shared_dir()
    tar_path = None if sd is None else sd / "data" / "fer2013" / "fer2013_images_train_test.tar.gz"
    if tar_path is None or not tar_path.is_file():
        print("FER2013 archive not found in the shared data folder", file=sys.stderr)
        return 1
    fm = FaceMeshLandmarks()
    box = np.array([[0, 0, UPSCALE, UPSCALE]], np.float32)
    rng = np.random.default_rng(args.seed)
    with tarfile.open(tar_path, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/train/" in m.name
                   and Path(m.name).name.startswith("Training_")]
        chosen = sorted(rng.choice(len(members), size=min(args.n, len(members)), replace=False))
        pts, kept = [], 0
        for i in chosen:
            data = tar.extractfile(members[i]).read()
            gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                continue
            big = cv2.resize(gray, (UPSCALE, UPSCALE), interpolation=cv2.INTER_CUBIC)
            bgr = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
            lm, score = fm.detect_scored(bgr, box)
            if score[0] < 0.0:  # FaceMesh face flag (logit): not confident this is a face
                continue
            pts.append((template_points(lm[0]) + 0.5) / UPSCALE)
            kept += 1
    pts = np.array(pts)
    med = np.median(pts, axis=0).astype(np.float32)
    spread = np.median(np.abs(pts - med), axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, points=med, mad=spread.astype(np.float32), n=kept,
             names=np.array(["right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left", "chin"]))
    print(f"wrote {args.out} from {kept}/{len(chosen)} FER2013 Training images")
    for name, p, s in zip(("eye (image left)", "eye (image right)", "nose tip", "mouth corner (left)",
                           "mouth corner (right)", "chin"), med, spread, strict=True):
        print(f"  {name:22s} x={p[0]:.3f} y={p[1]:.3f}  (MAD {s[0]:.3f}, {s[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
