"""Shared fixtures (the astronaut photo, one pipeline, a real roscore, node launching) and the test tiers' markers.
The data paths (REPO, shared_path, video_frames) are in data_helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoji_privacy.ros import processes


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
# everything; `make test-fast` runs -m "not ros and not browser and not slow". Set here, so test files
# need no decorators; a test added to one of these modules is marked automatically.

ROS_MODULES = {"test_ros_graph.py", "test_replay.py", "test_web_ros.py"}
"""Modules that start roscore and roslaunch graphs, or need the catkin workspace's generated messages."""

ROS_TESTS = {"test_bags.py::test_tools_run_with_rosrun_and_python_m"}  # runs `rosrun` without a skip
"""Single tests elsewhere that need the catkin workspace; any test using the `roscore` fixture is marked too."""

BROWSER_MODULES = {"test_web_browser.py"}
"""Modules that drive chromium through selenium."""

SLOW_TESTS = {
    "test_federated.py::test_deployment_superlink_two_supernodes_secagg",  # 124 s
    "test_federated.py::test_simulation_fedavgm_with_dp_reports_epsilon",  # 27 s
    "test_detection.py::test_blank_tiny_and_huge_frames[centerface]",  # 30 s
    "test_ros_graph.py::test_shared_video_has_no_leaked_face[fer_woman2.mp4]",  # 138 s
    "test_ros_graph.py::test_shared_video_has_no_leaked_face[fer_test.mp4]",  # 31 s
    "test_replay.py::test_round_trip_records_and_evaluates_the_listener",  # 36 s
}
"""Tests over ~15 s: measured with `python3 -m pytest test --durations=0 -q` (through the sourced
workspace, 2 cores, other test runs sharing the machine; whole suite 11.6 min). Every other test took
at most 12 s. An id without [parameters] marks all parametrizations. Re-measure when a test grows."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        ids = {f"{module}::{item.name}", f"{module}::{getattr(item, 'originalname', item.name)}"}
        if module in ROS_MODULES or ids & ROS_TESTS or "roscore" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ros)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
        if ids & SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
