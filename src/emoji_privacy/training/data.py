"""FER2013 in the two forms users have it, as arrays with the official split of every image.

Forms read:
- the image-folder layout (an extracted folder or its ``.tar.gz``): ``<root>/<any>/<class>/<Usage>_<id>.jpg``,
  the split taken from the ``Usage`` prefix of each file name;
- Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``), labels in FER order;
- a plain labelled folder ``<root>/<class>/*.{jpg,png}`` without split prefixes (a robot's own crops):
  every image is given ``default_split``.

Decoding 35,887 JPEGs takes a while, so the arrays are cached (``.npz`` keyed by the source's
path, size and modification time) under ``~/.cache/emoji_privacy/data``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import EMOTIONS
from ..atomic import atomic_write
from ..errors import ConfigError
from ..image_io import IMAGE_SUFFIXES
from ..model_files import cache_dir, shared_dir

__all__ = ["SPLITS", "FerData", "DataError", "load_fer2013", "default_fer2013_path", "load_labelled_folder"]

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
SIZE = 48


class DataError(ConfigError):
    """A data set is missing, unreadable or not in a layout we know."""


@dataclass
class FerData:
    """Gray faces, labels (indices into EMOTIONS) and the split index (into SPLITS) of each."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    splits: np.ndarray  # (N,) int8
    source: str = ""

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of one official split."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        m = self.splits == SPLITS.index(name)
        return self.images[m], self.labels[m]

    def counts(self) -> dict[str, list[int]]:
        """Images per class in each split (for reports)."""
        return {s: np.bincount(self.labels[self.splits == i], minlength=len(EMOTIONS)).tolist()
                for i, s in enumerate(SPLITS)}


def default_fer2013_path() -> Path | None:
    """``$EMOJI_PRIVACY_DATA/fer2013`` or the shared data folder's copy, whichever exists."""
    roots = []
    if os.environ.get("EMOJI_PRIVACY_DATA"):
        roots.append(Path(os.environ["EMOJI_PRIVACY_DATA"]))
    sd = shared_dir()
    if sd is not None:
        roots.append(sd / "data")
    for root in roots:
        for name in ("fer2013/fer2013_images_train_test.tar.gz", "fer2013/fer2013_images", "fer2013/fer2013.csv"):
            if (root / name).exists():
                return root / name
    return None


def _class_index(name: str, where: str) -> int:
    try:
        return EMOTIONS.index(name.lower())
    except ValueError:
        raise DataError(f"{where}: folder {name!r} is not a FER2013 class ({', '.join(EMOTIONS)})") from None


def _split_of(filename: str, default_split: str | None, where: str) -> int:
    prefix = filename.split("_", 1)[0]
    if prefix in SPLITS:
        return SPLITS.index(prefix)
    if default_split is None:
        raise DataError(f"{where}: file name {filename!r} does not start with a split "
                        f"({'_, '.join(SPLITS)}_); pass a default split for plain labelled folders")
    return SPLITS.index(default_split)


def _decode(data: bytes, where: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataError(f"{where} is not a readable image; delete or replace it")
    if img.shape != (SIZE, SIZE):
        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return img


def _tar_entries(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES):
                    f = tar.extractfile(m)
                    if f is not None:
                        yield m.name, f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{path} is not a readable tar archive ({type(e).__name__}: {e}); "
                        f"download it again or extract it and pass the folder") from e


def _folder_entries(path: Path) -> Iterator[tuple[str, bytes]]:
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield str(p.relative_to(path)), p.read_bytes()


def _read_images(entries: Iterator[tuple[str, bytes]], where: str, default_split: str | None,
                 progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from tqdm import tqdm

    images, labels, splits = [], [], []
    for name, data in tqdm(entries, desc=f"reading {Path(where).name}", unit="img", disable=not progress,
                           mininterval=2.0):
        parts = Path(name).parts
        if len(parts) < 2:
            raise DataError(f"{where}: {name} is not inside a class folder ({', '.join(EMOTIONS)})")
        labels.append(_class_index(parts[-2], where))
        splits.append(_split_of(parts[-1], default_split, where))
        images.append(_decode(data, f"{where}: {name}"))
    if not images:
        raise DataError(f"{where}: no images found (expected <class>/<Usage>_<id>.jpg)")
    return np.stack(images), np.array(labels, np.int64), np.array(splits, np.int8)


def _read_csv(path: Path, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from tqdm import tqdm

    images, labels, splits = [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: not the Kaggle fer2013.csv (missing columns {sorted(missing)}; "
                            f"want emotion,pixels,Usage)")
        for row in tqdm(reader, desc=f"reading {path.name}", unit="row", disable=not progress, mininterval=2.0):
            line = reader.line_num
            try:
                px = np.array(row["pixels"].split(), np.float32)
                label = int(row["emotion"])
            except (ValueError, AttributeError) as e:
                raise DataError(f"{path}:{line}: unreadable row ({e}); fix or delete it") from e
            if px.size != SIZE * SIZE or not 0 <= label < len(EMOTIONS) or row["Usage"] not in SPLITS:
                raise DataError(f"{path}:{line}: want {SIZE * SIZE} pixels, emotion 0-6 and Usage in "
                                f"{SPLITS}; got {px.size} pixels, emotion {label}, Usage {row['Usage']!r}")
            images.append(np.clip(px, 0, 255).astype(np.uint8).reshape(SIZE, SIZE))
            labels.append(label)
            splits.append(SPLITS.index(row["Usage"]))
    if not images:
        raise DataError(f"{path}: no rows")
    return np.stack(images), np.array(labels, np.int64), np.array(splits, np.int8)


def _cache_file(path: Path, default_split: str | None) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{default_split}|v1"
    return cache_dir("data") / f"fer2013-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def read_npz_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of a cache file, or None when there is none; a broken one is deleted, so that it is
    rebuilt, never trusted."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError):
        path.unlink(missing_ok=True)
        return None


def write_npz_cache(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache file whole or not at all (a stopped write leaves no file that looks complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def load_fer2013(path: str | os.PathLike | None = None, default_split: str | None = None,
                 cache: bool = True, progress: bool = True) -> FerData:
    """FER2013 (or a folder laid out like it) from a folder, a .tar.gz or the Kaggle CSV.

    ``path=None`` uses :func:`default_fer2013_path`. ``default_split`` is the split given to
    images whose file names carry none (plain labelled folders); without it they are an error.
    """
    if default_split is not None and default_split not in SPLITS:
        raise DataError(f"unknown split {default_split!r}; known: {', '.join(SPLITS)}")
    if path is None:
        path = default_fer2013_path()
        if path is None:
            raise DataError("FER2013 not found: pass --data PATH (image folder, .tar.gz or fer2013.csv) or set "
                            "EMOJI_PRIVACY_DATA to a folder holding fer2013/")
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise DataError(f"{path} does not exist; pass an image folder, a .tar.gz of one, or fer2013.csv")
    cached = _cache_file(path, default_split) if cache and path.is_file() else None
    arrays = read_npz_cache(cached, ("images", "labels", "splits")) if cached is not None else None
    if arrays is not None:
        return FerData(arrays["images"], arrays["labels"], arrays["splits"], str(path))
    if path.is_dir():
        arrays = _read_images(_folder_entries(path), str(path), default_split, progress)
    elif path.name.endswith(".csv"):
        arrays = _read_csv(path, progress)
    elif tarfile.is_tarfile(path):
        arrays = _read_images(_tar_entries(path), str(path), default_split, progress)
    else:
        raise DataError(f"{path}: not a folder, a tar archive or a .csv; pass FER2013 in one of those forms")
    data = FerData(*arrays, source=str(path))
    if cached is not None:
        write_npz_cache(cached, images=data.images, labels=data.labels, splits=data.splits)
    return data


def load_labelled_folder(path: str | os.PathLike, split: str = "Training") -> FerData:
    """A robot's own crops: ``<path>/<class>/*.jpg``, all in ``split`` unless names carry one."""
    return load_fer2013(path, default_split=split, cache=False, progress=False)
