"""Start and stop helper processes so that nothing outlives them: a process is started in a new session
with its output in a log file, and stopping it stops every descendant, not just its process group (roslaunch,
Ray and Flower's SuperLink put their children in sessions of their own). Used by the ROS helpers
(``ros.processes``), the federated deployment, the demo, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``args`` in a new session with stdout and stderr going to ``log`` (``env``: the whole environment)."""
    with open(log, "w") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd)


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
