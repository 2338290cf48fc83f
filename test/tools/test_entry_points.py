"""Every command a user can start: each `nodes/*` and `scripts/*` entry point answers `--help` (or, for
the ROS nodes that take only private parameters, imports everything it needs), so that a broken import
fails the quick tier instead of a user's first run."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import REPO

ROS_NODES = {"camera_talker", "emoji_anonymizer", "replay_bag"}  # private parameters only: no --help
SHELL_SCRIPTS = {"setup.sh": "every make target runs it first", "catkin_tests.sh": "`make test` runs it"}
ARGPARSE = sorted(
    [p for p in (REPO / "nodes").iterdir() if p.name not in ROS_NODES]
    + [p for p in (REPO / "scripts").iterdir() if p.name not in SHELL_SCRIPTS],
    key=lambda p: p.name,
)


def test_every_entry_point_is_listed_here() -> None:
    listed = {p.name for p in ARGPARSE} | ROS_NODES | set(SHELL_SCRIPTS)
    on_disk = {p.name for d in ("nodes", "scripts") for p in (REPO / d).iterdir() if p.is_file()}
    assert on_disk == listed


@pytest.mark.parametrize("path", ARGPARSE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help(path: Path) -> None:
    r = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage: "), r.stdout[:300]


@pytest.mark.parametrize("name", sorted(ROS_NODES))
def test_ros_node_imports(name: str) -> None:
    """Runs the node's file up to (not into) main(): every import at its top, rospy and the generated
    messages included."""
    pytest.importorskip("rospy", reason="ROS 1 (rospy) is not installed")
    if not os.environ.get("ROS_PACKAGE_PATH"):
        pytest.skip("the catkin workspace is not sourced (run through `make test`)")
    namespace = runpy.run_path(str(REPO / "nodes" / name), run_name="entry_point_check")
    assert callable(namespace["main"])


@pytest.mark.parametrize("name", sorted(SHELL_SCRIPTS))
def test_shell_script_parses(name: str) -> None:
    r = subprocess.run(["bash", "-n", str(REPO / "scripts" / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("module", ["emoji_privacy", "emoji_privacy.web", "emoji_privacy.training",
                                    "emoji_privacy.federated"])
def test_python_m_help(module: str) -> None:
    args = [sys.executable, "-m", module, *(["anonymize"] if module == "emoji_privacy" else []), "--help"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: "), r.stderr[-2000:]


@pytest.mark.parametrize("tool", ["video_to_bag", "bag", "emotion", "landmarks", "crowd"])
def test_evaluation_tool_help(tool: str) -> None:
    r = subprocess.run([sys.executable, "-m", "emoji_privacy.evaluation", tool, "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: "), r.stderr[-2000:]
