"""The manifest of an output folder (files/manifest.py): an input is done only while its input, config, models
and output are what was recorded; and the partial files a killed writer leaves are found and removed."""

from __future__ import annotations

import os
from pathlib import Path

from emoji_privacy.atomic import atomic_folder, atomic_output, remove_partials
from emoji_privacy.config import PipelineConfig
from emoji_privacy.files.manifest import Manifest, config_hash, input_identity


def _done(tmp_path: Path, src: Path, dst: Path, config: str = "c", models: str = "m") -> Manifest:
    m = Manifest(tmp_path, config, models, faces=False)
    m.record(src, dst, m.identity(src), frames=3, seconds=1.0)
    return m


def test_an_input_is_done_while_everything_recorded_still_holds(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jpg", tmp_path / "in_anonymized.jpg"
    src.write_bytes(b"input")
    dst.write_bytes(b"output")
    _done(tmp_path, src, dst)
    again = Manifest(tmp_path, "c", "m", faces=False)  # read back from the file
    assert again.is_done(src, dst)
    assert not Manifest(tmp_path, "other config", "m", faces=False).is_done(src, dst)
    assert not Manifest(tmp_path, "c", "other models", faces=False).is_done(src, dst)
    assert not Manifest(tmp_path, "c", "m", faces=True).is_done(src, dst), "no faces lines kept for it"
    dst.write_bytes(b"output, changed")
    assert not again.is_done(src, dst), "an output that is not the one written"
    dst.write_bytes(b"output")
    dst.unlink()
    assert not again.is_done(src, dst), "a deleted output"


def test_a_changed_input_is_not_done_but_a_touched_one_is(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    src.write_bytes(b"input")
    dst.write_bytes(b"output")
    m = _done(tmp_path, src, dst)
    os.utime(src, ns=(1, 1))  # same bytes, another mtime: hashed again, still the same input
    assert m.is_done(src, dst)
    src.write_bytes(b"INPUT")  # same size, other bytes
    assert not m.is_done(src, dst)


def test_a_folder_input_is_identified_by_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a")
    (folder / "b.jpg").write_bytes(b"b")
    first = input_identity(folder)
    assert first["files"] == 2 and len(first["sha256"]) == 64
    assert input_identity(folder, first) == first
    (folder / "b.jpg").write_bytes(b"c")
    assert input_identity(folder)["sha256"] != first["sha256"]


def test_the_config_hash_follows_every_key() -> None:
    a, b = PipelineConfig(), PipelineConfig()
    assert config_hash(a) == config_hash(b)
    b.emoji.style = "blur"
    assert config_hash(a) != config_hash(b)


def test_the_partial_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    dst = tmp_path / "clip_anonymized.mp4"
    with atomic_output(dst) as tmp:
        tmp.write_bytes(b"half")
        killed = tmp.with_name(tmp.name.replace(".partial", "x.partial"))
        os.link(tmp, killed)  # what a writer killed mid-file leaves: no cleanup ran
    folder = tmp_path / "photos_anonymized"
    with atomic_folder(folder) as tmp_folder:
        left = tmp_folder.with_name(tmp_folder.name.replace(".partial", "y.partial"))
        left.mkdir()
        (left / "a.jpg").write_bytes(b"half")
    other = tmp_path / ".other.abc.partial.mp4"
    other.write_bytes(b"another output's")
    removed = remove_partials(dst) + remove_partials(folder)
    assert sorted(p.name for p in removed) == sorted([killed.name, left.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dst.name, folder.name, other.name])
