"""A fresh clone, with no ../shared, an empty HOME and no network, finds every model file and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import REPO
from model_helpers import ANONYMIZE_ONE, clean_env, copy_worktree, last_json, run_python

from emoji_privacy.model_files import MODEL_FILES


@pytest.mark.slow
def test_fresh_clone_finds_every_model_and_runs(tmp_path: Path) -> None:
    """Defect 1: YuNet came from ../shared or a download; a clone alone must have everything."""
    clone = copy_worktree(REPO, tmp_path / "clone" / "emoji_privacy")
    assert not (clone.parent / "shared").exists()
    env = clean_env(tmp_path, PYTHONPATH=str(clone / "src"))
    work = tmp_path / "elsewhere"
    work.mkdir()

    listing = run_python("import sys, runpy; sys.argv = ['emoji_privacy', 'models']; "
                         "runpy.run_module('emoji_privacy', run_name='__main__')", env, work)
    assert listing.returncode == 0, listing.stderr
    lines = dict(line.split(None, 1) for line in listing.stdout.splitlines())
    assert set(lines) == set(MODEL_FILES)
    for key, path in lines.items():
        model = MODEL_FILES[key]
        want = (clone / "models") if model.package is None else Path(f"site-packages/{model.package}")
        assert str(want) in path, (key, path)
    assert not (tmp_path / "home" / ".cache").exists()  # nothing was fetched or cached

    res = last_json(run_python(ANONYMIZE_ONE, env, work))
    assert res["module"].startswith(str(clone / "src")) and res["source_tree"] == str(clone)
    assert len(res["landmarks"]) >= 1 and res["changed"] > 0.5
