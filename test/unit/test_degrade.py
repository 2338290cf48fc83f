"""The camera degradations the robustness benchmark and the trainer share: reproducible, shape-keeping, and each
doing what its name says (so a benchmark row means what it claims)."""

import numpy as np
import pytest

from emoji_privacy.training.degrade import DEGRADATIONS, degrade, degrade_batch


def _faces(n: int = 6, seed: int = 0) -> np.ndarray:
    """Gray 48x48 'faces' with structure at every scale: smooth shading plus fine checkers."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    base = 80 + 60 * np.sin(xx / 7.0) * np.cos(yy / 9.0) + 30 * ((xx // 2 + yy // 2) % 2)
    return np.clip(base[None] + rng.normal(0, 5, (n, 48, 48)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_each_degradation_is_reproducible_and_keeps_shape(name: str) -> None:
    faces = _faces()
    a, b = degrade(faces, name, seed=3), degrade(faces, name, seed=3)
    assert a.shape == faces.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, faces), f"{name} left the faces as they were"


def test_darkness_scales_levels_and_noise_adds_spread() -> None:
    faces = _faces()
    assert degrade(faces, "dark_x0.35").mean() == pytest.approx(faces.mean() * 0.35, rel=0.02)
    assert degrade(faces, "dark_x0.2").mean() == pytest.approx(faces.mean() * 0.2, rel=0.03)
    assert degrade(faces, "gamma_2.2").mean() < faces.mean() * 0.6
    noisy = degrade(faces, "dark_noise").astype(np.float32)
    plain = faces.astype(np.float32) * 0.25
    residual = noisy - plain
    assert abs(residual.mean()) < 0.5 and 2.5 < residual.std() < 5.0  # shot + read noise of a few levels


@pytest.mark.parametrize("name", ["motion_blur", "defocus", "low_res", "jpeg_q20"])
def test_blurs_remove_fine_detail(name: str) -> None:
    faces = _faces()

    def detail(x: np.ndarray) -> float:  # energy of the pixel-to-pixel differences (the 2 px checkers)
        x = x.astype(np.float32)
        return float(np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=1)).mean())

    assert detail(degrade(faces, name)) < 0.8 * detail(faces)


def test_degrade_batch_degrades_the_share_asked_for() -> None:
    faces = _faces(400)
    rng = np.random.default_rng(0)
    assert np.array_equal(degrade_batch(faces, 0.0, rng), faces)
    changed = (degrade_batch(faces, 0.5, np.random.default_rng(1)) != faces).any(axis=(1, 2)).mean()
    assert 0.4 < changed < 0.6
    assert (degrade_batch(faces, 1.0, np.random.default_rng(2)) != faces).any(axis=(1, 2)).all()


def test_unknown_degradation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown degradation 'fog'"):
        degrade(_faces(1), "fog")
