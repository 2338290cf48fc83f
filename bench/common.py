"""Helpers shared by the benchmarks: a markdown table printed and saved with its context."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=RESULTS.parent, check=False).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)


def save(name: str, title: str, sections: list[str]) -> Path:
    """Print the report and write it to bench/results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = "python3 " + " ".join([os.path.relpath(sys.argv[0], RESULTS.parent.parent)] + sys.argv[1:])
    head = (f"# {title}\n\nMachine: {machine()}  \nCommit: {commit()}  \nDate: {time.strftime('%Y-%m-%d %H:%M')}  \n"
            f"Command: `{cmd}` (after `source build/setup.bash`, or `make bench`)\n")
    text = head + "\n" + "\n\n".join(sections) + "\n"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text)
    print(f"saved {path}")
    return path
