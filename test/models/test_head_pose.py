"""Head pose (yaw, pitch, roll) from the 68 landmarks: the convention on real faces, mirror and rotation
symmetry, the camera intrinsics, and its way into FaceEmotion and the web API.

Real faces: the astronaut (skimage) and two 300-W helen_test photos run through the whole pipeline:
3051765471_2 (a man turned ~20 degrees to his left: his nose is to the image right) and 3036412907_3 (frontal).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy.landmarks.geometry import head_roll
from emoji_privacy.landmarks.head_pose import (
    MIRROR_68,
    HeadPoseEstimator,
    angles_from_rotation,
    angles_to_camera,
    camera_matrix_from,
    default_estimator,
    head_pose,
    load_face3d,
    nominal_camera_matrix,
    rotation_from_angles,
)
from emoji_privacy.pipeline import FaceResult

TURNED_LEFT = ("data", "landmarks", "helen_test", "3051765471_2.jpg")
FRONTAL = ("data", "landmarks", "helen_test", "3036412907_3.jpg")


def one_face(pipeline, img: np.ndarray) -> FaceResult:
    pipeline.reset()
    faces = pipeline.process(img)[1]
    assert len(faces) >= 1
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def project(model: np.ndarray, angles: tuple[float, float, float], k: np.ndarray, t: np.ndarray) -> np.ndarray:
    rvec = cv2.Rodrigues(rotation_from_angles(*angles))[0]
    return cv2.projectPoints(model, rvec, t.astype(np.float64), k, None)[0].reshape(-1, 2)


def depth_flipped() -> HeadPoseEstimator:
    """A broken convention: the mean face with its depth reversed (e.g. FaceMesh's z read with the wrong sign)."""
    return HeadPoseEstimator(model=load_face3d() * np.array([1.0, 1.0, -1.0]))


def assert_turned_left(pose_yaw: float, lm: np.ndarray) -> None:
    """The convention on a real face: the nose tip right of the outer eye corners' midpoint <=> yaw > 0."""
    nose_right = lm[30, 0] > (lm[36, 0] + lm[45, 0]) / 2
    assert nose_right and pose_yaw > 10, (pose_yaw, nose_right)


def assert_mirror_flips(a: tuple[float, float], b: tuple[float, float]) -> None:
    """(yaw, pitch) of an image and of its mirror image: yaw negated (same magnitude), pitch unchanged."""
    assert abs(a[0]) > 10, "the test face must be clearly turned"
    assert abs(a[0] + b[0]) < 3 and abs(a[1] - b[1]) < 3, (a, b)


# --- the convention, on the model itself --------------------------------------------------------------------

def test_angles_round_trip_and_meaning() -> None:
    for angles in [(0, 0, 0), (30, 0, 0), (0, -25, 0), (0, 0, 15), (20, 10, -5), (-40, 15, 30)]:
        got = angles_from_rotation(rotation_from_angles(*angles))
        assert np.allclose(got, angles, atol=1e-9), (angles, got)
    model = load_face3d()
    assert model.shape == (68, 3) and model[30, 2] < model[36, 2] - 0.3, "the nose tip is nearest to the camera"
    assert np.allclose(model[MIRROR_68] * [-1, 1, 1], model, atol=1e-5), "the mean face is left-right symmetric"
    k, t = nominal_camera_matrix(640, 480), np.array([0.0, 0.0, 8.0])
    frontal = project(model, (0, 0, 0), k, t)
    eyes_mid = (frontal[36] + frontal[45]) / 2
    left, up, ccw = (project(model, a, k, t) for a in [(25, 0, 0), (0, 25, 0), (0, 0, 25)])
    nose_right = left[30, 0] - (left[36, 0] + left[45, 0]) / 2
    assert nose_right > 0.1 * np.ptp(frontal[:, 0]), "yaw > 0: nose to the image right"
    assert up[30, 1] - up[[36, 45], 1].mean() < frontal[30, 1] - eyes_mid[1] - 5, "pitch > 0: nose up in the image"
    assert abs(head_roll(ccw) - 25) < 0.5, "roll has head_roll's sign: counter-clockwise on screen"


def test_synthetic_poses_are_recovered_with_any_camera() -> None:
    """Landmarks projected from the mean face at a known pose give that pose back, with the camera they were
    projected with (a long lens off-centre, a wide one, the nominal one)."""
    est = default_estimator()
    model = est.model
    cams = [nominal_camera_matrix(640, 480), np.array([[1400.0, 0, 300], [0, 1400, 260], [0, 0, 1]]),
            np.array([[350.0, 0, 330], [0, 340, 250], [0, 0, 1]])]
    for k in cams:
        for angles in [(0, 0, 0), (25, 0, 0), (-30, 10, 5), (10, -20, -15), (0, 15, 25)]:
            t = np.array([0.6, -0.4, k[0, 0] / 90.0])  # a face ~90 px between the outer eye corners, off-centre
            lm = project(model, angles, k, t)
            got = est.estimate(lm, (640, 480), k)
            assert np.allclose([got.yaw_deg, got.pitch_deg, got.roll_deg], angles, atol=0.5), (k[0, 0], angles, got)
            assert np.allclose(got.tvec, t, rtol=0.02, atol=0.02)
            if k is cams[1]:  # the nominal camera instead of the true long lens: still the right direction
                nominal = est.estimate(lm, (640, 480))
                assert abs(nominal.yaw_deg - angles[0]) < 8 and abs(nominal.pitch_deg - angles[1]) < 8


def test_camera_matrix_input() -> None:
    k = nominal_camera_matrix(640, 480)
    assert k[0, 0] == 640 and k[0, 2] == 319.5 and k[1, 2] == 239.5
    assert camera_matrix_from(None) is None and camera_matrix_from([0.0] * 9) is None, "uncalibrated: nominal"
    assert np.allclose(camera_matrix_from(list(k.ravel() * 2)), k)
    with pytest.raises(ValueError):
        camera_matrix_from([1.0, 2.0])
    lm = project(load_face3d(), (15, -5, 3), k, np.array([0.0, 0.0, 7.0]))
    assert np.allclose(head_pose(lm, (640, 480)), head_pose(lm, (640, 480), list(k.ravel())))
    assert np.allclose(head_pose(lm, (640, 480)), head_pose(lm, (640, 480), np.zeros(9)))


def test_estimates_are_repeatable_and_carry_no_state(astronaut, pipeline) -> None:
    """One estimator serves every face: estimating the same face again gives the same pose, finite, and the
    same as head_pose(). (Its cost per face is a benchmark's figure, not a test's.)"""
    lm = one_face(pipeline, astronaut).landmarks
    est = default_estimator()
    first = est.estimate(lm, (512, 512))
    angles = (first.yaw_deg, first.pitch_deg, first.roll_deg)
    assert np.all(np.isfinite(angles)) and np.all(np.isfinite(first.tvec))
    est.estimate(np.flip(lm, axis=0).copy(), (512, 512))  # another face in between
    for _ in range(3):
        again = est.estimate(lm, (512, 512))
        assert (again.yaw_deg, again.pitch_deg, again.roll_deg) == angles
    assert head_pose(lm, (512, 512)) == angles


# --- real faces through the pipeline ------------------------------------------------------------------------

def test_turned_face_has_positive_yaw(pipeline) -> None:
    img = cv2.imread(str(shared_path(*TURNED_LEFT)))
    f = one_face(pipeline, img)
    assert_turned_left(f.yaw_deg, f.landmarks)
    assert abs(f.pitch_deg) < 15


def test_yaw_sign_check_fails_with_a_broken_convention(pipeline) -> None:
    """The companion of the test above: the mean face with its depth reversed turns the sign, and the check sees it."""
    img = cv2.imread(str(shared_path(*TURNED_LEFT)))
    f = one_face(pipeline, img)
    broken = depth_flipped().estimate(f.landmarks, (img.shape[1], img.shape[0]))
    with pytest.raises(AssertionError):
        assert_turned_left(broken.yaw_deg, f.landmarks)


@pytest.mark.parametrize("which", ["turned", "astronaut"])
def test_mirror_image_negates_yaw(pipeline, astronaut, which: str) -> None:
    img = astronaut if which == "astronaut" else cv2.imread(str(shared_path(*TURNED_LEFT)))
    a, b = one_face(pipeline, img), one_face(pipeline, np.ascontiguousarray(img[:, ::-1]))
    print(f"{which}: yaw {a.yaw_deg:+.1f} / mirrored {b.yaw_deg:+.1f}; pitch {a.pitch_deg:+.1f} / {b.pitch_deg:+.1f}; "
          f"roll {a.roll_deg:+.1f} / {b.roll_deg:+.1f}")
    assert abs(a.roll_deg + b.roll_deg) < 3, "roll is negated too"
    if which == "astronaut":  # nearly frontal: only the symmetry, not the size
        assert abs(a.yaw_deg + b.yaw_deg) < 3 and abs(a.pitch_deg - b.pitch_deg) < 3
        return
    assert_mirror_flips((a.yaw_deg, a.pitch_deg), (b.yaw_deg, b.pitch_deg))
    # companion: the mirror image computed with the broken (depth-reversed) face must fail the same check
    h, w = img.shape[:2]
    broken = depth_flipped().estimate(b.landmarks, (w, h))
    with pytest.raises(AssertionError):
        assert_mirror_flips((a.yaw_deg, a.pitch_deg), (broken.yaw_deg, broken.pitch_deg))


@pytest.mark.parametrize("angle", [20.0, -20.0])
def test_in_plane_rotation_changes_roll_only(pipeline, astronaut, angle: float) -> None:
    base = one_face(pipeline, astronaut)
    h, w = astronaut.shape[:2]
    c = base.landmarks.mean(0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, 1.0)  # counter-clockwise on screen for angle > 0
    turned = one_face(pipeline, cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    pnp_base = default_estimator().estimate(base.landmarks, (w, h))
    pnp_turned = default_estimator().estimate(turned.landmarks, (w, h))
    print(f"rotated {angle:+.0f}: roll {base.roll_deg:+.1f} -> {turned.roll_deg:+.1f} "
          f"(PnP roll {pnp_base.roll_deg:+.1f} -> {pnp_turned.roll_deg:+.1f}), "
          f"yaw {base.yaw_deg:+.1f} -> {turned.yaw_deg:+.1f}, pitch "
          f"{base.pitch_deg:+.1f} -> {turned.pitch_deg:+.1f}")
    assert abs(turned.roll_deg - base.roll_deg - angle) < 3
    assert abs(pnp_turned.roll_deg - pnp_base.roll_deg - angle) < 3
    assert abs(turned.yaw_deg - base.yaw_deg) < 3 and abs(turned.pitch_deg - base.pitch_deg) < 3


def test_frontal_faces_are_near_zero(pipeline, astronaut) -> None:
    """The astronaut looks into the camera: in a crop centred on her face (optical axis = line of sight) and,
    in the whole photo, relative to the line of sight (angles_to_camera); and the frontal helen_test photo."""
    f = one_face(pipeline, astronaut)
    cx, cy = (int(v) for v in f.landmarks.mean(0))
    crop = astronaut[max(cy - 150, 0): cy + 150, max(cx - 150, 0): cx + 150]
    g = one_face(pipeline, np.ascontiguousarray(crop))
    print(f"astronaut: centred crop yaw {g.yaw_deg:+.1f} pitch {g.pitch_deg:+.1f}; whole photo yaw {f.yaw_deg:+.1f} "
          f"pitch {f.pitch_deg:+.1f}")
    assert abs(g.yaw_deg) < 10 and abs(g.pitch_deg) < 10
    pose = default_estimator().estimate(f.landmarks, (astronaut.shape[1], astronaut.shape[0]))
    yaw, pitch = angles_to_camera(pose)
    assert abs(yaw) < 10 and abs(pitch) < 10
    assert pitch - pose.pitch_deg > 5, "her face is high in the photo: looking at the camera is looking down"
    img = cv2.imread(str(shared_path(*FRONTAL)))
    h = one_face(pipeline, img)
    print(f"helen_test {FRONTAL[-1]}: yaw {h.yaw_deg:+.1f} pitch {h.pitch_deg:+.1f}")
    assert abs(h.yaw_deg) < 10 and abs(h.pitch_deg) < 10


def test_anonymizer_uses_the_camera_matrix(pipeline, astronaut) -> None:
    h, w = astronaut.shape[:2]
    try:
        nominal = one_face(pipeline, astronaut)
        pipeline.set_camera_matrix(list(nominal_camera_matrix(w, h).ravel()))
        same = one_face(pipeline, astronaut)
        assert abs(same.yaw_deg - nominal.yaw_deg) < 1e-6 and abs(same.pitch_deg - nominal.pitch_deg) < 1e-6
        long_lens = np.array([[4.0 * w, 0, (w - 1) / 2], [0, 4.0 * w, (h - 1) / 2], [0, 0, 1]])
        pipeline.set_camera_matrix(long_lens)
        tele = one_face(pipeline, astronaut)
        # her face is above the centre: with a long lens the ray to it is nearer the axis, so the pitch that
        # faces the camera is nearer 0 (she is still looking at the camera in both)
        pose = default_estimator().estimate(tele.landmarks, (w, h), long_lens)
        assert abs(tele.pitch_deg - pose.pitch_deg) < 1e-6 and tele.pitch_deg > nominal.pitch_deg + 3
        assert np.allclose(angles_to_camera(pose), angles_to_camera(
            default_estimator().estimate(nominal.landmarks, (w, h))), atol=6)
        pipeline.set_camera_matrix(np.zeros(9))  # an uncalibrated CameraInfo: back to the nominal camera
        assert pipeline.camera_matrix is None
    finally:
        pipeline.set_camera_matrix(None)


# --- out of the library -------------------------------------------------------------------------------------

def _face(yaw: float, pitch: float) -> FaceResult:
    probs = np.array([0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05], np.float32)
    return FaceResult(3, np.array([10, 20, 110, 140], np.float32), 0.9, probs, 3, 0.65, -4.5,
                      np.zeros((68, 2), np.float32), (60.0, 80.0), 90.0, yaw, pitch)


def test_face_emotion_message_carries_the_pose() -> None:
    pytest.importorskip("emoji_privacy.msg", reason="the catkin workspace is not sourced (make setup)")
    from std_msgs.msg import Header

    from emoji_privacy.ros.messages import faces_from_message, faces_to_message

    msg = faces_to_message([_face(23.5, -7.25)], Header())
    m = msg.faces[0]
    assert (m.yaw_deg, m.pitch_deg, m.roll_deg) == (23.5, -7.25, -4.5)
    back = faces_from_message(msg)[0]
    assert (back.yaw_deg, back.pitch_deg, back.roll_deg) == (23.5, -7.25, -4.5)
    buf = __import__("io").BytesIO()
    msg.serialize(buf)
    again = type(msg)().deserialize(buf.getvalue())
    assert abs(again.faces[0].yaw_deg - 23.5) < 1e-6 and abs(again.faces[0].pitch_deg + 7.25) < 1e-6


def test_web_face_out_carries_the_pose() -> None:
    pytest.importorskip("fastapi")
    from emoji_privacy.web.schemas import face_out

    out = face_out(_face(23.46, -7.25))
    assert (out.yaw_deg, out.pitch_deg, out.roll_deg) == (23.5, -7.2, -4.5)
    unknown = face_out(_face(float("nan"), float("nan")))
    assert unknown.yaw_deg is None and unknown.pitch_deg is None
    assert '"yaw_deg":null' in unknown.model_dump_json()
