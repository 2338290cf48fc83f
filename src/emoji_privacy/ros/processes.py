"""ROS processes for the demo, tests and benchmarks: roscore on a free port, waiting for a graph's
subscriptions, and the arguments of a tool started by rosrun. Starting and stopping any process (so that
nothing outlives it) is ``emoji_privacy.processes``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..processes import free_port, start, stop


def tool_args(argv: list[str] | None = None) -> list[str]:
    """The command-line arguments of a tool started by rosrun or roslaunch, without the ROS ones.

    roslaunch appends ``__name:=...`` and ``__log:=...``, and either may pass remappings ``from:=to``
    or private parameters ``_name:=value``: every argument holding ``:=`` goes, exactly what
    ``rospy.myargv()`` does, but without importing rospy (the tools work without ROS, and need not
    start its machinery to parse their options). ``argv``: default ``sys.argv[1:]``.
    """
    return [a for a in (sys.argv[1:] if argv is None else argv) if ":=" not in a]


def start_roscore(log: Path, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start roscore on a free port, point ``ROS_MASTER_URI`` at it, and wait until it answers.

    Raises RuntimeError (after stopping it) when it is not up within ``timeout`` seconds.
    """
    import rosgraph

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    os.environ["ROS_MASTER_URI"] = uri
    proc = start(["roscore", "-p", str(port)], log)
    deadline = time.time() + timeout
    while not rosgraph.is_master_online(uri):
        if time.time() > deadline or proc.poll() is not None:
            stop(proc)
            raise RuntimeError(f"roscore did not start on port {port}; see {log}")
        time.sleep(0.2)
    return proc, uri


def missing_subscriptions(wanted: list[tuple[str, str]], caller: str = "/emoji_privacy_wait") -> list[tuple[str, str]]:
    """The (node, topic) pairs of ``wanted`` whose node does not subscribe to the topic yet
    (names fully resolved), asked from the ROS master."""
    import rosgraph

    _, subscriptions, _ = rosgraph.Master(caller).getSystemState()
    subscribers = {topic: set(nodes) for topic, nodes in subscriptions}
    return [(node, topic) for node, topic in wanted if node not in subscribers.get(topic, ())]


def wait_for_subscriptions(wanted: list[tuple[str, str]], timeout: float, should_stop: callable = lambda: False,
                           caller: str = "/emoji_privacy_wait") -> list[tuple[str, str]]:
    """Wait until every (node, topic) pair of ``wanted`` is subscribed; returns those still
    missing after ``timeout`` seconds (empty when all are there)."""
    deadline = time.time() + timeout
    missing = missing_subscriptions(wanted, caller)
    while missing and time.time() < deadline and not should_stop():
        time.sleep(0.1)
        missing = missing_subscriptions(wanted, caller)
    return missing
