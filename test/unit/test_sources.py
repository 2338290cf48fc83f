"""Talker frame sources: what opens, what fails, and with which message."""

import cv2
import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy.detection import load_face_detector
from emoji_privacy.errors import SourceError
from emoji_privacy.sources import open_source


def test_demo_scene_shows_three_faces() -> None:
    src = open_source("demo")
    det = load_face_detector("yunet")
    counts = []
    for i in range(150):
        frame = src.read()
        if i % 25 == 0:
            counts.append(len(det.detect(frame)))
    assert frame.shape == (480, 640, 3) and counts == [3] * 6


def test_video_file_and_loop() -> None:
    path = shared_path("data", "videos", "fer_test.mp4")
    src = open_source(str(path), width=320, height=180)
    n = 0
    while (f := src.read()) is not None:
        assert f.shape == (180, 320, 3)
        n += 1
    assert n > 100
    looped = open_source(str(path), loop=True)
    assert all(looped.read() is not None for _ in range(n + 20))


def test_folder(tmp_path, astronaut) -> None:
    cv2.imwrite(str(tmp_path / "b.png"), astronaut)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "c.png").write_bytes(b"broken")
    src = open_source(str(tmp_path))
    assert src.read().shape == (10, 10, 3)
    assert src.read().shape == astronaut.shape
    assert src.read() is None


@pytest.mark.parametrize(("spec", "message"), [
    ("/nonexistent/clip.mp4", "no such file or folder"),
    ("", "empty source"),
    ("57", "/dev/video57 does not exist"),
])
def test_bad_sources(spec, message) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_empty_folder_and_corrupt_video(tmp_path) -> None:
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(bad))
