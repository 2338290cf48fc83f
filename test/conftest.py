"""Shared fixtures: real data paths (skip when absent), a real roscore, node launching."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoji_privacy.ros import processes

REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """A file under ../shared beside this checkout (or $EMOJI_PRIVACY_SHARED), or skip saying which is missing."""
    env = os.environ.get("EMOJI_PRIVACY_SHARED")
    base = Path(env) if env else REPO.parent / "shared"
    if not base.is_dir():
        pytest.skip("shared data folder (../shared or $EMOJI_PRIVACY_SHARED) is absent")
    p = base.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def video_frames(name: str, step: int = 10, limit: int = 10) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("data", "videos", name)))
    frames, i = [], 0
    while len(frames) < limit:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    return frames


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
        proc, uri = processes.start_roscore(tmp_path_factory.mktemp("roscore") / "roscore.log")
    except RuntimeError as e:
        pytest.fail(str(e))
    import rospy

    rospy.init_node("emoji_privacy_tests", anonymous=True, disable_signals=True)
    yield uri
    rospy.signal_shutdown("tests done")
    processes.stop(proc)


class Launched:
    """A roslaunch/rosrun process; it and every node it started are stopped at teardown."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.proc = processes.start(args, log_path)

    def stop(self) -> None:
        processes.stop(self.proc)

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def launch(roscore: str, tmp_path: Path) -> Iterator:
    started: list[Launched] = []

    def start(*args: str) -> Launched:
        p = Launched(list(args), tmp_path / f"launch{len(started)}.log")
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
