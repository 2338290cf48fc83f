"""Start and stop helper processes (roscore, roslaunch, rosbag) for the demo, tests and
benchmarks, so that nothing outlives them: roslaunch puts each node in its own session, so
stopping a launch means stopping every descendant, not just a process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def tool_args(argv: list[str] | None = None) -> list[str]:
    """The command-line arguments of a tool started by rosrun or roslaunch, without the ROS ones.

    roslaunch appends ``__name:=...`` and ``__log:=...``, and either may pass remappings ``from:=to``
    or private parameters ``_name:=value``: every argument holding ``:=`` goes, exactly what
    ``rospy.myargv()`` does, but without importing rospy (the tools work without ROS, and need not
    start its machinery to parse their options). ``argv``: default ``sys.argv[1:]``.
    """
    return [a for a in (sys.argv[1:] if argv is None else argv) if ":=" not in a]


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``args`` in a new session with stdout and stderr going to ``log`` (``env``: the whole environment)."""
    with open(log, "w") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd)


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


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from /proc), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(0), [])
        out += kids
        todo += kids
    return out


def _signal(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT ``proc`` and its descendants, wait, then SIGKILL whatever is left."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        _signal([proc.pid], signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.time() + 5.0
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in tree):
        _signal(tree, signal.SIGINT)
        time.sleep(0.2)
    _signal([proc.pid, *tree], signal.SIGKILL)
    proc.wait()


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
