"""A real Ray cluster of two nodes on loopback for the fleet tests: `ray start --head` and a second
`ray start --address`, one CPU each, each with a temporary folder of its own so that the tests stop exactly
their own processes (never `ray stop`, which stops every Ray process of the machine)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str) -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    r = subprocess.run(["ray", "start", *args, "--disable-usage-stats"], capture_output=True, text=True,
                       timeout=START_TIMEOUT_S, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed: {r.stderr[-2000:]}")


def _read(pid: str, what: str) -> str:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _opens(pid: str, folder: str) -> bool:
    """Whether process ``pid`` has a file under ``folder`` open (a node's logs, sockets)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def pids_of(folder: str, port: int | None = None) -> list[int]:
    """A node's Ray processes: those whose command line names ``folder`` (its temporary folder) or, for the
    head, its GCS ``port`` (the Ray Client server), and those with a file under ``folder`` open (the agents its
    raylet started rename themselves, ray::DashboardAgent, but write their logs there)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        cmd = _read(d, "cmdline").replace("\0", " ") + " "
        if "pytest" in cmd:
            continue
        if folder in cmd or (port is not None and f":{port} " in cmd) or _opens(d, folder):
            out.append(int(d))
    return out


def kill(folder: str, sig: int = signal.SIGKILL, port: int | None = None) -> int:
    pids = pids_of(folder, port)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)


@dataclass
class LocalCluster:
    """Two Ray nodes on this machine; ``address`` for --ray."""

    port: int = field(default_factory=_free_port)
    head_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    node_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rn", dir="/tmp"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalCluster:
        # short folders under /tmp: Ray's socket paths must stay under the 107 characters a Unix socket takes
        _ray("--head", "--num-cpus", "1", "--port", str(self.port), "--include-dashboard", "false",
             "--temp-dir", self.head_dir, "--object-store-memory", str(200 * 2 ** 20))
        self.add_node()
        return self

    def add_node(self) -> None:
        _ray("--address", self.address, "--num-cpus", "1", "--temp-dir", self.node_dir,
             "--object-store-memory", str(200 * 2 ** 20))

    def kill_second_node(self) -> int:
        """The second node's machine lost: every process of it killed at once."""
        return kill(self.node_dir)

    def stop(self) -> None:
        for folder, port in ((self.node_dir, None), (self.head_dir, self.port)):
            kill(folder, signal.SIGTERM, port)
        time.sleep(2)
        for folder, port in ((self.node_dir, None), (self.head_dir, self.port)):
            kill(folder, port=port)
