"""Helpers shared by the benchmarks: a markdown table printed and saved with its context."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from emoji_privacy.markdown import markdown_table
from emoji_privacy.provenance import git_commit

if TYPE_CHECKING:  # the pipeline pulls in torch and the models: only benchmarks that run it pay for that
    from emoji_privacy.evaluation.crowd import CrowdSpec
    from emoji_privacy.pipeline import Anonymizer

RESULTS = Path(__file__).resolve().parent / "results"
CROWD_CACHE = Path(__file__).resolve().parent / ".cache" / "crowd"
"""Where the benchmarks keep the crowd clips they generate (git-ignored; delete it after changing crowd.py:
a clip's name is its spec, not the code that drew it)."""


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
    """The short commit, with ``+dirty`` when tracked files differ from it."""
    return git_commit(RESULTS.parent) or "unknown"


def describe_pipeline(anonymizer: Anonymizer) -> str:
    """One line naming the models and settings a benchmark ran with, read from the live pipeline
    (not from a hand-written note, which goes stale when a default changes)."""
    cfg = anonymizer.config
    det, lm, clf, trk = anonymizer.detector, anonymizer.landmarker, anonymizer.classifier, anonymizer.tracker
    search = [f"score >= {getattr(det, 'score_threshold', cfg.detector.score_threshold):g}",
              f"max_side {getattr(det, 'max_side', cfg.detector.max_side)}"]
    search += [f"{key} {getattr(det, key)}" for key in ("min_face", "low_light", "engine") if hasattr(det, key)]
    detector = f"detector {det.name} ({', '.join(search)})"
    steps = [s for s, on in (("learned map", getattr(lm, "map", None) is not None),
                             ("refiner", getattr(lm, "refiner", None) is not None)) if on]
    landmarks = f"landmarks {lm.name}" + (f" ({' + '.join(steps)})" if steps else "")
    path, arch, engine = getattr(clf, "path", ""), getattr(clf, "architecture", ""), getattr(clf, "engine", "")
    model = [Path(path).name if path else "", f"arch {arch}" if arch else "", engine]
    emotion = f"emotion {clf.name}" + (f" ({', '.join(m for m in model if m)})" if any(model) else "")
    renderer = type(anonymizer.renderer).__name__
    emoji = (f"emoji {'PNGs from ' + cfg.emoji.png_dir if cfg.emoji.png_dir else 'drawn'} (margin "
             f"{cfg.emoji.margin:g}{'' if renderer == 'EmojiRenderer' else ', renderer ' + renderer})")
    tracking = (f"tracking hold {trk.hold_frames}, IoU >= {trk.iou_threshold:g}, emotion smoothing "
                f"{trk.smoothing_s:g} s, switch margin {trk.switch_margin:g} for {trk.switch_dwell_s:g} s"
                if cfg.tracking.enabled else "tracking off")
    return "; ".join((detector, landmarks, emotion, emoji, tracking))


def crowd_clips(specs: list[CrowdSpec]) -> dict[CrowdSpec, Path]:
    """The crowd clips of ``specs`` (MP4 + ground-truth JSON), made once into CROWD_CACHE and then reused: the
    300-W faces are loaded only when a clip is missing (a few seconds), and each clip is drawn only once
    (0.1-0.5 s a frame). Exits with a message when the 300-W faces (../shared/data/landmarks) are absent."""
    from emoji_privacy.evaluation import crowd

    clips = {s: CROWD_CACHE / f"{s.name}.mp4" for s in specs}
    missing = [s for s, p in clips.items() if not (p.is_file() and crowd.truth_path(p).is_file())]
    if missing:
        try:
            faces = crowd.crowd_faces()
        except FileNotFoundError as e:
            sys.exit(f"error: cannot make the crowd clips: {e}")
        for s in missing:
            print(f"making crowd clip {s.label} ({s.frames} frames) in {CROWD_CACHE}", flush=True)
            clips[s] = crowd.crowd_clip(s, CROWD_CACHE, faces)
    return clips


def table(headers: list[str], rows: list[list[object]]) -> str:
    return markdown_table(headers, rows)


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
