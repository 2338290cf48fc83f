"""rviz: `camera.launch rviz:=true` shows the anonymized image filling rviz's window, with the
Fixed Frame (the camera's frame_id) present in TF. Runs the demo graph and rviz under Xvfb, screenshots the
screen (the size of rviz's window) and measures where the image is; the same measurement on the old layout
(the Image dock beside the Displays panel and an empty 3D view) must fail, so the check can fail.

Needs rviz, Xvfb and ImageMagick's `import` (`WITH_RVIZ=1 scripts/setup.sh`); skipped without them."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import REPO

from emoji_privacy import processes

rospy = pytest.importorskip("rospy")
from rosgraph_msgs.msg import Log  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from emoji_privacy.ros.messages import bgr_to_image, image_to_bgr  # noqa: E402

pytestmark = pytest.mark.slow  # ros: set by the folder

WINDOW = (800, 600)
"""rviz's window in config/anonymized.rviz (Width, Height); Xvfb's screen is made exactly this size."""

MIN_FRACTION = 0.7
"""The image must cover at least this share of the window (the layout gives about 0.77 for a 4:3 image)."""

CONFIG = REPO / "config" / "anonymized.rviz"


def image_rect(shot: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the image rviz shows: rviz's own pixels are grey (black letterbox, dark 3D view,
    light chrome, text), the image's are coloured. Rows and columns where at least half as many coloured
    pixels as in the fullest one lie bound the image; icons are too small to count."""
    s = shot.astype(np.int16)
    coloured = (s.max(axis=2) - s.min(axis=2)) >= 12
    rows, cols = coloured.sum(axis=1), coloured.sum(axis=0)
    if rows.max() == 0:
        return (0, 0, 0, 0)
    r, c = np.flatnonzero(rows >= 0.5 * rows.max()), np.flatnonzero(cols >= 0.5 * cols.max())
    return (int(c[0]), int(r[0]), int(c[-1]) + 1, int(r[-1]) + 1)


def fraction(rect: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = rect
    return (x1 - x0) * (y1 - y0) / (WINDOW[0] * WINDOW[1])


def difference(shot: np.ndarray, rect: tuple[int, int, int, int], frames: list[np.ndarray]) -> float:
    """Mean absolute difference (0-255) between the shown image and the closest of ``frames``."""
    x0, y0, x1, y1 = rect
    crop = shot[y0:y1, x0:x1].astype(np.float32)
    if crop.size == 0:
        return 255.0
    return min(float(np.abs(cv2.resize(f, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) - crop).mean())
               for f in frames)


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory):
    """An Xvfb screen the size of rviz's window; yields its DISPLAY."""
    missing = [t for t in ("rviz", "Xvfb", "import") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (rviz, xvfb, imagemagick: WITH_RVIZ=1 scripts/setup.sh)")
    log = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    # -displayfd 1: Xvfb picks a free display and writes its number to stdout (the log)
    proc = processes.start(["Xvfb", "-displayfd", "1", "-screen", "0", f"{WINDOW[0]}x{WINDOW[1]}x24",
                            "-nolisten", "tcp"], log)
    deadline = time.time() + 20
    number = None
    while number is None and time.time() < deadline and proc.poll() is None:
        number = next((line for line in log.read_text().splitlines() if line.strip().isdigit()), None)
        time.sleep(0.1)
    if number is None:
        processes.stop(proc)
        pytest.fail(f"Xvfb did not start; log:\n{log.read_text()[-2000:]}")
    yield f":{number.strip()}"
    processes.stop(proc)


def use_display(monkeypatch: pytest.MonkeyPatch, display: str) -> None:
    """Point the nodes started from here at ``display``. Importing cv2 (opencv-python) sets
    QT_QPA_PLATFORM_PLUGIN_PATH to its own Qt plugins; rviz started with it aborts (no platform plugin)."""
    monkeypatch.setenv("DISPLAY", display)
    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        monkeypatch.delenv(var, raising=False)


def screenshot(display: str, path: Path) -> np.ndarray:
    subprocess.run(["import", "-display", display, "-window", "root", str(path)], check=True, timeout=30)
    return cv2.imread(str(path))


class Frames:
    """The latest frames of /anonymized/image, and rviz's warnings and errors on /rosout."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.warnings: list[str] = []
        self.lock = threading.Lock()
        self.subs = [rospy.Subscriber("/anonymized/image", Image, self._image, queue_size=5, buff_size=2 ** 24),
                     rospy.Subscriber("/rosout", Log, self._log, queue_size=100)]

    def _image(self, msg: Image) -> None:
        frame = image_to_bgr(msg).astype(np.float32)
        with self.lock:
            self.frames = [*self.frames[-29:], frame]

    def _log(self, msg: Log) -> None:
        if "rviz" in msg.name and msg.level >= Log.WARN:
            with self.lock:
                self.warnings.append(f"{msg.name}: {msg.msg}")

    def latest(self) -> list[np.ndarray]:
        with self.lock:
            return list(self.frames)

    def close(self) -> None:
        for s in self.subs:
            s.unregister()


def wait_for_image(display: str, tmp_path: Path, frames: Frames, proc, timeout: float,
                   until: callable) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Screenshot every second until rviz shows a frame (``until(fraction, difference)``) or ``timeout``."""
    deadline = time.time() + timeout
    while True:
        shot = screenshot(display, tmp_path / "shot.png")
        rect = image_rect(shot)
        diff = difference(shot, rect, frames.latest() or [np.zeros((1, 1, 3), np.float32)])
        if until(fraction(rect), diff) or time.time() > deadline:
            return shot, rect, diff
        assert proc.proc.poll() is None, f"exited early; log:\n{proc.output()[-3000:]}"
        time.sleep(1.0)


def test_demo_in_rviz_fills_the_window_and_its_fixed_frame_is_in_tf(launch, display, tmp_path, monkeypatch) -> None:
    from tf2_msgs.msg import TFMessage

    use_display(monkeypatch, display)
    tf_static: list = []
    tf_sub = rospy.Subscriber("/tf_static", TFMessage, tf_static.append, queue_size=10)
    frames = Frames()
    proc = launch("roslaunch", "emoji_privacy", "camera.launch", "source:=demo", "rate:=10", "rviz:=true")
    try:
        shot, rect, diff = wait_for_image(display, tmp_path, frames, proc, 60,
                                          lambda f, d: f >= MIN_FRACTION and d < 25)
        cv2.imwrite(str(tmp_path / "rviz.png"), shot)
        assert fraction(rect) >= MIN_FRACTION, (
            f"the image covers {fraction(rect):.0%} of rviz's window at {rect}, want >= {MIN_FRACTION:.0%}; "
            f"screenshot {tmp_path / 'rviz.png'}; log:\n{proc.output()[-2000:]}")
        assert diff < 25, f"what rviz shows at {rect} is not the anonymized frame (mean difference {diff:.1f})"
        # the Fixed Frame is the camera's frame_id (rviz -f); it exists in TF as the parent of a latched transform
        parents = {t.header.frame_id for m in tf_static for t in m.transforms}
        assert "camera" in parents, f"no transform from 'camera' on /tf_static ({parents}); rviz would say No TF data"
        assert not frames.warnings, f"rviz warned: {frames.warnings}"
    finally:
        tf_sub.unregister()
        frames.close()


def old_layout(config: str) -> str:
    """The layout before the fix: rviz's default dock layout (the Image dock above the Displays panel on the
    left, the empty 3D view taking the rest), what the config gives without its saved window state."""
    config = re.sub(r"\n  QMainWindow State: \w+", "", config)
    return config.replace("Hide Left Dock: true", "Hide Left Dock: false").replace(
        "  Displays:\n    collapsed: true", "  Displays:\n    collapsed: false")


def test_the_measurement_fails_on_the_old_layout(launch, display, tmp_path, monkeypatch) -> None:
    use_display(monkeypatch, display)
    cfg = tmp_path / "old_layout.rviz"
    cfg.write_text(old_layout(CONFIG.read_text()))
    assert cfg.read_text() != CONFIG.read_text()
    frame = np.zeros((480, 640, 3), np.uint8)  # a colourful test card, so that every image row counts
    frame[..., 0] = np.linspace(0, 255, 640)[None]
    frame[..., 1] = np.linspace(0, 255, 480)[:, None]
    frame[..., 2] = 200
    pub = rospy.Publisher("/anonymized/image", Image, queue_size=1)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            pub.publish(bgr_to_image(frame, rospy.Header(stamp=rospy.Time.now(), frame_id="camera")))
            stop.wait(0.2)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    frames = Frames()
    proc = launch("rosrun", "rviz", "rviz", "-d", str(cfg), "-f", "camera")
    try:
        shot, rect, diff = wait_for_image(display, tmp_path, frames, proc, 45, lambda f, d: f > 0.01 and d < 25)
        cv2.imwrite(str(tmp_path / "old_layout.png"), shot)
        assert diff < 25 and fraction(rect) > 0.01, f"rviz never showed the test card; got {rect}, diff {diff:.1f}"
        assert fraction(rect) < MIN_FRACTION, f"the old layout measured {fraction(rect):.0%}: the check cannot fail"
    finally:
        stop.set()
        thread.join()
        pub.unregister()
        frames.close()
