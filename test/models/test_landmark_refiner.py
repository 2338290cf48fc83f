"""Tests of emoji_privacy.landmarks.refiner: gradient features, the ridge stage, the model file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emoji_privacy.errors import ModelFileError
from emoji_privacy.landmarks.refiner import (
    CHANNELS,
    FeatureGeometry,
    LandmarkRefiner,
    apply_stage,
    fit_stage,
    frame_transform,
    gradient_channels,
    point_descriptors,
    save_refiner,
    stage_features,
)
from emoji_privacy.model_files import find_model_file

GEOM = FeatureGeometry(side=64, units=16.0, cell=4, grid=3)


def test_gradient_channels_follow_edge_direction() -> None:
    img = np.zeros((64, 64), np.uint8)
    img[:, 32:] = 200  # dark -> bright along +x: a vertical edge
    ch = gradient_channels(img, 4)
    assert ch.shape == (64, 64, CHANNELS) and ch.dtype == np.float32
    at_edge = ch[32, 32]
    assert at_edge.argmax() == 0  # direction 0 deg, positive half
    assert at_edge[1] == 0 and at_edge[5] == 0  # nothing pointing -x; 90 deg (y) is perpendicular
    assert at_edge[2] == pytest.approx(at_edge[7], rel=1e-5)  # +45 and -135 see it equally (cos^2 45 deg)
    assert at_edge[2] == pytest.approx(0.5 * at_edge[0], rel=1e-3)
    assert np.all(ch[:, :20] == 0)  # flat image, no energy
    flipped = gradient_channels(np.ascontiguousarray(img[:, ::-1]), 4)
    assert flipped[32, 31].argmax() == 1  # bright -> dark along +x: the negative half


def test_gradient_channels_do_not_depend_on_buffer_addresses() -> None:
    """The same crop gives the same bits wherever the allocator puts the buffers (cv2.magnitude's IPP path
    did not: its bits followed the output's alignment, so the landmarks differed between processes)."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((96, 96)) * 255).astype(np.uint8), (0, 0), 1.0)
    held, outs = [], []
    for k in range(12):  # blocks held between calls move where the next buffers are put
        held += [np.empty(16 * k + 8, np.uint8), np.empty(96 * 96 * 4 + 16 * k, np.uint8)]
        outs.append(gradient_channels(img, 4))
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])


def test_point_descriptors_normalised_and_clipped() -> None:
    rng = np.random.default_rng(0)
    ch = rng.random((64, 64, CHANNELS), dtype=np.float32)
    pts = np.array([[32, 32], [-100, 500]] + [[10, 10]] * 66, np.float32)  # one far outside: clipped, not an error
    d = point_descriptors(ch, pts, GEOM)
    assert d.shape == (68, GEOM.size)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-4)
    # the centre cell of point 0 is the channels at (32, 32)
    centre = ch[32, 32] / np.linalg.norm(ch[(32 + np.array([-4, -4, -4, 0, 0, 0, 4, 4, 4]))[:, None],
                                            (32 + np.array([-4, 0, 4] * 3))[:, None]].reshape(-1))
    np.testing.assert_allclose(d[0].reshape(9, CHANNELS)[4], centre, rtol=1e-4)


def test_frame_transform_maps_origin_to_centre() -> None:
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # eye line along +y in the crop
    m = frame_transform(np.array([100.0, 50.0]), rot, 2.0, GEOM)
    np.testing.assert_allclose(m @ [100.0, 50.0, 1.0], [32.0, 32.0])
    # one normalised unit (2 crop px along the eye line, i.e. +y in the crop) is 16 frame px along +x
    np.testing.assert_allclose(m @ [100.0, 52.0, 1.0], [48.0, 32.0])


def test_fit_stage_recovers_a_linear_move() -> None:
    rng = np.random.default_rng(1)
    n, f = 400, 12
    x = rng.normal(size=(n, 68, f)).astype(np.float32)
    true_w = rng.normal(size=(68, f, 2))
    true_b = rng.normal(size=(68, 2))
    y = np.einsum("npf,pfc->npc", x, true_w) + true_b
    w, b = fit_stage(x, y, 1e-8)
    np.testing.assert_allclose(w, true_w, atol=1e-4)
    np.testing.assert_allclose(b, true_b, atol=1e-4)
    np.testing.assert_allclose(apply_stage(x, w, b), y, atol=1e-3)
    w_strong, _ = fit_stage(x, y, 10.0)  # a strong ridge shrinks the weights
    assert np.abs(w_strong).sum() < 0.5 * np.abs(true_w).sum()


def test_stage_features_layout() -> None:
    desc = np.arange(2 * 68 * 3, dtype=np.float32).reshape(2, 68, 3)
    shapes = np.arange(2 * 68 * 2, dtype=np.float32).reshape(2, 68, 2)
    nb = np.tile(np.array([[0, 1]]), (68, 1))
    nb[5] = (5, 7)
    f = stage_features(desc, shapes, nb)
    assert f.shape == (2, 68, 2 * 3 + 136)
    np.testing.assert_array_equal(f[1, 5, :6], np.concatenate([desc[1, 5], desc[1, 7]]))
    np.testing.assert_array_equal(f[1, 5, 6:], shapes[1].ravel())


def test_model_file_round_trip_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    nb = np.tile(np.arange(4), (68, 1))
    feats = 4 * GEOM.size + 136
    stages = [(rng.normal(scale=1e-3, size=(68, feats, 2)), rng.normal(scale=1e-3, size=(68, 2))) for _ in range(2)]
    path = save_refiner(tmp_path / "r.npz", GEOM, nb, stages)
    ref = LandmarkRefiner(path)
    assert ref.geom == GEOM and ref.weights.shape == (2, 68, feats, 2)
    crop = cv2.GaussianBlur(rng.integers(0, 255, (192, 192), dtype=np.uint8), (0, 0), 2)
    shape = rng.normal(scale=0.8, size=(68, 2))
    out = ref.refine(crop, np.array([96.0, 96.0]), np.eye(2), 30.0, shape)
    assert out.shape == (68, 2) and np.all(np.isfinite(out))
    assert 0 < np.abs(out - shape).max() < 0.5  # tiny random weights: small moves

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ModelFileError, match="fit_facemesh68"):
        LandmarkRefiner(bad)
    wrong = save_refiner(tmp_path / "wrong.npz", GEOM, np.tile(np.arange(5), (68, 1)), stages)  # 5 neighbours
    with pytest.raises(ModelFileError, match="do not fit"):
        LandmarkRefiner(wrong)


def test_shipped_refiner_loads() -> None:
    ref = LandmarkRefiner(find_model_file("facemesh68_refiner"))
    assert len(ref.weights) >= 1 and ref.neighbours.shape[0] == 68
    assert np.all(np.isfinite(ref.weights))
