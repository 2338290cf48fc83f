#!/usr/bin/env python3
"""Make the 3D mean face of the 68 iBUG points (models/face3d_68.npz) that head_pose.py solves PnP against.

Data: 300-W helen_train only (each image and its mirrored copy). Per face:

1. The project's detector box (the evaluation's fallback box when it misses) and FaceMesh (no map), as
   the pipeline runs them: 468 vertices in the 192x192 crop, x/y in crop pixels, z = depth in about the
   same units (negative towards the camera).
2. The face's 68 3D points: x, y = the annotated .pts point in crop pixels, z = FaceMesh's depth at that
   point's nearest-vertex (FACEMESH_68_INDEX, the table fitted on helen_train by fit_facemesh68.py).
3. The face's orientation: the rotation that best aligns (Kabsch) its 468 normalised vertices with the
   mean mesh of all faces (two rounds of generalised Procrustes). The mean of all faces and their mirror
   images defines "straight" (yaw = roll = 0 by symmetry, pitch = the photos' average).
4. Frontal faces = those within ``--max-deg`` of straight in yaw and pitch; their 68-point sets are turned
   to straight (inverse of 3.), centred, scaled to unit outer-eye-corner distance (36-45) and averaged;
   the mean is made exactly left-right symmetric (averaged with its mirror image) and centred.

Written: ``points`` (68, 3) float32, model frame = camera optical axes for a face looking into the camera
(x to the image right, y down, z into the head), unit = outer-eye-corner distance; plus the counts.
Checks printed: the PnP reprojection error on helen_train for the z scale (FaceMesh depth x 0.7 .. 1.3),
and how close the PnP yaw/pitch are to the mesh's own orientation for a few choices of PnP points.
helen_test and afw are never read.

    PYTHONPATH=src .venv/bin/python scripts/fit_face3d.py [--max-deg 10] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from emoji_privacy.detection import load_face_detector
from emoji_privacy.evaluation.landmarks import (
    annotated_images,
    fallback_box,
    landmarks_box,
    match_detection,
    single_thread,
)
from emoji_privacy.landmarks.facemesh import FACEMESH_68_INDEX, FaceMeshLandmarks
from emoji_privacy.landmarks.geometry import read_pts
from emoji_privacy.landmarks.head_pose import (
    MIRROR_68,
    HeadPoseEstimator,
    angles_from_rotation,
    nominal_camera_matrix,
)
from emoji_privacy.model_files import REPO_ROOT, shared_dir


def collect(folder: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N,68,3) annotated x/y + mesh z, (N,468,3) meshes (crop frame), (N,68,2) image points, (N,2) image sizes."""
    detector = load_face_detector("yunet", threads=1)
    mesh = FaceMeshLandmarks(num_threads=1, use_map=False)
    idx = np.asarray(FACEMESH_68_INDEX)
    pts3, meshes, pts2, sizes = [], [], [], []
    missed = 0
    items = annotated_images(folder)[:limit]
    for img_path, pts_path in tqdm(items, desc=f"FaceMesh on {folder.name}"):
        img0, gt0 = cv2.imread(str(img_path)), read_pts(pts_path)
        for mirror in (False, True):
            img, gt = img0, gt0
            if mirror:
                img = np.ascontiguousarray(img0[:, ::-1])
                gt = gt0[MIRROR_68].copy()
                gt[:, 0] = img.shape[1] - 1 - gt[:, 0]
            dets = detector.detect(img)
            i = match_detection(landmarks_box(gt), dets.boxes)
            missed += i < 0
            box, kps = (fallback_box(gt)[None], None) if i < 0 else (dets.boxes[i:i + 1], dets.keypoints[i:i + 1])
            run = mesh.run_mesh(img, box, kps)
            m, a = run.meshes[0].astype(np.float64), run.mats[0]
            gt_crop = gt @ a[:, :2].T + a[:, 2]
            pts3.append(np.column_stack([gt_crop, m[idx, 2]]))
            meshes.append(m)
            pts2.append(gt)
            sizes.append((img.shape[1], img.shape[0]))
    print(f"{folder.name}: {len(pts3)} faces ({len(items)} images and their mirror images); "
          f"detector missed {missed}", file=sys.stderr)
    return np.array(pts3), np.array(meshes), np.array(pts2), np.array(sizes)


def normalise(p: np.ndarray) -> np.ndarray:
    """Centred, unit RMS radius."""
    q = p - p.mean(0)
    return q / np.sqrt((q ** 2).sum(1).mean())


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R (no reflection) minimising |src @ R.T - dst| for centred point sets."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def orientations(meshes: np.ndarray) -> np.ndarray:
    """(N,3,3) rotation of each mesh relative to the mean mesh (the mean of all faces = straight)."""
    q = np.array([normalise(m) for m in meshes])
    ref = normalise(q.mean(0))
    for _ in range(2):  # generalised Procrustes: align all to the mean, re-estimate the mean
        rots = np.array([kabsch(ref, x) for x in q])  # x ~ ref @ R.T: R turns straight into this face
        ref = normalise(np.mean([x @ r for x, r in zip(q, rots, strict=True)], 0))
    return np.array([kabsch(ref, x) for x in q])


def mirror(points: np.ndarray) -> np.ndarray:
    out = points[MIRROR_68].copy()
    out[:, 0] = -out[:, 0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder of .jpg + .pts (default: shared helen_train)")
    ap.add_argument("--max-deg", type=float, default=10.0, help="frontal: |yaw| and |pitch| below this")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (a quick check)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "face3d_68.npz")
    args = ap.parse_args(argv)
    single_thread()
    folder = args.data or (shared_dir() or Path("../shared")) / "data" / "landmarks" / "helen_train"
    if not folder.is_dir():
        print(f"error: {folder} not found (see ../shared/README.md)", file=sys.stderr)
        return 1
    pts3, meshes, pts2, sizes = collect(folder, args.limit)
    rots = orientations(meshes)
    angles = np.array([angles_from_rotation(r) for r in rots])
    frontal = (np.abs(angles[:, 0]) < args.max_deg) & (np.abs(angles[:, 1]) < args.max_deg)
    print(f"orientation of the meshes (deg): yaw sd {angles[:, 0].std():.1f}, pitch sd {angles[:, 1].std():.1f}, "
          f"roll sd {angles[:, 2].std():.1f}; frontal (|yaw|, |pitch| < {args.max_deg:g}): {frontal.sum()} of "
          f"{len(angles)} faces, their mean pitch {angles[frontal, 1].mean():+.2f}", file=sys.stderr)

    straight = []
    for p, r in zip(pts3[frontal], rots[frontal], strict=True):
        q = (p - p.mean(0)) @ r  # undo the face's rotation: row-vector form of R.T @ p
        straight.append(q / np.linalg.norm(q[45, :2] - q[36, :2]))
    model = np.mean(straight, 0)
    model = (model + mirror(model)) / 2
    model -= model.mean(0)
    model /= np.linalg.norm(model[45] - model[36])
    spread = np.sqrt(((np.array(straight) - np.array(straight).mean(0)) ** 2).sum(2).mean(0))
    print(f"model: nose tip z {model[30, 2]:+.3f}, outer eye corners z {model[36, 2]:+.3f}, jaw ends z "
          f"{model[0, 2]:+.3f}, chin z {model[8, 2]:+.3f} (unit: outer-eye-corner distance); per-point spread "
          f"of the frontal faces: median {np.median(spread):.3f}, max {spread.max():.3f}", file=sys.stderr)

    # checks on all helen_train faces (every pose): z scale and PnP point sets
    ref_angles = angles
    for zs in (0.7, 0.85, 1.0, 1.15, 1.3):
        m = model * np.array([1.0, 1.0, zs])
        est = HeadPoseEstimator(model=m, points=np.arange(17, 60))  # rigid points: no jaw outline, no inner lips
        err = []
        for lm, size in zip(pts2, sizes, strict=True):
            pose = est.estimate(lm, size)
            k = nominal_camera_matrix(*size)
            proj = cv2.projectPoints(m[17:60], pose.rvec, pose.tvec, k, None)[0].reshape(-1, 2)
            err.append(np.sqrt(((proj - lm[17:60]) ** 2).sum(1).mean()) / np.linalg.norm(lm[45] - lm[36]))
        print(f"z scale {zs:.2f}: PnP reprojection RMS (points 17-59) {np.mean(err):.4f} outer-eye-corner distances",
              file=sys.stderr)
    for name, sel in (("all 68", np.arange(68)), ("0-59 (no inner lips)", np.arange(60)),
                      ("17-59 (no jaw, no inner lips)", np.arange(17, 60)),
                      ("17-47 (brows, nose, eyes)", np.arange(17, 48))):
        est = HeadPoseEstimator(model=model, points=sel)
        poses = [est.estimate(lm, size) for lm, size in zip(pts2, sizes, strict=True)]
        got = np.array([(p.yaw_deg, p.pitch_deg) for p in poses])
        d = got[:, :2] - ref_angles[:, :2]
        slope = [np.polyfit(ref_angles[:, j], got[:, j], 1)[0] for j in (0, 1)]
        print(f"PnP on {name:30s}: |yaw - mesh yaw| mean {np.abs(d[:, 0]).mean():.2f} deg (slope {slope[0]:.2f}), "
              f"|pitch - mesh pitch| mean {np.abs(d[:, 1]).mean():.2f} deg (median offset {np.median(d[:, 1]):+.2f}, "
              f"slope {slope[1]:.2f}); mirror pairs |yaw + yaw'| {np.abs(got[0::2, 0] + got[1::2, 0]).mean():.2f} deg",
              file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, points=model.astype(np.float32), n_faces=np.int64(frontal.sum()),
                        n_total=np.int64(len(angles)), max_deg=np.float32(args.max_deg))
    print(f"wrote {args.out} from {frontal.sum()} frontal faces", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
