"""Helpers for the tests of the model-file resolver and of installed copies: hide every place the
resolver looks, copy the working tree as a fresh clone would hold it, run the default pipeline in a
clean process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emoji_privacy import model_files


def hide_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pip_packages: bool = False) -> None:
    """Point the resolver at empty places: no $EMOJI_PRIVACY_MODELS, no package models/ folder, an
    empty cache, no shared folder and (unless ``pip_packages``) no pip package files."""
    monkeypatch.delenv("EMOJI_PRIVACY_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path / "no_shared"))
    monkeypatch.setattr(model_files, "package_dirs", lambda: [])
    if not pip_packages:
        monkeypatch.setattr(model_files, "_package_file", lambda model: None)


def copy_worktree(src: Path, dest: Path) -> Path:
    """Copy what a fresh clone of ``src`` would hold, plus new files not yet committed (tracked and
    untracked, minus what .gitignore excludes) into ``dest``; skip the test when ``src`` is no git checkout."""
    import shutil

    if shutil.which("git") is None or not (src / ".git").exists():
        pytest.skip(f"{src} is not a git checkout (or git is absent): cannot tell which files a clone holds")
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src, check=True,
                         capture_output=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        s = src / rel
        if s.is_file():  # deleted but still tracked files are listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dest / rel)
    return dest


# Runs in a clean process: the default Anonymizer on the astronaut photo; prints one JSON line.
ANONYMIZE_ONE = """
import json, sys
import cv2, numpy as np
from skimage import data
import emoji_privacy
from emoji_privacy import model_files
from emoji_privacy.pipeline import Anonymizer

img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
out, faces = Anonymizer().process(img)
print(json.dumps({"module": emoji_privacy.__file__, "source_tree": str(model_files.source_tree()),
                  "models": {k: str(v) for k, v in model_files.check_all()[0].items()},
                  "changed": float(np.abs(out.astype(int) - img).mean()),
                  "landmarks": [f.landmarks.tolist() for f in faces], "emotions": [f.emotion for f in faces]}))
"""

# Runs in a clean process: the default detector and landmark backend (no emotion model) on one image
# (argv[1], default the astronaut photo); prints one JSON line.
LANDMARKS_ONE = """
import json, sys
import cv2, numpy as np
from skimage import data
import emoji_privacy
from emoji_privacy.config import PipelineConfig
from emoji_privacy.detection import detector_from_config
from emoji_privacy.landmarks.align import load_landmark_detector

img = cv2.imread(sys.argv[1]) if len(sys.argv) > 1 else cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
cfg = PipelineConfig()
dets = detector_from_config(cfg.detector).detect(img)
lms = load_landmark_detector(cfg.landmarks.backend).detect(img, dets.boxes, dets.keypoints)
print(json.dumps({"module": emoji_privacy.__file__, "boxes": dets.boxes.tolist(), "landmarks": lms.tolist()}))
"""


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: this venv's python first on PATH, an empty HOME and cache, no shared
    folder, and no ROS, catkin or Python path of the development workspace."""
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(tmp / "home"), "XDG_CACHE_HOME": str(tmp / "home" / ".cache"),
           "EMOJI_PRIVACY_SHARED": str(tmp / "no_shared"), "LANG": "C.UTF-8",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
           "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str], cwd: Path, setup: Path | None = None,
               args: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` with this venv's python in ``env`` (after sourcing the catkin ``setup`` file, if given)."""
    script = cwd / "snippet.py"
    script.write_text(code)
    cmd = " ".join(["python3", str(script), *args])
    if setup is not None:
        cmd = f"source {setup} && {cmd}"
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
