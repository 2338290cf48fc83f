"""Tests of emoji drawing and face covering: the privacy guarantee is that no pixel of the face disk survives."""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from emoji_privacy import EMOTIONS
from emoji_privacy.emoji import EmojiRenderer
from emoji_privacy.errors import ConfigError
from emoji_privacy.evaluation.report import contact_sheet

UNIQUE = np.array([1, 2, 3], np.uint8)  # a color no emoji uses


@pytest.fixture(scope="module")
def renderer() -> EmojiRenderer:
    return EmojiRenderer()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The astronaut photo, BGR, halved to 256 x 256 to keep the many cover checks fast."""
    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (256, 256), interpolation=cv2.INTER_AREA)


def disk(shape: tuple[int, ...], center: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2


def flat(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(UNIQUE, (*shape[:2], 3)).copy()


def assert_covered(r: EmojiRenderer, photo: np.ndarray, center, radius, roll, emotion) -> None:
    inside = disk(photo.shape, center, radius)
    f = flat(photo.shape)
    r.cover(f, center, radius, roll, emotion)
    assert not np.all(f[inside] == UNIQUE, axis=1).any(), (center, radius, roll, emotion)
    # Opaque pixels do not depend on what was underneath: the photo must be replaced, not blended.
    p = photo.copy()
    r.cover(p, center, radius, roll, emotion)
    np.testing.assert_array_equal(p[inside], f[inside])
    # Outside the emoji's reach nothing changes.
    far = ~disk(photo.shape, center, radius + 8)
    np.testing.assert_array_equal(p[far], photo[far])


@pytest.mark.parametrize("emotion", range(len(EMOTIONS)))
def test_cover_disk_fully_replaced(renderer: EmojiRenderer, photo: np.ndarray, emotion: int) -> None:
    centers = [(128.0, 128.0), (50.3, 200.7), (18.5, 6.25)]
    for center, radius, roll in itertools.product(centers, (3, 20, 87.5, 300), (0, 17, -45, 90)):
        assert_covered(renderer, photo, center, radius, roll, emotion)


def test_cover_random_subpixel_geometry(renderer: EmojiRenderer) -> None:
    rng = np.random.default_rng(1)
    shape = (120, 160)
    for _ in range(300):
        center = (rng.uniform(-30, 190), rng.uniform(-30, 150))
        radius = float(rng.choice([rng.uniform(0, 4), rng.uniform(4, 80), rng.uniform(250, 700)]))
        f = flat(shape)
        renderer.cover(f, center, radius, rng.uniform(-180, 180), int(rng.integers(7)))
        assert not np.all(f[disk(shape, center, radius)] == UNIQUE, axis=1).any(), (center, radius)


def test_cover_edge_cases(renderer: EmojiRenderer) -> None:
    shape = (60, 80)
    # Partly outside, centre negative.
    f = flat(shape)
    renderer.cover(f, (-10.5, -5.0), 30, 30, 0)
    assert not np.all(f[disk(shape, (-10.5, -5.0), 30)] == UNIQUE, axis=1).any()
    # Fully outside: frame untouched.
    for center in [(-200.0, 30.0), (500.0, 30.0), (40.0, -1e9), (1e12, 1e12)]:
        f = flat(shape)
        renderer.cover(f, center, 20, 10, 1)
        assert np.all(f == UNIQUE)
    # Tiny radius: the centre pixel is still covered.
    for radius in (0.0, 0.5, 1.9):
        f = flat(shape)
        renderer.cover(f, (40.0, 30.0), radius, 0, 2)
        assert not np.array_equal(f[30, 40], UNIQUE)
    # Radius far larger than the frame: everything covered, cheaply.
    for radius in (100.0, 5000.0, 1e6):
        f = flat(shape)
        renderer.cover(f, (40.0, 30.0), radius, 45, 3)
        assert not np.all(f == UNIQUE, axis=2).any()
    with pytest.raises(ValueError):
        renderer.cover(flat(shape), (math.nan, 1.0), 10, 0, 0)
    with pytest.raises(ValueError):
        renderer.cover(flat(shape), (1.0, 1.0), 10, 0, 7)


def test_rotation_matches_cv2_convention(renderer: EmojiRenderer) -> None:
    """roll_deg uses the sign of cv2.getRotationMatrix2D (counter-clockwise on screen)."""
    radius, d = 40.0, 84  # 84 is a cached size and 2r + 4 == 84, so cover() warps at scale 1
    c = (d - 1) / 2.0
    ref_sprite = renderer.sprite(5 - 1, d)  # sad: the tear makes it asymmetric
    for roll in (90.0, -90.0, 180.0):
        m = cv2.getRotationMatrix2D((c, c), roll, 1.0)
        ref = cv2.warpAffine(ref_sprite, m, (d, d), flags=cv2.INTER_LINEAR)
        f = np.zeros((d + 20, d + 20, 3), np.uint8)
        renderer.cover(f, (10 + c, 10 + c), radius, roll, 4)
        out = f[10:10 + d, 10:10 + d]
        opaque = ref[:, :, 3] == 255
        diff = np.abs(out[opaque].astype(int) - ref[:, :, :3][opaque].astype(int))
        assert diff.max() <= 2, roll


def test_sprite_disk_fills_sprite(renderer: EmojiRenderer) -> None:
    for d in (1, 2, 7, 8, 33, 128):
        s = renderer.sprite(3, d)
        assert s.shape == (d, d, 4) and s.dtype == np.uint8
        c = (d - 1) / 2.0
        yy, xx = np.mgrid[:d, :d]
        full = np.hypot(xx - c, yy - c) <= d / 2.0 - 0.5
        assert np.all(s[:, :, 3][full] == 255)
        assert np.all(s[:, :, 3][np.hypot(xx - c, yy - c) >= d / 2.0 + 0.5] == 0)
    assert renderer.sprite(3, 64) is renderer.sprite(3, 64)  # cached


def test_emoji_are_distinct(renderer: EmojiRenderer) -> None:
    sprites = [renderer.sprite(i, 96)[:, :, :3].astype(np.float32) for i in range(len(EMOTIONS))]
    for i, j in itertools.combinations(range(len(EMOTIONS)), 2):
        assert np.abs(sprites[i] - sprites[j]).mean() > 6.0, (EMOTIONS[i], EMOTIONS[j])


def test_user_png_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    happy = np.zeros((50, 50, 4), np.uint8)
    happy[...] = (0, 200, 0, 255)  # opaque green square
    sad = np.zeros((40, 90, 4), np.uint8)  # wide, mostly transparent: a thin blue bar
    sad[18:22, :] = (255, 0, 0, 255)
    cv2.imwrite(str(tmp_path / "happy.png"), happy)
    cv2.imwrite(str(tmp_path / "sad.png"), sad)
    cv2.imwrite(str(tmp_path / "neutral.png"), np.full((30, 30, 3), 77, np.uint8))  # RGB without alpha
    with caplog.at_level(logging.WARNING, logger="emoji_privacy.emoji"):
        r = EmojiRenderer(str(tmp_path))
    assert "angry" in caplog.text and "happy" not in caplog.text
    assert tuple(r.sprite(EMOTIONS.index("happy"), 64)[32, 32]) == (0, 200, 0, 255)
    assert tuple(r.sprite(EMOTIONS.index("neutral"), 64)[32, 32]) == (77, 77, 77, 255)
    drawn = EmojiRenderer().sprite(0, 64)
    np.testing.assert_array_equal(r.sprite(0, 64), drawn)  # missing -> drawn fallback
    shape = (100, 120)
    for emotion in ("happy", "sad", "neutral"):
        for roll in (0, 33, 90):
            f = flat(shape)
            r.cover(f, (60.5, 50.25), 30, roll, EMOTIONS.index(emotion))
            assert not np.all(f[disk(shape, (60.5, 50.25), 30)] == UNIQUE, axis=1).any(), emotion


def test_user_png_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        EmojiRenderer(str(tmp_path / "nope"))
    (tmp_path / "fear.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="fear.png"):
        EmojiRenderer(str(tmp_path))


def test_mask_leaves_nothing(photo: np.ndarray) -> None:
    from emoji_privacy.fail_closed import mask_in_place, masked_frame

    f = photo.copy()
    mask_in_place(f)
    assert np.isin(f, (96, 160)).all() and np.all(f[:, :, 0] == f[:, :, 1])
    assert np.array_equal(f, masked_frame(*photo.shape[:2]))
    g = flat((31, 45))
    mask_in_place(g)
    assert not np.all(g == UNIQUE, axis=2).any()


def test_contact_sheet(photo: np.ndarray) -> None:
    small = cv2.resize(photo, (200, 100))
    sheet = contact_sheet([(photo, photo), (small, cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))], width=640)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[1] == 640
    with pytest.raises(ValueError):
        contact_sheet([])


def test_emoji_sheet_on_white(renderer: EmojiRenderer, tmp_path: Path) -> None:
    """All 7 emoji at 128 px on white, side by side (written under tmp_path for a visual check): each tile's
    corners are the white background (the sprite is transparent outside its disk), its centre is drawn, no two
    tiles are alike, and the PNG reads back unchanged."""
    tiles = []
    for i in range(len(EMOTIONS)):
        s = renderer.sprite(i, 128).astype(np.float32)
        a = s[:, :, 3:] / 255.0
        tiles.append((s[:, :, :3] * a + 255.0 * (1.0 - a)).astype(np.uint8))
    sheet = np.hstack(tiles)
    assert sheet.shape == (128, 128 * len(EMOTIONS), 3)
    for i, tile in enumerate(tiles):
        assert np.array_equal(sheet[:, 128 * i:128 * (i + 1)], tile), f"tile {i} in its place"
        corners = np.concatenate([tile[:6, :6], tile[:6, -6:], tile[-6:, :6], tile[-6:, -6:]])
        assert (corners == 255).all(), f"{EMOTIONS[i]}: the corners show the white background"
        assert (tile[44:84, 44:84] != 255).any(axis=2).mean() > 0.5, f"{EMOTIONS[i]}: the face is drawn"
    assert len({t.tobytes() for t in tiles}) == len(EMOTIONS), "seven different emoji"
    path = tmp_path / "emoji_sheet.png"
    assert cv2.imwrite(str(path), sheet)
    assert np.array_equal(cv2.imread(str(path)), sheet)
