"""One markdown-table writer and one code-version helper serve every report; the benchmark tables name what they ran."""

import importlib.util
import subprocess

import pytest
from data_helpers import REPO

from emoji_privacy import __version__
from emoji_privacy.markdown import markdown_table
from emoji_privacy.pipeline import Anonymizer
from emoji_privacy.provenance import code_version, git_commit


def test_markdown_table_escapes_cells() -> None:
    text = markdown_table(["a", "b|c"], [[1, "x|y"], [2.5, "two\nlines"]])
    assert text.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |", "| 2.5 | two lines |"]


def test_code_version_names_the_checkout(tmp_path) -> None:
    assert code_version().startswith(__version__)
    assert git_commit(tmp_path) is None  # not a checkout: no commit is claimed
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
                   check=True)
    clean = git_commit(tmp_path)
    assert clean and "+dirty" not in clean
    (tmp_path / "f").write_text("2")  # a figure measured on changed code must say so
    assert git_commit(tmp_path) == clean + "+dirty"


# --- benchmark tables name what they ran ----------------------------------------------------------


def bench_common():
    spec = importlib.util.spec_from_file_location("bench_common", REPO / "bench" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_describe_pipeline_names_the_loaded_models(pipeline: Anonymizer) -> None:
    line = bench_common().describe_pipeline(pipeline)
    assert "\n" not in line
    assert f"detector yunet (score >= {pipeline.config.detector.score_threshold:g}, max_side 640" in line
    assert "landmarks facemesh" in line and "emoji drawn" in line
    assert f"tracking hold {pipeline.config.tracking.hold_frames}, IoU >= " in line
    assert f"emotion {pipeline.classifier.name} (fer_robust.pt, arch {pipeline.classifier.architecture}" in line


def test_commit_marks_a_dirty_tree() -> None:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                            text=True, cwd=REPO, check=False)
    if status.returncode != 0:
        pytest.skip("not a git checkout")
    assert bench_common().commit().endswith("+dirty") == bool(status.stdout.strip())
