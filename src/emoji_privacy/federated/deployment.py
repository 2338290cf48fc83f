"""A real Flower deployment on this machine: one SuperLink and one SuperNode per client, as processes.

The same three programs a fleet runs (``flower-superlink`` on the aggregator, ``flower-supernode``
on each robot, ``flwr run`` from an operator's laptop), here over loopback without TLS. It is the
smoke test of a deployment before robots join, and what the tests use; the README shows the
multi-machine commands with TLS and SuperNode authentication.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..model_files import REPO_ROOT
from ..ros import processes

__all__ = ["LoopbackFederation", "APP_DIR", "toml_run_config"]

APP_DIR = REPO_ROOT / "config" / "flower"


def toml_run_config(run_config: dict[str, Any]) -> str:
    """``k=v`` pairs as ``flwr run --run-config`` parses them (TOML values)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(str(v))  # a TOML basic string

    return " ".join(f"{k}={value(v)}" for k, v in run_config.items())


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flower-superlink exited with {proc.returncode}; see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"flower-superlink did not listen on port {port} within {timeout:.0f} s; see {log}")


class LoopbackFederation:
    """``with LoopbackFederation(client_dirs, work) as fed: fed.run({...})`` -> the run folder."""

    def __init__(self, client_dirs: list[Path], work: Path, startup_timeout: float = 60.0):
        if not client_dirs:
            raise ValueError("a federation needs at least one client folder")
        self.client_dirs = [Path(d).resolve() for d in client_dirs]
        self.work = Path(work).resolve()
        self.startup_timeout = startup_timeout
        self.procs: list[subprocess.Popen] = []
        self.port = processes.free_port()
        self.env = dict(os.environ, FLWR_HOME=str(self.work / "flwr_home"))

    def __enter__(self) -> LoopbackFederation:
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\naddress = "127.0.0.1:{self.port}"\n'
            f"insecure = true\n")
        try:
            link_log = self.work / "superlink.log"
            link = self._start(["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(self.port),
                                "--database", str(self.work / "superlink.db"),
                                "--disable-runtime-dependency-installation"], link_log)
            _wait_port(self.port, link, link_log, self.startup_timeout)
            for i, d in enumerate(self.client_dirs):
                self._start(["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                             "--port", str(processes.free_port()),
                             "--node-config", f"data-dir={json.dumps(str(d))} partition-id={i}"],
                            self.work / f"supernode_{i}.log")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, args: list[str], log: Path) -> subprocess.Popen:
        proc = processes.start(args, log, env=self.env, cwd=self.work)
        self.procs.append(proc)
        return proc

    def run(self, run_config: dict[str, Any], timeout: float = 1800.0) -> Path:
        """``flwr run`` the app and wait for it; the run folder the ServerApp wrote."""
        rc = {"min-clients": len(self.client_dirs), **run_config}
        log = self.work / "flwr_run.log"
        with open(log, "w") as f:
            proc = subprocess.run(["flwr", "run", str(APP_DIR), "loopback", "--run-config", toml_run_config(rc),
                                   "--stream"], stdout=f, stderr=subprocess.STDOUT, env=self.env, timeout=timeout,
                                  check=False, cwd=self.work)
        text = log.read_text(errors="replace")
        saved = [ln.split("saved ", 1)[1].strip() for ln in text.splitlines() if "[federated] kept round" in ln]
        if proc.returncode or not saved:
            raise RuntimeError(f"flwr run failed (exit {proc.returncode}); see {log} and the SuperLink/SuperNode "
                               f"logs in {self.work}")
        return Path(saved[-1])

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            processes.stop(proc)
        self.procs.clear()
