"""Head pose (yaw, pitch, roll) from the 68 iBUG landmarks: ``cv2.solvePnP`` against a 3D mean face.

Kept apart from geometry.py because it needs a model file: the 3D mean face ``face3d_68.npz``
(registry key ``face3d_68``), made from FaceMesh depth on frontal 300-W helen_train faces by
``scripts/fit_face3d.py``. It comes from the model-file resolver; a missing or corrupt one is a
ModelFileError when the estimator is built, never a fallback.

Convention (the same in FaceEmotion.msg, the web API and the docs):

* Frame: the camera's optical frame, x right, y down, z forward (into the scene). The face model is
  expressed in the same axes for a face looking straight into the camera: x towards the image right
  (the person's left), y down, z from the nose tip back into the head.
* ``(0, 0, 0)`` = the face looks along the optical axis, into the camera, upright. "Straight" is the
  average orientation of the frontal helen_train photos the mean face was made from.
* ``yaw_deg`` > 0: the person turns to THEIR left, i.e. in the image the nose moves towards the image
  right and more of their right cheek (on the image left) shows. A mirrored image negates it.
* ``pitch_deg`` > 0: the person looks up (the nose moves up in the image).
* ``roll_deg`` > 0: the face turns counter-clockwise on screen, the sign of geometry.head_roll and of
  cv2.getRotationMatrix2D (the person tilts their head towards their right shoulder).
* As a rotation (model -> camera): ``R = Ry(-yaw) @ Rx(-pitch) @ Rz(-roll)`` with the right-handed
  rotations about the optical frame's axes (turn about y first, i.e. yaw is about the vertical).
* Angles are relative to the optical axis, not to the line of sight: a face at pixel (u, v) that
  looks straight at the camera has yaw ~ -atan((u - cx) / fx) and pitch ~ +atan((v - cy) / fy).
  :func:`angles_to_camera` gives the angles relative to the face -> camera ray instead (0 = looking at
  the camera wherever the face is in the image).

Camera: with the intrinsics known (``K`` of sensor_msgs/CameraInfo, 3x3) they are used; otherwise a
nominal pinhole camera, :func:`nominal_camera_matrix`: focal length = image width in pixels (a ~53
degree horizontal field of view, typical of webcams), principal point at the image centre, no
distortion. Yaw and pitch of a face near the image centre hardly depend on it; off-centre faces and
the translation do. Landmarks are assumed undistorted (rectified images) in both cases.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ModelFileError
from ..model_files import MODEL_FILES, find_model_file
from .geometry import N_POINTS

FACE3D_KEY = "face3d_68"

# iBUG-68 index of each point's mirror image (jaw, brows, nose, eyes, mouth reversed left <-> right)
MIRROR_68 = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                      45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                      54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])

# The points solvePnP uses: all 68 but the inner lips (60-67), which move with every expression and
# add nothing the outer lips do not give. (scripts/fit_face3d.py prints the alternatives it measured.)
PNP_POINTS = np.arange(60)


@dataclass(frozen=True)
class HeadPose:
    """One face's pose: angles in degrees (see the module's convention), and solvePnP's raw answer
    (``rvec``, ``tvec``: model -> camera, the translation in model units = outer-eye-corner distances)."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    rvec: np.ndarray
    tvec: np.ndarray


def nominal_camera_matrix(width: int, height: int) -> np.ndarray:
    """The camera assumed without intrinsics: fx = fy = image width, principal point at the image
    centre ((w - 1) / 2, (h - 1) / 2) in 0-based pixel coordinates (so a mirrored image has a mirrored camera)."""
    f = float(width)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def camera_matrix_from(k: object) -> np.ndarray | None:
    """A 3x3 float64 camera matrix from ``K`` (9 values row-major as in CameraInfo, or 3x3); None when
    absent or unusable (an uncalibrated CameraInfo has an all-zero K): the nominal camera is used then."""
    if k is None:
        return None
    m = np.asarray(k, dtype=np.float64)
    if m.size != 9:
        raise ValueError(f"camera matrix needs 9 values, got {m.size}")
    m = m.reshape(3, 3)
    if not np.all(np.isfinite(m)) or m[0, 0] <= 0 or m[1, 1] <= 0 or m[2, 2] == 0:
        return None
    return m / m[2, 2]


def rotation_from_angles(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Model -> camera rotation of a pose: Ry(-yaw) @ Rx(-pitch) @ Rz(-roll) (optical frame, right-handed)."""
    a, b, c = (-math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def angles_from_rotation(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a model -> camera rotation; the inverse of rotation_from_angles."""
    r = np.asarray(r, dtype=np.float64)
    a = math.atan2(r[0, 2], r[2, 2])
    b = math.asin(max(-1.0, min(1.0, -r[1, 2])))
    c = math.atan2(r[1, 0], r[1, 1])
    return -math.degrees(a), -math.degrees(b), -math.degrees(c)


def angles_to_camera(pose: HeadPose) -> tuple[float, float]:
    """(yaw, pitch) relative to the ray from the face to the camera: (0, 0) = looking at the camera,
    wherever the face is in the image (same signs as the pose's)."""
    t = np.asarray(pose.tvec, np.float64).reshape(3)
    bearing_yaw = math.degrees(math.atan2(-t[0], t[2]))  # the yaw that faces the camera from there
    bearing_pitch = math.degrees(math.atan2(t[1], math.hypot(t[0], t[2])))
    return pose.yaw_deg - bearing_yaw, pose.pitch_deg - bearing_pitch


def load_face3d(path: str | os.PathLike | None = None) -> np.ndarray:
    """The 3D mean face, (68, 3) float64 in the model frame (``face3d_68.npz`` from the resolver, or ``path``)."""
    p = find_model_file(FACE3D_KEY, path)
    try:
        with np.load(p) as z:
            pts = np.asarray(z["points"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"3D mean face {p} cannot be read ({e}); {MODEL_FILES[FACE3D_KEY].how_to_get()}") from e
    if pts.shape != (N_POINTS, 3) or not np.all(np.isfinite(pts)):
        raise ModelFileError(f"3D mean face {p} has shape {pts.shape} (want ({N_POINTS}, 3), finite); "
                             "refit it with scripts/fit_face3d.py")
    return pts


class HeadPoseEstimator:
    """solvePnP of the 68 landmarks against the 3D mean face (``model``: (68, 3) or the resolver's file)."""

    def __init__(self, model_path: str | os.PathLike | None = None, model: np.ndarray | None = None,
                 points: np.ndarray = PNP_POINTS) -> None:
        self.model = load_face3d(model_path) if model is None else np.asarray(model, np.float64).reshape(N_POINTS, 3)
        self.points = np.asarray(points, dtype=np.int64)
        self._obj = np.ascontiguousarray(self.model[self.points])
        self._r0 = np.zeros((3, 1))

    def estimate(self, points68: np.ndarray, image_size: tuple[int, int],
                 camera_matrix: np.ndarray | None = None) -> HeadPose:
        """Pose of one face: ``points68`` (68, 2) image pixels, ``image_size`` (width, height),
        ``camera_matrix`` 3x3 (or 9 values) or None for the nominal camera."""
        lm = np.asarray(points68, dtype=np.float64).reshape(N_POINTS, 2)
        k = camera_matrix_from(camera_matrix)
        if k is None:
            k = nominal_camera_matrix(int(image_size[0]), int(image_size[1]))
        img = np.ascontiguousarray(lm[self.points])
        # initial guess: frontal, at the distance that gives the observed size, on the observed centre
        size_img = float(np.linalg.norm(lm[45] - lm[36])) or 1.0
        size_obj = float(np.linalg.norm(self.model[45] - self.model[36])) or 1.0
        z = k[0, 0] * size_obj / size_img
        c = img.mean(0)
        t0 = np.array([[(c[0] - k[0, 2]) * z / k[0, 0]], [(c[1] - k[1, 2]) * z / k[1, 1]], [z]])
        t0 -= self._obj.mean(0).reshape(3, 1)
        ok, rvec, tvec = cv2.solvePnP(self._obj, img, k, None, self._r0.copy(), t0, True, cv2.SOLVEPNP_ITERATIVE)
        if not ok or not np.all(np.isfinite(rvec)):
            nan = float("nan")
            return HeadPose(nan, nan, nan, np.full(3, nan), np.full(3, nan))
        yaw, pitch, roll = angles_from_rotation(cv2.Rodrigues(rvec)[0])
        return HeadPose(yaw, pitch, roll, rvec.reshape(3), tvec.reshape(3))


@functools.lru_cache(maxsize=1)
def default_estimator() -> HeadPoseEstimator:
    """The estimator on the resolver's face3d_68.npz (built once)."""
    return HeadPoseEstimator()


def head_pose(points68: np.ndarray, image_size: tuple[int, int],
              camera_matrix: np.ndarray | None = None) -> tuple[float, float, float]:
    """(yaw_deg, pitch_deg, roll_deg) of one face from its 68 landmarks (see the module's convention).

    ``image_size`` is (width, height) in pixels; ``camera_matrix`` the 3x3 intrinsics (CameraInfo K),
    or None for the nominal pinhole camera (focal length = image width, principal point at the centre).
    """
    p = default_estimator().estimate(points68, image_size, camera_matrix)
    return p.yaw_deg, p.pitch_deg, p.roll_deg
