#!/usr/bin/env python3
"""Learn the facemesh backend's 468 -> 68 map and its image refiner on 300-W helen_train only.

1. Faces: every helen_train image, a mirrored copy, and randomly turned (+-35 degrees) and rescaled
   copies, half of them mirrored (``--variants`` per image in all), each through the project's detector (the
   evaluation's fallback box when it misses) and FaceMesh, exactly as the pipeline runs them. The
   mesh, the ground truth and the crop are kept in the mesh's own normalised frame.
2. Index table: the mesh vertex closest on average to each point (printed, for FACEMESH_68_INDEX).
3. Map: per point, ridge regression from (x, y, z) of its K nearest vertices (z carries the yaw, which
   moves the visible jaw outline).
4. Refiner: ``--stages`` stages of per-point ridge regression on gradient features around the point
   and its neighbours (emoji_privacy.landmarks.refiner).
K and every ridge weight are chosen on a held-out 20% of helen_train (grouped by photo, originals
only); then everything is refitted on all of helen_train with those choices and written to
models/facemesh68_map.npz and models/facemesh68_refiner.npz. helen_test and afw are never read here:
measure them with bench/bench_landmarks.py or `python -m emoji_privacy.evaluation landmarks`.

    PYTHONPATH=src .venv/bin/python scripts/fit_facemesh68.py [--cache /tmp/fm68] [--variants 12]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from emoji_privacy.detection import load_face_detector
from emoji_privacy.evaluation.landmarks import (
    annotated_images,
    fallback_box,
    inter_ocular_nme,
    landmarks_box,
    match_detection,
    single_thread,
)
from emoji_privacy.landmarks.facemesh import MESH_POINTS, FaceMeshLandmarks, map_468_to_68, mesh_features
from emoji_privacy.landmarks.geometry import N_POINTS, read_pts
from emoji_privacy.landmarks.refiner import (
    FeatureGeometry,
    apply_stage,
    fit_stage,
    frame_channels,
    point_descriptors,
    save_refiner,
    stage_features,
)
from emoji_privacy.model_files import REPO_ROOT, shared_dir

# iBUG-68 index of each point's mirror image (jaw, brows, nose, eyes, mouth reversed left <-> right)
MIRROR = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                   45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                   54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
GEOMETRY = FeatureGeometry(side=96, units=27.0, cell=4, grid=3)  # default; see --side
NEIGHBOURS = 8  # each point's move is regressed on the features of its 8 nearest points (itself included)
MAP_K = (16, 32, 468)  # 468: every vertex for every point
MAP_RIDGE = (1e-6, 1e-5, 1e-4)
REFINER_RIDGE = (1e-3, 3e-3, 1e-2)


@dataclass
class Faces:
    """FaceMesh on many faces, in each mesh's normalised frame."""

    features: np.ndarray  # (N,468,3) normalised mesh
    targets: np.ndarray  # (N,68,2) ground truth in the same frame
    frames: list[tuple[np.ndarray, np.ndarray, float]]  # (origin, rotation, scale) crop -> frame
    crops: np.ndarray  # (N,192,192) gray FaceMesh crops
    groups: np.ndarray  # (N,) photo id (faces of one photo stay on one side of the split)
    variant: np.ndarray  # (N,) 0 = the original image


def augment(img: np.ndarray, gt: np.ndarray, variant: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Variant 0: the image; 1: mirrored; others turned by +-35 deg and rescaled at random, odd ones mirrored."""
    if variant == 0:
        return img, gt
    mirror = variant % 2 == 1
    angle = 0.0 if variant == 1 else rng.uniform(-35.0, 35.0)
    scale = 1.0 if variant == 1 else math.exp(rng.uniform(-0.3, 0.2))
    h, w = img.shape[:2]
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
        gt = gt[MIRROR].copy()
        gt[:, 0] = w - 1 - gt[:, 0]
    c = gt.mean(0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, scale)
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return img, (gt @ m[:, :2].T + m[:, 2]).astype(np.float32)


def collect(folder: Path, variants: int, seed: int = 0) -> Faces:
    """Run the detector and FaceMesh (no map) on every face of ``folder`` and its augmented copies."""
    detector = load_face_detector("yunet", threads=1)
    mesh = FaceMeshLandmarks(num_threads=1, use_map=False)
    rng = np.random.default_rng(seed)
    feats, targets, frames, crops, groups, var = [], [], [], [], [], []
    missed = 0
    for img_path, pts_path in tqdm(annotated_images(folder), desc=f"FaceMesh on {folder.name}"):
        img0, gt0 = cv2.imread(str(img_path)), read_pts(pts_path)
        for v in range(variants):
            img, gt = augment(img0, gt0, v, rng)
            dets = detector.detect(img)
            i = match_detection(landmarks_box(gt), dets.boxes)
            missed += i < 0
            box, kps = (fallback_box(gt)[None], None) if i < 0 else (dets.boxes[i:i + 1], dets.keypoints[i:i + 1])
            run = mesh.run_mesh(img, box, kps)
            q, (o, r, s) = mesh_features(run.meshes[0].astype(np.float64))
            gt_crop = gt @ run.mats[0][:, :2].T + run.mats[0][:, 2]
            feats.append(q.astype(np.float32))
            targets.append(((gt_crop - o) @ r / s).astype(np.float32))
            frames.append((o, r, s))
            crops.append(run.crops[0])
            groups.append(img_path.stem.rsplit("_", 1)[0])
            var.append(v)
    print(f"{folder.name}: {len(feats)} faces ({variants} per image); detector missed {missed}", file=sys.stderr)
    return Faces(np.array(feats), np.array(targets), frames, np.array(crops), np.array(groups), np.array(var))


def load_or_collect(folder: Path, variants: int, cache: Path | None) -> Faces:
    path = None if cache is None else cache / f"{folder.name}_{variants}.npz"
    if path is not None and path.is_file():
        z = np.load(path)
        frames = [(o, r, float(s)) for o, r, s in zip(z["origin"], z["rotation"], z["scale"], strict=True)]
        return Faces(z["features"], z["targets"], frames, z["crops"], z["groups"], z["variant"])
    faces = collect(folder, variants)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=faces.features, targets=faces.targets, crops=faces.crops, groups=faces.groups,
                 variant=faces.variant, origin=np.array([f[0] for f in faces.frames]),
                 rotation=np.array([f[1] for f in faces.frames]), scale=np.array([f[2] for f in faces.frames]))
    return faces


# ----------------------------------------------------------------------------- the map


def map_design(feats: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n, 68, 3K+1) map inputs: (x, y, z) of each point's K vertices, and 1."""
    nb = feats[:, idx]  # (n,68,K,3)
    return np.concatenate([nb[..., 0], nb[..., 1], nb[..., 2], np.ones(nb.shape[:2] + (1,))], axis=-1)


def vertex_sets(order: np.ndarray, k: int) -> np.ndarray:
    """(68, K) vertices each point is mapped from: its K nearest, or every vertex in one shared order."""
    return np.tile(np.arange(MESH_POINTS), (N_POINTS, 1)) if k >= MESH_POINTS else order[:, :k]


def fit_map(feats: np.ndarray, targets: np.ndarray, idx: np.ndarray, lam: float) -> np.ndarray:
    """Per-point ridge (bias not penalised): W (68, 3K+1, 2). With K = all vertices every point has the
    same inputs (see vertex_sets), so one solve serves all 136 outputs."""
    k = idx.shape[1]
    w = np.zeros((N_POINTS, 3 * k + 1, 2))
    reg = np.eye(3 * k + 1) * lam * len(feats)
    reg[-1, -1] = 0.0
    if (idx == idx[0]).all():
        a = map_design(feats, idx[:1])[:, 0].astype(np.float64)
        sol = np.linalg.solve(a.T @ a + reg, a.T @ targets.reshape(len(a), -1))  # (3K+1, 136)
        w[:] = sol.reshape(3 * k + 1, N_POINTS, 2).transpose(1, 0, 2)
        return w
    for i in range(N_POINTS):
        a = map_design(feats, idx[i:i + 1])[:, 0].astype(np.float64)
        w[i] = np.linalg.solve(a.T @ a + reg, a.T @ targets[:, i])
    return w


def apply_map(feats: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.array([map_468_to_68(q.astype(np.float64), idx, w) for q in feats])


# ----------------------------------------------------------------------------- the refiner


def descriptors(faces: Faces, rows: np.ndarray, shapes: np.ndarray, geom: FeatureGeometry) -> np.ndarray:
    """(n, 68, D) refiner features of faces ``rows`` at ``shapes`` (normalised frame)."""
    out = np.empty((len(rows), N_POINTS, geom.size), np.float32)
    half = geom.side / 2
    for j, i in enumerate(rows):
        o, r, s = faces.frames[i]
        chans = frame_channels(faces.crops[i], o, r, s, geom)
        out[j] = point_descriptors(chans, shapes[j] * geom.units + half, geom)
    return out


def fit_refiner(faces: Faces, train: np.ndarray, init: np.ndarray, neighbours: np.ndarray, ridges: list[float],
                geom: FeatureGeometry, val: np.ndarray | None = None,
                val_init: np.ndarray | None = None) -> tuple[list, list[float]]:
    """Fit one stage per entry of ``ridges`` (None: pick it on ``val``); returns the stages and the ridges used."""
    stages, used = [], []
    shapes, vshapes = init.astype(np.float32), None if val_init is None else val_init.astype(np.float32)
    for k, lam in enumerate(ridges):
        x = stage_features(descriptors(faces, train, shapes, geom), shapes, neighbours)
        y = faces.targets[train] - shapes
        xv = None if val is None else stage_features(descriptors(faces, val, vshapes, geom), vshapes, neighbours)
        choices = REFINER_RIDGE if lam is None else (lam,)
        best = None
        for c in choices:
            w, b = fit_stage(x, y, c)
            if xv is None:
                best = (0.0, c, w, b)
                break
            err = float(inter_ocular_nme(vshapes + apply_stage(xv, w, b), faces.targets[val]).mean())
            print(f"  refiner stage {k + 1}, ridge {c:g}: held-out NME {100 * err:.2f}%", file=sys.stderr)
            if best is None or err < best[0]:
                best = (err, c, w, b)
        _, c, w, b = best
        stages.append((w, b))
        used.append(c)
        shapes = shapes + apply_stage(x, w, b).astype(np.float32)
        if xv is not None:
            vshapes = vshapes + apply_stage(xv, w, b).astype(np.float32)
    return stages, used


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--map-out", type=Path, default=REPO_ROOT / "models" / "facemesh68_map.npz")
    ap.add_argument("--refiner-out", type=Path, default=REPO_ROOT / "models" / "facemesh68_refiner.npz")
    ap.add_argument("--variants", type=int, default=12, help="faces per helen_train image (1 = no augmentation)")
    ap.add_argument("--stages", type=int, default=2, help="refiner stages")
    ap.add_argument("--side", type=int, default=GEOMETRY.side,
                    help="refiner frame side in pixels (its cost grows with side^2); units and cell scale with it")
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep the FaceMesh runs in between runs")
    args = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None or not (sd / "data" / "landmarks" / "helen_train").is_dir():
        print("error: ../shared/data/landmarks/helen_train not found (set EMOJI_PRIVACY_SHARED)", file=sys.stderr)
        return 1
    single_thread()
    f = args.side / GEOMETRY.side
    geom = FeatureGeometry(args.side, GEOMETRY.units * f, max(2, round(GEOMETRY.cell * f)), GEOMETRY.grid)
    faces = load_or_collect(sd / "data" / "landmarks" / "helen_train", args.variants, args.cache)
    feats, targets = faces.features, faces.targets
    n = len(feats)

    # index table: closest vertex on average (original images only)
    orig = faces.variant == 0
    dist = np.stack([np.linalg.norm(feats[orig, :, :2] - targets[orig, i, None, :], axis=-1).mean(0)
                     for i in range(N_POINTS)])  # (68,468)
    order = np.argsort(dist, axis=1)
    print("FACEMESH_68_INDEX = (" + ", ".join(str(int(v)) for v in order[:, 0]) + ")")

    # choices on a held-out 20% of the photos (their original images only)
    rng = np.random.default_rng(0)
    photos = np.unique(faces.groups)
    held = np.isin(faces.groups, rng.choice(photos, len(photos) // 5, replace=False))
    tr, va = np.where(~held)[0], np.where(held & orig)[0]
    best = None
    for k in MAP_K:
        for lam in MAP_RIDGE:
            w = fit_map(feats[tr], targets[tr], vertex_sets(order, k), lam)
            err = float(inter_ocular_nme(apply_map(feats[va], vertex_sets(order, k), w), targets[va]).mean())
            print(f"  map K={k:2d} ridge={lam:g}: held-out NME {100 * err:.2f}%", file=sys.stderr)
            if best is None or err < best[0]:
                best = (err, k, lam, w)
    map_err, k, lam, w = best
    idx = vertex_sets(order, k)
    mean_shape = targets[tr].mean(0)
    neighbours = np.argsort(np.linalg.norm(mean_shape[:, None] - mean_shape[None], axis=2), axis=1)[:, :NEIGHBOURS]
    _, ridges = fit_refiner(faces, tr, apply_map(feats[tr], idx, w), neighbours, [None] * args.stages,
                            geom, va, apply_map(feats[va], idx, w))
    print(f"held-out helen_train: map {100 * map_err:.2f}% (K={k}, ridge {lam:g}); refiner ridges {ridges}")

    # refit on all of helen_train with those choices
    all_rows = np.arange(n)
    w = fit_map(feats, targets, idx, lam)
    args.map_out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.map_out, idx=idx.astype(np.int16), W=w.astype(np.float32), K=k, ridge=lam,
                        n_train=n, table=order[:, 0].astype(np.int16))
    mean_shape = targets.mean(0)
    neighbours = np.argsort(np.linalg.norm(mean_shape[:, None] - mean_shape[None], axis=2), axis=1)[:, :NEIGHBOURS]
    stages, _ = fit_refiner(faces, all_rows, apply_map(feats, idx, w), neighbours, ridges, geom)
    save_refiner(args.refiner_out, geom, neighbours, stages, ridges=np.array(ridges), n_train=n,
                 variants=args.variants)
    for p in (args.map_out, args.refiner_out):
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KB, {n} faces from helen_train)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
