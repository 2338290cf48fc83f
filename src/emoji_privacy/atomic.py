"""Output files that are whole or absent: every writer in the project writes to a hidden temporary file (or
folder) beside its output and renames it at the end, so a crash, a kill or Ctrl-C never leaves half a file
where a finished one is expected.

``atomic_output`` (one file), ``atomic_folder`` (a folder of files) and ``atomic_new_folder`` (a folder made
whole by a writer that creates it itself, e.g. a ROS 2 bag) raise ``OutputError`` when the
folder cannot take the output; ``atomic_write`` (any writer that takes a path: ``torch.save``, ``np.savez``)
and ``atomic_write_bytes`` are the one-call forms. Standard library only: every layer may use it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import EmojiPrivacyError

__all__ = ["OutputError", "atomic_output", "atomic_folder", "atomic_new_folder", "atomic_write",
           "atomic_write_bytes", "remove_partials"]


class OutputError(EmojiPrivacyError):
    """An output cannot be written (missing or read-only folder, unsupported suffix, would overwrite an input)."""


def _partial_name(dst: Path) -> tuple[str, str]:
    # hidden, and keeps the suffix (tools that look at it still see what it is)
    return f".{dst.stem}.", f".partial{dst.suffix}"


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """A temporary path beside ``dst`` to write; renamed to ``dst`` when the block ends without an exception,
    removed when it raises (KeyboardInterrupt included). OutputError when the folder cannot take a file."""
    dst = Path(dst)
    prefix, suffix = _partial_name(dst)
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dst.parent)
    except OSError as e:
        raise OutputError(f"cannot write {dst}: {e.strerror or e} (check that {dst.parent} exists and is "
                          "writable)") from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a finished output gets the usual mode
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _partial_folder(dst: Path) -> Path:
    """A new hidden folder beside ``dst`` (``.<name>.XXXX.partial``), or OutputError."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    except OSError as e:
        raise OutputError(f"cannot write {dst}: {e.strerror or e} (check that {dst.parent} exists and is "
                          "writable)") from e


@contextlib.contextmanager
def atomic_folder(dst: Path) -> Iterator[Path]:
    """A temporary folder beside ``dst``; when the block succeeds its files move into ``dst`` (created if
    needed; files there with other names stay), and on any exception it is removed with everything in it."""
    dst = Path(dst)
    tmp = _partial_folder(dst)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not dst.exists():
            os.replace(tmp, dst)
        else:
            if not dst.is_dir():
                raise OutputError(f"cannot write folder {dst}: a file of that name exists")
            for f in sorted(tmp.iterdir()):
                os.replace(f, dst / f.name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_new_folder(dst: Path) -> Iterator[Path]:
    """A path named like ``dst``, absent, inside a hidden temporary folder beside it, for a writer that creates
    the folder itself and names files after it (a rosbag2 writer). When the block succeeds the new folder
    replaces ``dst`` as a whole (an existing ``dst``, which the caller judged replaceable, is removed once the
    new one is in place); on any exception everything written is removed and ``dst`` is left as it was."""
    dst = Path(dst)
    tmp = _partial_folder(dst)
    new = tmp / dst.name
    try:
        yield new
        if not new.is_dir():
            raise OutputError(f"cannot write {dst}: the writer made no folder")
        if dst.exists() or dst.is_symlink():
            os.replace(dst, tmp / f"{dst.name}.old")
        try:
            os.replace(new, dst)
        except BaseException:
            if (tmp / f"{dst.name}.old").exists():
                os.replace(tmp / f"{dst.name}.old", dst)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(dst: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` on a temporary path beside ``dst`` (it keeps ``dst``'s suffix), then the rename to ``dst``;
    nothing is left when ``write`` raises. Returns ``dst``."""
    with atomic_output(dst) as tmp:
        write(tmp)
    return Path(dst)


def atomic_write_bytes(dst: Path, data: bytes) -> Path:
    """``data`` as the whole of ``dst``, or no file at all."""
    return atomic_write(dst, lambda tmp: tmp.write_bytes(data))


def remove_partials(dst: Path) -> list[Path]:
    """Remove the temporary files and folders that writers of ``dst`` left when their process was killed (a
    kill -9 or a lost machine runs no cleanup); the paths removed. Only for a ``dst`` nobody is writing now."""
    dst = Path(dst)
    prefix, suffix = _partial_name(dst)
    found = set(dst.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"))
    found |= {p for p in dst.parent.glob(f".{glob.escape(dst.name)}.*.partial") if p.is_dir()}
    for p in sorted(found):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return sorted(found)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
