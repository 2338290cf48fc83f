"""Shared fixtures (the astronaut photo, one pipeline, a real roscore, node launching) and the test tiers' markers.
The data paths (REPO, shared_path, video_frames) are in data_helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoji_privacy import processes
from emoji_privacy.ros.processes import start_roscore


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def pipeline():
    from emoji_privacy.pipeline import Anonymizer

    return Anonymizer()


@pytest.fixture(scope="session")
def roscore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real roscore on a free port, and rospy initialised against it."""
    pytest.importorskip("rosgraph", reason="ROS 1 (rosgraph) is not installed")
    if not os.environ.get("ROS_PACKAGE_PATH"):
        pytest.skip("the catkin workspace is not sourced (run through `make test`)")
    os.environ.setdefault("ROS_HOME", str(tmp_path_factory.mktemp("ros_home")))
    try:
        proc, uri = start_roscore(tmp_path_factory.mktemp("roscore") / "roscore.log")
    except RuntimeError as e:
        pytest.fail(str(e))
    import rospy

    rospy.init_node("emoji_privacy_tests", anonymous=True, disable_signals=True)
    yield uri
    rospy.signal_shutdown("tests done")
    processes.stop(proc)


class Launched:
    """A roslaunch/rosrun process; it and every node it started are stopped at teardown."""

    def __init__(self, args: list[str], log_path: Path, cwd: Path | None = None) -> None:
        self.log_path = log_path
        env = dict(os.environ, PWD=str(cwd)) if cwd else None  # as a shell in that folder sets it
        self.proc = processes.start(args, log_path, env=env, cwd=cwd)

    def stop(self) -> None:
        processes.stop(self.proc)

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def launch(roscore: str, tmp_path: Path) -> Iterator:
    started: list[Launched] = []

    def start(*args: str, cwd: Path | None = None) -> Launched:
        p = Launched(list(args), tmp_path / f"launch{len(started)}.log", cwd)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


# --- Test tiers: the markers `ros`, `browser`, `slow` (registered in pyproject.toml). `make test` runs
# everything; `make test-fast` runs -m "not ros and not browser and not slow". `ros` and `browser` are set
# here by folder (a test added under test/ros or test/web/browser is marked without a decorator) and by
# fixture; `slow` and a single test's `ros` elsewhere are decorators in the test's own file.

TEST_DIR = Path(__file__).resolve().parent
FOLDER_MARKERS = {"ros": "ros", "web/browser": "browser"}
"""test/<folder> (and every folder below it) -> the marker each of its tests gets."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(item.path).resolve().parent.relative_to(TEST_DIR).as_posix()
        except ValueError:  # a test outside test/
            folder = ""
        for prefix, marker in FOLDER_MARKERS.items():
            if folder == prefix or folder.startswith(prefix + "/"):
                item.add_marker(marker)
        if "roscore" in getattr(item, "fixturenames", ()):  # any test that starts a roscore, wherever it is
            item.add_marker(pytest.mark.ros)
