"""`emoji-privacy anonymize INPUT... -o OUT_DIR --ray [ADDRESS]`: the same batch on a Ray cluster (docs/fleet.md).

Ray schedules, this module only hands out files: a pool of ``FileWorker`` actors (one CPU each, one per CPU of
the cluster unless ``--workers``) loads the models once per worker and runs ``batch.run_unit`` on one unit at a
time (a whole input, or a time segment of a long recording, ``segments.py``), reading it from and writing it to
storage every node sees. So the outputs have the same names and the same bytes as a serial run (each written
atomically by its worker; a recording's segments joined by the driver when all are done), and the manifest
(``manifest.py``) is kept by the driver alone. A worker that dies mid-file (its process or its machine) loses
nothing but that unit's hidden partial output, which is removed; the unit goes to another worker, up to
``--retries`` times, and its input is then listed as failed. One progress bar counts the whole job: files,
frames, frames/s and the time left, from the workers' reports.

Ray is imported only here, and this module only for ``--ray``: the plain tool never loads it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..atomic import remove_partials
from ..errors import EmojiPrivacyError
from .batch import Job, Outcome, Unit, estimate_frames, join_units, remove_unit_parts, units_of

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.5
"""How often a worker reports its frames, and the driver redraws the bar."""
READY_TIMEOUT_S = 300.0
"""How long the driver waits for a worker to load its models before it gives up on that worker."""


class FileWorker:
    """One Ray actor: the models loaded once, then units (inputs, or segments of them) one after another."""

    def __init__(self, config: dict[str, Any], board: Any) -> None:
        from ..config import PipelineConfig
        from ..pipeline import Anonymizer

        self.config = PipelineConfig.from_dict(config)
        self.config.validate()
        self.anonymizer = Anonymizer(self.config)
        self.board = board

    def ready(self) -> dict[str, Any]:
        """Where this worker runs and which models it loaded (the driver checks they are its own)."""
        import socket

        from .manifest import models_hash

        return {"host": socket.gethostname(), "pid": os.getpid(), "models": models_hash(self.config)}

    def run(self, index: int, unit: Unit, faces: str | None) -> dict[str, Any]:
        """Anonymize one unit (a whole input, or a segment of a long one): {"ok", "outcome", "identity"} or
        {"ok": False, "reason"}; never raises for the input's own problems (those are reported, not retried)."""
        from .batch import failure_message, run_unit
        from .manifest import input_identity

        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= REPORT_EVERY_S or (total and done >= total):
                last[0] = now
                self.board.report.remote(index, done, total)

        try:  # the input's identity is taken once: by its only unit, or by its first segment's
            first = unit.segment is None or unit.segment.index == 0
            identity = input_identity(unit.job.src) if first else None
            outcome = run_unit(unit, self.anonymizer, self.config, Path(faces) if faces else None, progress)
        except (EmojiPrivacyError, OSError) as e:
            return {"ok": False, "reason": failure_message(e)}
        return {"ok": True, "outcome": asdict(outcome), "identity": identity}


class ProgressBoard:
    """Frames done per input, as the workers report them (a Ray actor of no CPU)."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[int, int]] = {}

    def report(self, index: int, done: int, total: int) -> None:
        self.done[index] = (done, total)

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return dict(self.done)


def _import_ray():
    try:
        import ray
    except ModuleNotFoundError as e:
        raise EmojiPrivacyError("--ray needs the Ray package, which is not installed here: run `make setup` (or "
                                "pip install ray==2.55.1 -c constraints.txt)") from e
    return ray


@contextlib.contextmanager
def connected(address: str):
    """ray.init for ``address`` ('local': a cluster of this machine, started and stopped here; 'auto': the
    one `ray start` made here; else host:port or ray://host:port), shut down on leaving."""
    ray = _import_ray()
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a warning meant for GPU users
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        else:
            kwargs.pop("include_dashboard")
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EmojiPrivacyError(f"cannot reach the Ray cluster at {address}: {' '.join(str(e).split())[:300]} "
                                "(start one with `ray start --head`, or leave out the address to start one "
                                "here)") from e
    try:
        yield ray
    finally:
        ray.shutdown()


class _Bar:
    """The one progress bar of the job: frames of all inputs, with files done in its text."""

    def __init__(self, jobs: list[Job], units: list[Unit], quiet: bool) -> None:
        frames = {id(j): estimate_frames(j) for j in jobs}
        self.totals = {i: frames[id(u.job)] // (u.segment.count if u.segment is not None else 1)
                       for i, u in enumerate(units)}
        self.files, self.files_done = len(jobs), 0
        self.done: dict[int, int] = {}
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=sum(self.totals.values()) or None, unit="frame", dynamic_ncols=True,
                            file=sys.stderr, desc=self._desc())

    def _desc(self) -> str:
        return f"{self.files_done}/{self.files} files"

    def update(self, reports: dict[int, tuple[int, int]]) -> None:
        for i, (done, total) in reports.items():
            self.done[i] = done
            if total:
                self.totals[i] = max(total, done)
        self._draw()

    def unit_done(self, index: int, frames: int | None, whole_file: bool) -> None:
        self.files_done += whole_file
        if frames is not None:
            self.done[index] = frames
            self.totals[index] = max(self.totals.get(index, 0), frames)
        self._draw()

    def _draw(self) -> None:
        if self.bar is None:
            return
        total = sum(self.totals.values())
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.set_description(self._desc(), refresh=False)
        self.bar.update(sum(self.done.values()) - self.bar.n)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_on_ray(batch: Any, todo: list[Job], config: Any, args: argparse.Namespace) -> None:
    """Run ``todo`` (a cli.Batch's inputs still to do; long recordings as segments) on the cluster of
    ``args.ray``; results go into ``batch`` (manifest, failures) as each input ends."""
    if not todo:
        return
    with connected(args.ray) as ray:
        _Scheduler(ray, batch, todo, config, args).run()


class _Scheduler:
    """Hands out the units (whole inputs, or segments of long recordings) to the workers as they come free,
    joins an input's segments when all are done, and keeps the batch's books."""

    def __init__(self, ray, batch: Any, todo: list[Job], config: Any, args: argparse.Namespace) -> None:
        self.ray, self.batch, self.todo, self.args = ray, batch, todo, args
        self.config = asdict(config)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # on the driver's own node: the board must not go down with a worker's machine
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.board = ray.remote(num_cpus=0)(ProgressBoard).options(scheduling_strategy=here).remote()
        self.worker_cls = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(FileWorker)
        self.units: list[Unit] = []
        self.of_job: list[int] = []  # unit -> index of its job in todo
        self.left: dict[int, set[int]] = {}  # job -> its units not done yet
        for j, job in enumerate(todo):
            units = units_of(job, config, args.split_seconds)
            self.left[j] = set(range(len(self.units), len(self.units) + len(units)))
            self.units += units
            self.of_job += [j] * len(units)
        self.identity: dict[int, Any] = {}
        self.dead_jobs: set[int] = set()  # failed: their other units are dropped
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = max(1, min(args.workers or cpus, len(self.units)))
        self.attempts = [0] * len(self.units)
        self.bar = _Bar(todo, self.units, args.quiet)

    def run(self) -> None:
        try:
            idle = self._start_workers(self.size)
            queue = deque(range(len(self.units)))
            pending: dict[Any, tuple[int, Any]] = {}
            last_poll = 0.0
            while queue or pending:
                while idle and queue:
                    i = queue.popleft()
                    if self.of_job[i] in self.dead_jobs:
                        continue
                    actor = idle.pop()
                    self.attempts[i] += 1
                    pending[actor.run.remote(i, *self._absolute(i))] = (i, actor)
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=REPORT_EVERY_S)
                if time.monotonic() - last_poll >= REPORT_EVERY_S:
                    last_poll = time.monotonic()
                    with contextlib.suppress(self.ray.exceptions.RayError):  # only the bar would miss it
                        self.bar.update(self.ray.get(self.board.snapshot.remote(), timeout=10))
                for ref in ready:
                    i, actor = pending.pop(ref)
                    if self._collect(ref, i, actor, queue):
                        idle.append(actor)
                if queue and not idle and not pending:  # every worker died: new ones where CPUs are free
                    free = int(self.ray.available_resources().get("CPU", 0))
                    idle = self._start_workers(min(free, self.size), replacing=True) if free else []
                    if not idle:
                        for i in sorted({self.of_job[i] for i in queue} - self.dead_jobs):
                            self._fail(i, "no Ray worker is left to run it (every worker died; see `ray status`)")
                        queue.clear()
        finally:
            self.bar.close()

    def _absolute(self, i: int) -> tuple[Unit, str | None]:
        """The unit with absolute paths (a worker's working folder is not the driver's), and its faces file."""
        unit, job = self.units[i], self.units[i].job
        faces = self.batch.faces_part(job)
        whole = Job(job.src.absolute(), job.kind, job.dst.absolute())
        return Unit(whole, unit.segment), str(faces.absolute()) if faces is not None else None

    def _start_workers(self, n: int, replacing: bool = False) -> list[Any]:
        """``n`` workers with their models loaded, checked against this machine's model files."""
        actors = [self.worker_cls.remote(self.config, self.board) for _ in range(n)]
        refs = {a.ready.remote(): a for a in actors}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=READY_TIMEOUT_S)
        alive = []
        for ref in ready:
            try:
                info = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                if replacing:
                    continue
                raise EmojiPrivacyError(f"a Ray worker could not start: {_ray_reason(e)}") from e
            if info["models"] != self.batch.manifest.models:
                raise EmojiPrivacyError(f"the worker on {info['host']} loads other model files than this machine; "
                                        "install the same models on every node (models_hash differs)")
            alive.append(refs[ref])
        for ref, actor in refs.items():
            if ref not in ready:
                self.ray.kill(actor)
        if not alive and not replacing:
            raise EmojiPrivacyError(f"no Ray worker started within {READY_TIMEOUT_S:.0f} s (the cluster has "
                                    f"{self.ray.cluster_resources().get('CPU', 0):.0f} CPUs; see `ray status`)")
        return alive

    def _collect(self, ref: Any, i: int, actor: Any, queue: deque) -> bool:
        """One unit ended; whether its worker is still there to take another."""
        j = self.of_job[i]
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:  # a bug in the worker, not a lost machine: not retried
            self._fail(j, f"the worker failed: {_ray_reason(e)}")
            return True
        except self.ray.exceptions.RayError as e:  # the worker's process or node is gone
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
            self._clean(i)
            if self.attempts[i] <= self.args.retries:
                log.warning("the worker of %s died (%s); trying it again (%d of %d)", self.units[i].out,
                            type(e).__name__, self.attempts[i], self.args.retries)
                queue.appendleft(i)
            else:
                self._fail(j, f"its worker died {self.attempts[i]} times ({type(e).__name__}); nothing was "
                           "written for it")
            return False
        if j in self.dead_jobs:  # another segment of its input failed
            remove_unit_parts([self.units[i]], self.batch.faces_part(self.todo[j]))
            return True
        if not result["ok"]:
            self._fail(j, result["reason"])
            return True
        outcome = Outcome(**{k: (v if k not in ("failed_items", "skipped") else [tuple(x) for x in v])
                             for k, v in result["outcome"].items()})
        if result["identity"] is not None:
            self.identity[j] = result["identity"]
        self.left[j].discard(i)
        whole = self.units[i].segment is None
        self.bar.unit_done(i, outcome.frames, whole)
        if not whole:
            if self.left[j]:
                return True
            outcome = self._join(j)
            if outcome is None:
                return True
            self.bar.unit_done(i, None, True)
        self.batch.finished(self.todo[j], outcome, self.identity.get(j))
        if not self.args.quiet:
            self.bar.write(outcome.line)
        if self.args.fail_fast and outcome.failed_items:
            raise EmojiPrivacyError(outcome.failed_items[0][1])
        return True

    def _join(self, j: int) -> Outcome | None:
        """Every segment of input ``j`` is done: its parts joined into its output (here, on the driver)."""
        units = [u for u, k in zip(self.units, self.of_job, strict=True) if k == j]
        faces = self.batch.faces_part(self.todo[j])
        try:
            return join_units(units, faces)
        except (EmojiPrivacyError, OSError) as e:
            remove_unit_parts(units, faces)
            self._fail(j, f"cannot join its segments: {e}")
            return None

    def _clean(self, i: int) -> None:
        """What a dead worker left of unit ``i``: its hidden partial output and faces part."""
        unit = self.units[i]
        remove_partials(unit.out)
        faces = unit.faces(self.batch.faces_part(unit.job))
        if faces is not None:
            remove_partials(faces)

    def _fail(self, j: int, reason: str) -> None:
        """Input ``j`` failed: no output for it (the parts of its segments are removed)."""
        if j in self.dead_jobs:
            return
        self.dead_jobs.add(j)
        job = self.todo[j]
        units = [u for u, k in zip(self.units, self.of_job, strict=True) if k == j]
        if any(u.segment is not None for u in units):
            remove_unit_parts(units, self.batch.faces_part(job))
        self.bar.unit_done(-1 - j, None, True)
        if self.args.fail_fast:
            raise EmojiPrivacyError(reason)
        self.batch.failed(job, reason)


def _ray_reason(e: BaseException) -> str:
    text = str(getattr(e, "cause", None) or e)
    return " ".join(text.split())[:300]
