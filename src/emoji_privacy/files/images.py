"""Anonymize image files and folders of images.

Every image is a scene of its own: the anonymizer is reset before each (no track, hold or smoothing carries
over from one photo to the next). JPEG, PNG and WebP sizes are checked from the header before decoding (the
pipeline's ``output.max_pixels``); the output keeps the input's format (JPEG at quality 95). A folder's
images (its files with an image suffix, not its sub-folders) are written into a new folder with the same
names; it appears only when every image is done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
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

    images: int
    faces: int
    seconds: float  # wall time


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (suffixes of image_io.IMAGE_SUFFIXES, any case), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


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
    ``progress(done, total)`` after each. Any failure (an undecodable image names itself) leaves nothing."""
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise SourceError(f"input {src} does not exist" if not src.exists() else f"input {src} is not a folder")
    if dst.exists() and dst.samefile(src):
        raise OutputError(f"refusing to write into {dst}: it is the input folder; choose another output")
    images = list_images(src)
    if not images:
        raise SourceError(f"folder {src} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    faces = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_folder(dst))
        jf = None
        if faces_json is not None:
            jf = stack.enter_context(open(stack.enter_context(atomic_output(Path(faces_json))), "w"))
        for i, path in enumerate(images):
            out, n = _anonymize(path, anonymizer, jf, path.name)
            faces += n
            _write_image(tmp / path.name, out, path.suffix)
            if progress is not None:
                progress(i + 1, len(images))
    return FolderSummary(len(images), faces, time.perf_counter() - t0)
