"""Where a result came from: the code version recorded in model metadata, run folders and bench tables."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import __version__


def _git(cwd: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The short commit of the checkout at ``cwd`` (default: this package's source tree), with
    ``+dirty`` when tracked files differ from it; None outside a git checkout (an install space).

    A figure measured on uncommitted code must not claim to come from the commit alone.
    """
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    head = _git(where, "rev-parse", "--short", "HEAD")
    if not head:
        return None
    changes = _git(where, "status", "--porcelain", "--untracked-files=no")
    return head + ("+dirty" if changes is None or changes else "")


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout (``0.1.0+ab12cd3``)."""
    commit = git_commit()
    return f"{__version__}+{commit}" if commit else __version__
