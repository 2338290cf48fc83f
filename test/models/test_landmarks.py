"""Tests of emoji_privacy.landmarks: backends, geometry helpers, .pts reading and FER alignment."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from model_helpers import hide_models

from emoji_privacy.errors import ConfigError, ModelFileError
from emoji_privacy.landmarks import align
from emoji_privacy.landmarks.align import align_face, fer_template, load_landmark_detector
from emoji_privacy.landmarks.facemesh import FaceMeshLandmarks
from emoji_privacy.landmarks.geometry import covering_circle, face_region, head_roll, read_pts
from emoji_privacy.model_files import find_model_file, shared_dir

# face-alignment decodes heatmaps with numba functions that compile on first call (~10 s); the fan tests
# only check coordinate frames, which the plain-Python versions compute identically. Has effect only if
# numba is not imported yet.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")


def _yunet(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    det = cv2.FaceDetectorYN.create(str(find_model_file("yunet")), "", (w, h), score_threshold=0.6)
    _, faces = det.detect(img)
    assert faces is not None and len(faces) >= 1
    faces = faces[np.argsort(-faces[:, 14])]
    boxes = np.c_[faces[:, :2], faces[:, :2] + faces[:, 2:4]].astype(np.float32)
    return boxes, faces[:, 4:14].reshape(-1, 5, 2).astype(np.float32)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def facemesh() -> FaceMeshLandmarks:
    det = load_landmark_detector("facemesh")
    assert isinstance(det, FaceMeshLandmarks)
    return det


def _inside(poly: np.ndarray, pts: np.ndarray, tol: float = 0.5) -> bool:
    c = poly.reshape(-1, 1, 2).astype(np.float32)
    return all(cv2.pointPolygonTest(c, (float(x), float(y)), True) >= -tol for x, y in pts)


def _rotate(img: np.ndarray, center: tuple[float, float], angle: float) -> tuple[np.ndarray, np.ndarray]:
    m = cv2.getRotationMatrix2D(center, angle, 1.0)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT), m


def test_astronaut_upright_and_rotated(astronaut: np.ndarray, facemesh: FaceMeshLandmarks) -> None:
    boxes, kps = _yunet(astronaut)
    lm = facemesh.detect(astronaut, boxes[:1], kps[:1])
    assert lm.shape == (1, 68, 2) and lm.dtype == np.float32
    x0, y0, x1, y1 = boxes[0]
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    assert np.all((lm[0, :, 0] >= x0 - mx) & (lm[0, :, 0] <= x1 + mx))
    assert np.all((lm[0, :, 1] >= y0 - my) & (lm[0, :, 1] <= y1 + my))
    assert lm[0, 36:48, 1].max() < lm[0, 48:68, 1].min()  # eyes above mouth
    assert abs(head_roll(lm[0])) < 10

    center = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    rot, _ = _rotate(astronaut, center, 25.0)
    rboxes, rkps = _yunet(rot)
    rlm = facemesh.detect(rot, rboxes[:1], rkps[:1])[0]
    assert abs(head_roll(rlm) - 25.0) < 5.0
    region = face_region(rlm)
    assert region.ndim == 2 and region.shape[1] == 2
    assert _inside(region, rlm)
    (cx, cy), r = covering_circle(region)
    assert np.all(np.hypot(region[:, 0] - cx, region[:, 1] - cy) <= r)
    # the forehead is covered: the region reaches well above the brows along the face's up axis
    up = np.array([-math.sin(math.radians(25.0)), -math.cos(math.radians(25.0))])
    brow_to_chin = float(np.dot(rlm[17:27].mean(0) - rlm[8], up))
    assert float(np.max((region - rlm[17:27].mean(0)) @ up)) > 0.4 * brow_to_chin


def test_roll_sign_convention() -> None:
    lm = np.zeros((68, 2), np.float32)
    lm[36:42] = (100.0, 100.0)
    lm[42:48] = (200.0, 100.0)
    assert head_roll(lm) == pytest.approx(0.0)
    lm[42:48] = (200.0, 50.0)  # the image-right eye higher: face turned counter-clockwise on screen
    assert head_roll(lm) == pytest.approx(math.degrees(math.atan2(50, 100)))


def _helen_items(n: int) -> list[tuple[Path, Path]]:
    sd = shared_dir()
    folder = None if sd is None else sd / "data" / "landmarks" / "helen_test"
    if folder is None or not folder.is_dir():
        pytest.skip("300-W helen_test not available (shared data folder absent)")
    pts = sorted(folder.glob("*.pts"))[:n]
    return [(p.with_suffix(".jpg"), p) for p in pts if p.with_suffix(".jpg").is_file()]


def test_facemesh_nme_on_helen(facemesh: FaceMeshLandmarks) -> None:
    # on these 20 faces: index table 5.4%, learned map alone 4.1%, map + refiner 3.5% (bench_landmarks has all)
    errs = []
    for img_path, pts_path in _helen_items(20):
        img = cv2.imread(str(img_path))
        gt = read_pts(pts_path)
        boxes, kps = _yunet(img)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        i = int(np.argmin(np.linalg.norm(centers - gt.mean(0), axis=1)))
        lm = facemesh.detect(img, boxes[i:i + 1], kps[i:i + 1])[0]
        errs.append(np.linalg.norm(lm - gt, axis=1).mean() / np.linalg.norm(gt[36] - gt[45]))
    assert len(errs) == 20
    assert float(np.mean(errs)) < 0.038


def test_edge_cases(astronaut: np.ndarray, facemesh: FaceMeshLandmarks) -> None:
    out = facemesh.detect(astronaut, np.zeros((0, 4), np.float32))
    assert out.shape == (0, 68, 2) and out.dtype == np.float32
    out = facemesh.detect(astronaut, np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32))
    assert out.shape == (0, 68, 2)
    h, w = astronaut.shape[:2]
    boxes = np.array([[-60, -40, 90, 110], [w - 50, h - 70, w + 100, h + 80], [200, 200, 205, 205]], np.float32)
    out = facemesh.detect(astronaut, boxes)
    assert out.shape == (3, 68, 2) and np.all(np.isfinite(out))
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert facemesh.detect(gray, boxes[:1]).shape == (1, 68, 2)


def test_fitted_files_are_required(astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 2: without its fitted files the facemesh backend fails naming the file; no silent fallback."""
    boxes, kps = _yunet(astronaut)
    table = FaceMeshLandmarks(use_map=False).detect(astronaut, boxes[:1], kps[:1])[0]  # explicit baseline
    mapped = FaceMeshLandmarks().detect(astronaut, boxes[:1], kps[:1])[0]
    assert np.linalg.norm(table - mapped, axis=1).mean() < 0.1 * np.linalg.norm(mapped[36] - mapped[45])
    with pytest.raises(ModelFileError, match="missing.npz does not exist"):
        FaceMeshLandmarks(map_path=tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match="missing.npz does not exist"):
        FaceMeshLandmarks(refiner_path=tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match="missing.npz does not exist"):
        fer_template(tmp_path / "missing.npz")
    real_map = find_model_file("facemesh68_map")

    hide_models(monkeypatch, tmp_path, pip_packages=True)  # the resolver finds no project file
    monkeypatch.setattr(align, "_template_cache", {})
    for build, missing in ((lambda: load_landmark_detector("facemesh"), "fer_template.npz"),
                           (lambda: FaceMeshLandmarks(), "facemesh68_map.npz"),
                           (lambda: FaceMeshLandmarks(map_path=real_map), "facemesh68_refiner.npz"),
                           (lambda: align_face(astronaut, mapped, 48), "fer_template.npz")):
        with pytest.raises(ModelFileError, match=f"{missing} not found") as e:
            build()
        assert "\n" not in str(e.value)
    # the baseline asks for no fitted file
    assert FaceMeshLandmarks(use_map=False).detect(astronaut, boxes[:1], kps[:1]).shape == (1, 68, 2)


def test_fer_template_is_the_fitted_one() -> None:
    t = fer_template()
    assert t.shape == (6, 2) and t.dtype == np.float32
    with np.load(find_model_file("fer_template")) as z:
        np.testing.assert_array_equal(t, z["points"].astype(np.float32).reshape(6, 2))
    assert 0.25 < t[0, 0] < 0.4 and 0.6 < t[1, 0] < 0.75  # eye on the image left, then the other


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="facemesh"):
        load_landmark_detector("nope")
    with pytest.raises(ConfigError):
        load_landmark_detector("facemesh", bogus_option=1)


def test_read_pts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pts1 = rng.uniform(1, 300, (68, 2)).round(3)
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts1)
    with_header = tmp_path / "a.pts"
    with_header.write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    bare = tmp_path / "b.pts"
    bare.write_text(body + "\n")
    a, b = read_pts(with_header), read_pts(bare)
    assert a.shape == (68, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, pts1 - 1.0, atol=1e-4)
    short = tmp_path / "c.pts"
    short.write_text("1 2\n3 4\n")
    with pytest.raises(ValueError):
        read_pts(short)


def test_align_face_rotation_invariant(astronaut: np.ndarray, facemesh: FaceMeshLandmarks) -> None:
    boxes, kps = _yunet(astronaut)
    lm = facemesh.detect(astronaut, boxes[:1], kps[:1])[0]
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    a = align_face(gray, lm, 64)
    assert a.shape == (64, 64) and a.dtype == np.uint8
    center = tuple(float(v) for v in lm.mean(0))
    rot, m = _rotate(astronaut, center, 20.0)
    rlm = lm @ m[:, :2].T + m[:, 2]  # same landmarks, rotated: tests the alignment alone
    b = align_face(cv2.cvtColor(rot, cv2.COLOR_BGR2GRAY), rlm, 64)
    assert np.abs(a.astype(float) - b.astype(float)).mean() < 6.0
    # and with landmarks re-detected on the rotated image: a degree or a pixel of landmark noise moves
    # every edge, so compare blurred crops (a 4 px shift of the crop itself gives ~22 here)
    rb, rk = _yunet(rot)
    c = align_face(cv2.cvtColor(rot, cv2.COLOR_BGR2GRAY), facemesh.detect(rot, rb[:1], rk[:1])[0], 64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2.0)

    assert np.abs(blur(a) - blur(c)).mean() < 8.0
    assert align_face(astronaut, lm, 48).shape == (48, 48)  # BGR input is converted


# ----------------------------------------------------------------------------- fan backend


def test_fan_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("face_alignment")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelFileError) as e:
        load_landmark_detector("fan")
    msg = str(e.value)
    assert str(tmp_path / "hub" / "checkpoints" / "2DFAN4-11f355bf06.pth.tar") in msg
    assert "http" in msg and "\n" not in msg
    assert not any((tmp_path / "hub" / "checkpoints").glob("*"))  # nothing was downloaded
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        load_landmark_detector("fan", model_path=bad)


def test_fan_with_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("face_alignment")
    from face_alignment.models import FAN

    from emoji_privacy.landmarks.fan import fan_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, _ = fan_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), path)  # the format face-alignment loads: a plain state dict
    det = load_landmark_detector("fan", warmup=False)  # the real network runs once below (slow on CPU)
    boxes = np.array([[150, 60, 270, 190], [300, 250, 400, 360]], np.float32)
    out = det.detect(astronaut, boxes)
    assert out.shape == (2, 68, 2) and out.dtype == np.float32 and np.all(np.isfinite(out))
    for lm, (x0, y0, x1, y1) in zip(out, boxes, strict=True):
        # FAN's crop: side 200 * (w + h) / 195 around the box centre raised by 12% of h; random weights can
        # put a point anywhere in it, but never outside (that would be a coordinate-frame bug)
        half = 100.0 * (x1 - x0 + y1 - y0) / 195.0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.12 * (y1 - y0)
        assert np.all(np.abs(lm[:, 0] - cx) <= half + 2) and np.all(np.abs(lm[:, 1] - cy) <= half + 2)
    assert det.detect(astronaut, np.zeros((0, 4), np.float32)).shape == (0, 68, 2)

    # The library's real pipeline (crop around each box, network, heatmap decoding, back to image
    # coordinates) with a stand-in network whose 68 heatmaps all peak where the crop is red: each face's
    # points must land on the red dot inside its own box, which fails on swapped x/y, BGR/RGB, wrong
    # face order or a wrong crop frame.
    class RedSpot(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            red = (x[:, :1] - x[:, 2:3]).clamp(min=0.0)  # input is RGB in [0, 1]
            return [torch.nn.functional.avg_pool2d(red, 4).expand(-1, 68, -1, -1).contiguous()]  # 256 -> 64

    det._fa.face_alignment_net = RedSpot()
    scene = np.full((480, 640, 3), 90, np.uint8)
    boxes = np.array([[40, 50, 160, 170], [420, 260, 600, 440], [560, -30, 680, 90]], np.float32)  # last: off the edge
    dots = np.array([[75, 85], [555, 400], [600, 40]], np.float32)  # upper left, lower right, near the corner
    for x, y in dots:
        cv2.circle(scene, (int(x), int(y)), 3, (0, 0, 255), -1)  # red in BGR
    out = det.detect(scene, boxes)
    assert out.shape == (3, 68, 2)
    for lm, dot, (x0, y0, x1, y1) in zip(out, dots, boxes, strict=True):
        cell = 200.0 * (x1 - x0 + y1 - y0) / 195.0 / 64  # one heatmap cell in image pixels
        assert np.all(np.linalg.norm(lm - dot, axis=1) <= cell + 1.0), (lm.mean(0), dot)
    np.testing.assert_allclose(det.detect(scene, boxes[::-1]), out[::-1])  # one result per box, in box order
