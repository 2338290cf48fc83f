"""One markdown-table writer and one code-version helper serve every report."""

import subprocess

from emoji_privacy import __version__
from emoji_privacy.markdown import markdown_table
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
