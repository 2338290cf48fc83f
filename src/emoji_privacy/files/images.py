"""Anonymize image files and folders of images.

Every image is a scene of its own: the anonymizer is reset before each (no track, hold or smoothing carries
over from one photo to the next). JPEG, PNG and WebP sizes are checked from the header before decoding (the
pipeline's ``output.max_pixels``); the output keeps the input's format (JPEG at quality 95). A folder's
images (its files with an image suffix, not its sub-folders) are written into a new folder with the same
names. Each image succeeds or fails on its own: one that cannot be read (truncated, not an image, too large) is
named in the summary and has no output, the others are written; the folder appears when every image has been
tried, and not at all when none could be written. Files that are not images and sub-folders are named as
skipped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from ..atomic import OutputError, atomic_folder, atomic_output
from ..errors import EmojiPrivacyError, SourceError
from ..image_io import IMAGE_SUFFIXES, ImageTooLargeError, check_size, decode_compressed, sniff_format
from . import faces_records, json_line

JPEG_QUALITY = 95


@dataclass
class FolderSummary:
    """What anonymize_folder wrote."""

    images: int  # images written
    faces: int
    seconds: float  # wall time
    failed: list[tuple[str, str]] = field(default_factory=list)  # images that could not be read: (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # entries that are not images: (path, why)


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (suffixes of image_io.IMAGE_SUFFIXES, any case), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def skipped_entries(folder: Path) -> list[tuple[str, str]]:
    """What ``list_images`` leaves out of ``folder``, with why: sub-folders and files without an image suffix."""
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.is_dir():
            out.append((str(p), "a sub-folder (only the images directly in the folder are read)"))
        elif p.suffix.lower() not in IMAGE_SUFFIXES:
            out.append((str(p), f"not an image file (suffix {p.suffix or '(none)'!r})"))
    return out


def read_image(src: Path, max_pixels: int) -> np.ndarray:
    """An image file as BGR; SourceError when it is missing, too large or cannot be decoded."""
    try:
        data = Path(src).read_bytes()
    except FileNotFoundError as e:
        raise SourceError(f"input {src} does not exist") from e
    except OSError as e:
        raise SourceError(f"cannot read {src}: {e.strerror or e}") from e
    try:
        if sniff_format(data[:12]) is not None:  # JPEG, PNG, WebP: size from the header, before decoding
            return decode_compressed(data, max_pixels)
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if img is None:
            raise SourceError(f"cannot decode {src}: not an image OpenCV can read")
        check_size(img.shape[0], img.shape[1], max_pixels)
        return img
    except SourceError:
        raise
    except ImageTooLargeError as e:
        raise SourceError(f"cannot anonymize {src}: {e}") from e
    except EmojiPrivacyError as e:
        raise SourceError(f"cannot decode {src}: {e}") from e


def _write_image(path: Path, img: np.ndarray, suffix: str) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix.lower(), img, params)
    if not ok:
        raise OutputError(f"cannot encode the anonymized image as {suffix}")
    path.write_bytes(buf.tobytes())


def _check_output_suffix(dst: Path) -> None:
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(f"cannot write {dst}: unsupported image suffix {dst.suffix or '(none)'!r}; use one of "
                          f"{', '.join(IMAGE_SUFFIXES)}")


def _anonymize(src: Path, anonymizer, jf: IO[str] | None, name: str) -> tuple[np.ndarray, int]:
    img = read_image(src, anonymizer.config.output.max_pixels)
    anonymizer.reset()
    out, faces = anonymizer.process(img, still=True)
    if jf is not None:
        jf.write(json_line({"file": name, **faces_records(faces)}))
    return out, len(faces)


def anonymize_image(src: Path, dst: Path, anonymizer, *, faces_json: Path | None = None) -> int:
    """Write the anonymized image file ``src`` to ``dst`` (format from dst's suffix); returns the faces found.
    ``faces_json``: one JSON line {"file", "faces"}. A pipeline error leaves no output at all."""
    src, dst = Path(src), Path(dst)
    _check_output_suffix(dst)
    if dst.exists() and src.exists() and dst.samefile(src):
        raise OutputError(f"refusing to write {dst}: it is the input; choose another output")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(dst))
        jf = None
        if faces_json is not None:
            jf = stack.enter_context(open(stack.enter_context(atomic_output(Path(faces_json))), "w"))
        out, n = _anonymize(src, anonymizer, jf, src.name)
        _write_image(tmp, out, dst.suffix)
    return n


def anonymize_folder(src: Path, dst: Path, anonymizer, *, faces_json: Path | None = None,
                     progress: Callable[[int, int], None] | None = None) -> FolderSummary:
    """Anonymize every image of folder ``src`` into folder ``dst`` (same file names), one at a time with
    ``progress(done, total)`` after each. An image that cannot be read is listed in ``failed`` and gets no
    output; when no image at all could be read, SourceError and nothing is written. A pipeline or output error
    leaves nothing."""
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise SourceError(f"input {src} does not exist" if not src.exists() else f"input {src} is not a folder")
    if dst.exists() and dst.samefile(src):
        raise OutputError(f"refusing to write into {dst}: it is the input folder; choose another output")
    images = list_images(src)
    if not images:
        raise SourceError(f"folder {src} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    summary = FolderSummary(0, 0, 0.0, skipped=skipped_entries(src))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_folder(dst))
        jf = None
        if faces_json is not None:
            jf = stack.enter_context(open(stack.enter_context(atomic_output(Path(faces_json))), "w"))
        for i, path in enumerate(images):
            try:
                out, n = _anonymize(path, anonymizer, jf, path.name)
            except SourceError as e:  # this image only: named, no output for it
                summary.failed.append((str(path), str(e)))
            else:
                summary.faces += n
                summary.images += 1
                _write_image(tmp / path.name, out, path.suffix)
            if progress is not None:
                progress(i + 1, len(images))
        if not summary.images:
            first = summary.failed[0][1]
            raise SourceError(f"no image of folder {src} could be read ({len(images)} tried; first: {first})")
    summary.seconds = time.perf_counter() - t0
    return summary
