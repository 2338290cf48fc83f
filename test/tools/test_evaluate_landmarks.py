"""Tests of emoji_privacy.evaluation.landmarks: the error measures on hand-computed cases, face matching,
and the command on a few real 300-W faces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import REPO, shared_path

from emoji_privacy.evaluation.cli import evaluate_landmarks_main as main
from emoji_privacy.evaluation.landmarks import (
    annotated_images,
    box_nme,
    ced_auc,
    ced_curve,
    failure_rate,
    fallback_box,
    inter_ocular_nme,
    landmarks_box,
    match_detection,
)


def _face() -> np.ndarray:
    """68 points inside the box (0, 0)-(20, 5) with the outer eye corners 10 px apart."""
    pts = np.zeros((68, 2), np.float32)
    pts[:, 0] = np.linspace(0, 20, 68)
    pts[:, 1] = np.linspace(0, 5, 68)
    pts[36] = (5.0, 2.0)  # point 37, 1-based
    pts[45] = (15.0, 2.0)  # point 46, 1-based
    return pts


def test_nme_hand_computed() -> None:
    gt = _face()
    shifted = gt + np.array([3.0, 4.0], np.float32)  # every point off by 5 px
    np.testing.assert_allclose(inter_ocular_nme(shifted, gt), [0.5])  # 5 / 10
    np.testing.assert_allclose(box_nme(shifted, gt), [0.5])  # 5 / sqrt(20 * 5)
    one = gt.copy()
    one[10, 0] += 6.8  # one point off by 6.8 px: mean error 0.1 px
    np.testing.assert_allclose(inter_ocular_nme(one, gt), [0.01], rtol=1e-5)
    np.testing.assert_allclose(box_nme(one, gt), [0.01], rtol=1e-5)
    # per face, with each face's own normaliser; the prediction's eye corners do not matter
    gt2 = np.stack([gt, gt * 2])
    pred2 = np.stack([shifted, gt * 2 + np.array([0.0, 2.0])])
    np.testing.assert_allclose(inter_ocular_nme(pred2, gt2), [0.5, 0.1])
    np.testing.assert_allclose(inter_ocular_nme(gt, gt), [0.0])
    with pytest.raises(ValueError):
        inter_ocular_nme(pred2, gt)


def test_failure_rate_and_auc_hand_computed() -> None:
    nme = np.array([0.0, 0.04, 0.08, 0.2])
    assert failure_rate(np.array([0.05, 0.10, 0.11, 0.2])) == 0.5  # 0.10 itself is not a failure
    # CED: 1/4 of faces at <= e for e in [0, 0.04), 2/4 for [0.04, 0.08): area 0.04/4 + 0.04/2 = 0.03
    assert ced_auc(nme) == pytest.approx(0.03 / 0.08)
    assert ced_auc(np.zeros(5)) == pytest.approx(1.0)
    assert ced_auc(np.full(5, 0.09)) == 0.0
    # the closed form equals the integral of the plotted curve
    rng = np.random.default_rng(0)
    errs = rng.gamma(4.0, 0.012, 500)
    x, y = ced_curve(errs, limit=0.08, steps=80001)
    assert y[0] == 0.0 and y[-1] == pytest.approx(np.mean(errs <= 0.08))
    assert np.trapz(y, x) / 0.08 == pytest.approx(ced_auc(errs), abs=1e-4)


def test_match_detection_and_fallback_box() -> None:
    gt = _face() * 10 + 100  # landmarks' box (100, 100)-(300, 150)
    box = landmarks_box(gt)
    np.testing.assert_allclose(box, [100, 100, 300, 150])
    boxes = np.array([[0, 0, 50, 50], [90, 60, 310, 160], [100, 100, 300, 150]], np.float32)
    assert match_detection(box, boxes) == 2
    assert match_detection(box, boxes[:2]) == 1
    assert match_detection(box, boxes[:1]) == -1
    assert match_detection(box, np.zeros((0, 4), np.float32)) == -1
    # low IoU but the detection holds the face's centre and is not huge: still the face
    assert match_detection(box, np.array([[180, 40, 400, 200]], np.float32)) == 0
    assert match_detection(box, np.array([[0, 0, 1000, 1000]], np.float32)) == -1  # far larger: not the face
    fb = fallback_box(gt)
    assert fb[0] == 100 and fb[2] == 300 and fb[1] < 100 and fb[3] > 150  # raised to the hairline, a bit lower


def _few_faces(tmp_path: Path, n: int = 3) -> Path:
    src = shared_path("data", "landmarks", "helen_test")
    dst = tmp_path / "faces"
    dst.mkdir()
    for pts in sorted(src.glob("*.pts"))[:n]:
        shutil.copy(pts, dst)
        shutil.copy(pts.with_suffix(".jpg"), dst)
    return dst


def test_annotated_images(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        annotated_images(tmp_path / "missing")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="300-W"):
        annotated_images(tmp_path)
    folder = _few_faces(tmp_path, 2)
    (folder / "orphan.pts").write_text("1 2\n")  # no image beside it: ignored
    pairs = annotated_images(folder)
    assert len(pairs) == 2 and all(i.stem == p.stem and i.suffix == ".jpg" for i, p in pairs)


def test_command_on_real_faces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _few_faces(tmp_path)
    ced = tmp_path / "ced.png"
    assert main(["--data", str(folder), "--backend", "facemesh", "--ced", str(ced), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Lower NME is better" in out and "sqrt(w*h)" in out
    row = next(line for line in out.splitlines() if line.startswith("| facemesh | faces |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "3" and float(cells[3].rstrip("%")) < 8.0  # 3 faces, mean inter-ocular NME < 8%
    assert 0 < float(cells[8]) < 1000 and 0 < float(cells[9]) < 1000  # ms per face, CPU and wall
    assert cells[10].startswith("0 ")  # YuNet finds all three
    assert ced.stat().st_size > 5000 and ced.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--data", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_module_and_rosrun_entry_points() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    res = subprocess.run([sys.executable, "-m", "emoji_privacy.evaluation", "landmarks", "--help"], capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    assert res.returncode == 0 and "--backend" in res.stdout
    if not os.environ.get("ROS_PACKAGE_PATH") or shutil.which("rosrun") is None:
        pytest.skip("the catkin workspace is not sourced (run through `make test`)")
    res = subprocess.run(["rosrun", "emoji_privacy", "evaluate_landmarks", "--help"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0 and "--data" in res.stdout, res.stderr
