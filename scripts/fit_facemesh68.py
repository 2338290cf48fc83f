#!/usr/bin/env python3
"""Learn the FaceMesh 468 -> iBUG-68 map on 300-W helen_train and report NME on helen_test and afw.

For every helen_train face (YuNet box and keypoints, as in the pipeline; the ground-truth box when
YuNet misses) FaceMesh is run and both the mesh and the ground truth are expressed in the mesh's own
normalised frame (origin, eye-line rotation, RMS scale). Then, per iBUG point:
  * the index table: the mesh vertex closest on average (printed, for landmarks.FACEMESH_68_INDEX);
  * the learned map: ridge regression from (x, y, z) of its K nearest vertices (z carries the yaw, which
    moves the visible jaw outline) to the point, K and the ridge weight picked on a held-out 20%.
Writes models/facemesh68_map.npz. helen_test and afw are only evaluated, never fitted on.

    PYTHONPATH=src .venv/bin/python scripts/fit_facemesh68.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from emoji_privacy.landmarks import FACEMESH_MAP_FILE, N_POINTS, FaceMeshLandmarks, mesh_features, read_pts
from emoji_privacy.model_files import find_model_file, shared_dir

DET_SIDE = 640  # YuNet runs on the image scaled to this long side (helen faces are large)


def gt_box(pts: np.ndarray) -> np.ndarray:
    """YuNet-like box from ground truth: the landmarks' box raised to include the forehead."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    h = y1 - y0
    return np.array([x0, y0 - 0.2 * h, x1, y1 + 0.05 * h], np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


class YuNet:
    def __init__(self) -> None:
        self.det = cv2.FaceDetectorYN.create(str(find_model_file("yunet")), "", (320, 320), score_threshold=0.6)

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = img.shape[:2]
        f = min(1.0, DET_SIDE / max(h, w))
        small = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA) if f < 1 else img
        self.det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self.det.detect(small)
        if faces is None:
            return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)
        faces = faces[:, :14] / f
        boxes = np.c_[faces[:, :2], faces[:, :2] + faces[:, 2:4]].astype(np.float32)
        return boxes, faces[:, 4:14].reshape(-1, 5, 2).astype(np.float32)


Item = tuple[Path, np.ndarray, np.ndarray, "np.ndarray | None"]


def load_set(folder: Path, yunet: YuNet, cache: Path | None) -> list[Item]:
    """[(image path, gt (68,2), box (4,), keypoints (5,2) or None)] with the pipeline's detector."""
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=True)
        return list(z["items"])
    items = []
    missed = 0
    for pts_path in sorted(folder.glob("*.pts")):
        img_path = pts_path.with_suffix(".jpg")
        if not img_path.is_file():
            img_path = pts_path.with_suffix(".png")
        img = cv2.imread(str(img_path))
        if img is None:
            continue
        gt = read_pts(pts_path)
        boxes, kps = yunet(img)
        g = gt_box(gt)
        best, best_iou = -1, 0.3
        for i, b in enumerate(boxes):
            v = iou(b, g)
            if v > best_iou:
                best, best_iou = i, v
        if best < 0:
            missed += 1
            items.append((img_path, gt, g, None))
        else:
            items.append((img_path, gt, boxes[best], kps[best]))
    print(f"{folder.name}: {len(items)} faces, YuNet missed {missed} (ground-truth box used)", file=sys.stderr)
    if cache is not None:
        np.savez(cache, items=np.array(items, dtype=object))
    return items


def run_meshes(fm: FaceMeshLandmarks, items: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Per face: mesh features (468,3), gt in the mesh frame (68,2), gt in image coords, and the frame data."""
    feats, targets, gts, frames = [], [], [], []
    for img_path, gt, box, kp in items:
        img = cv2.imread(str(img_path))
        mesh, mats, _ = fm.run_mesh(img, box[None], None if kp is None else kp[None])
        q, (o, r, s) = mesh_features(mesh[0].astype(np.float64))
        gt_crop = gt @ mats[0][:, :2].T + mats[0][:, 2]
        feats.append(q)
        targets.append((gt_crop - o) @ r / s)
        gts.append(gt)
        frames.append((mesh[0], mats[0]))
    return np.array(feats), np.array(targets), np.array(gts), frames


def design(feats: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n, 68, 3K+1) features for each point from its K neighbours."""
    nb = feats[:, idx]  # (n,68,K,3)
    ones = np.ones(nb.shape[:2] + (1,))
    return np.concatenate([nb[..., 0], nb[..., 1], nb[..., 2], ones], axis=-1)


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Per-point ridge (bias not penalised): x (n,68,F), y (n,68,2) -> W (68,F,2)."""
    n, p, f = x.shape
    w = np.zeros((p, f, 2))
    reg = np.eye(f) * lam * n
    reg[-1, -1] = 0.0
    for i in range(p):
        a = x[:, i]
        w[i] = np.linalg.solve(a.T @ a + reg, a.T @ y[:, i])
    return w


def predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("npf,pfc->npc", x, w)


def nme_norm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Inter-ocular NME per face (outer eye corners 36 and 45)."""
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    return np.linalg.norm(pred - gt, axis=2).mean(1) / d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=FACEMESH_MAP_FILE)
    ap.add_argument("--cache", type=Path, default=None, help="folder to cache detections in")
    ap.add_argument("--scale", type=float, default=None, help="FaceMesh crop scale (default: the library's)")
    args = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        print("no shared data folder (../shared); nothing to fit on", file=sys.stderr)
        return 1
    root = sd / "data" / "landmarks"
    yunet = YuNet()
    kw = {} if args.scale is None else {"scale": args.scale}
    fm = FaceMeshLandmarks(use_map=False, **kw)

    def cached(name: str) -> Path | None:
        return None if args.cache is None else args.cache / f"{name}_det.npz"

    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    train = load_set(root / "helen_train", yunet, cached("helen_train"))
    feats, targets, _, _ = run_meshes(fm, train)
    n = len(feats)

    # index table: closest vertex on average in the normalised frame
    dist = np.stack([np.linalg.norm(feats[:, :, :2] - targets[:, i, None, :], axis=-1).mean(0)
                     for i in range(N_POINTS)])  # (68,468)
    order = np.argsort(dist, axis=1)
    table = order[:, 0]
    print("FACEMESH_68_INDEX = (" + ", ".join(str(int(v)) for v in table) + ")")

    # model selection on a held-out 20% of helen_train
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    va, tr = perm[: n // 5], perm[n // 5:]
    best = None
    for k in (8, 16, 24, 32):
        x = design(feats, order[:, :k])
        for lam in (1e-6, 1e-5, 1e-4, 1e-3):
            w = fit_ridge(x[tr], targets[tr], lam)
            err = np.linalg.norm(predict(x[va], w) - targets[va], axis=2).mean()
            print(f"  K={k:2d} lambda={lam:g}: held-out mean error {err:.4f} (mesh-scale units)", file=sys.stderr)
            if best is None or err < best[0]:
                best = (err, k, lam)
    _, k, lam = best
    idx = order[:, :k]
    w = fit_ridge(design(feats, idx), targets, lam)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, idx=idx.astype(np.int16), W=w.astype(np.float32), K=k, ridge=lam,
                        scale=fm.scale, n_train=n, table=table.astype(np.int16))
    print(f"wrote {args.out} (K={k}, lambda={lam:g}, {n} helen_train faces, "
          f"{args.out.stat().st_size / 1024:.1f} KB)")

    # evaluation (never fitted on these); the index table is the one just fitted
    fm.index = table.astype(np.int64)
    mapped = FaceMeshLandmarks(map_path=args.out, **kw)
    for name in ("helen_train", "helen_test", "afw"):
        items = train if name == "helen_train" else load_set(root / name, yunet, cached(name))
        _, _, gts, frames = run_meshes(fm, items)
        res = {}
        for label, det in (("index table", fm), ("learned map", mapped)):
            preds = []
            for mesh, mat in frames:
                p = det.mesh_to_68(mesh)
                preds.append(p @ cv2.invertAffineTransform(mat)[:, :2].T + cv2.invertAffineTransform(mat)[:, 2])
            res[label] = nme_norm(np.array(preds), gts)
        print(f"{name:12s} n={len(items):4d}  NME index table {res['index table'].mean():.4f}  "
              f"learned map {res['learned map'].mean():.4f} (median {np.median(res['learned map']):.4f})")
    # timing: one face, the whole detect() (crop, FaceMesh, map back), single thread
    img_path, _, box, kp = train[0]
    img = cv2.imread(str(img_path))
    for _ in range(10):
        mapped.detect(img, box[None], kp[None] if kp is not None else None)
    t = time.perf_counter()
    reps = 300
    for _ in range(reps):
        mapped.detect(img, box[None], kp[None] if kp is not None else None)
    print(f"detect(): {(time.perf_counter() - t) / reps * 1000:.2f} ms per face (num_threads=1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
