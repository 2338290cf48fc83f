"""A real Flower deployment on this machine: one SuperLink and one SuperNode per client, as processes.

The same three programs a fleet runs (``flower-superlink`` on the aggregator, ``flower-supernode``
on each robot, ``flwr run`` from an operator's laptop), here over loopback, by default with the
fleet's security too: TLS under a fresh CA and SuperNode authentication (each SuperNode's key
registered with ``flwr supernode register`` before it starts; an unregistered one is refused). It is
the smoke test of a deployment before robots join, and what the tests use; docs/federated.md shows the
multi-machine commands, which take the same flags and files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import processes
from ..model_files import REPO_ROOT
from .credentials import Credentials, write_credentials

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
    """``with LoopbackFederation(client_dirs, work) as fed: fed.run({...})`` -> the run folder.

    ``secure`` (default): TLS and SuperNode authentication with credentials made in ``work/credentials-*``
    (robot<i>.key / .pub per client folder); False: ``--insecure`` everywhere, as on a closed lab network."""

    def __init__(self, client_dirs: list[Path], work: Path, startup_timeout: float = 60.0, secure: bool = True):
        if not client_dirs:
            raise ValueError("a federation needs at least one client folder")
        self.client_dirs = [Path(d).resolve() for d in client_dirs]
        self.work = Path(work).resolve()
        self.startup_timeout = startup_timeout
        self.secure = secure
        self.creds: Credentials | None = None
        self.procs: list[subprocess.Popen] = []
        self.port = processes.free_port()
        self.env = dict(os.environ, FLWR_HOME=str(self.work / "flwr_home"))

    def __enter__(self) -> LoopbackFederation:
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        link_args = ["flower-superlink", "--host", "127.0.0.1", "--port", str(self.port),
                     "--database", str(self.work / "superlink.db"), "--disable-runtime-dependency-installation"]
        if self.secure:
            # fresh credentials per federation (they are never overwritten; the work folder may be reused)
            folder = Path(tempfile.mkdtemp(prefix="credentials-", dir=self.work))
            self.creds = write_credentials(folder, hosts=["127.0.0.1", "localhost"],
                                           nodes=[f"robot{i}" for i in range(len(self.client_dirs))])
            link_args += ["--ssl-ca-certfile", str(self.creds.ca_cert), "--ssl-certfile", str(self.creds.server_cert),
                          "--ssl-keyfile", str(self.creds.server_key), "--enable-supernode-auth"]
            security = f"root-certificates = {json.dumps(str(self.creds.ca_cert))}"
        else:
            link_args.append("--insecure")
            security = "insecure = true"
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\naddress = "127.0.0.1:{self.port}"\n'
            f"{security}\n")
        try:
            link_log = self.work / "superlink.log"
            link = self._start(link_args, link_log)
            _wait_port(self.port, link, link_log, self.startup_timeout)
            for i, d in enumerate(self.client_dirs):
                key = None
                if self.creds is not None:
                    key, pub = self.creds.node_keys[f"robot{i}"]
                    self.register(pub)
                self.start_supernode(d, i, key)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def register(self, public_key: Path) -> None:
        """``flwr supernode register``: the operator admits one robot's key (secure federations only)."""
        out = subprocess.run(["flwr", "supernode", "register", str(public_key), "loopback"], capture_output=True,
                             text=True, env=self.env, cwd=self.work, timeout=self.startup_timeout, check=False)
        if out.returncode:
            raise RuntimeError(f"flwr supernode register {public_key} failed (exit {out.returncode}): "
                               f"{(out.stdout + out.stderr).strip()[-400:]}")

    def start_supernode(self, data_dir: Path, partition_id: int, key: Path | None = None,
                        log: Path | None = None) -> subprocess.Popen:
        """One ``flower-supernode`` on ``data_dir``; in a secure federation it proves itself with ``key``."""
        args = ["flower-supernode", "--superlink", f"127.0.0.1:{self.port}", "--port", str(processes.free_port()),
                "--node-config", f"data-dir={json.dumps(str(data_dir))} partition-id={partition_id}"]
        if self.creds is not None:
            args += ["--root-certificates", str(self.creds.ca_cert)]
            if key is not None:
                args += ["--auth-supernode-private-key", str(key)]
        else:
            args.append("--insecure")
        return self._start(args, log or self.work / f"supernode_{partition_id}.log")

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
