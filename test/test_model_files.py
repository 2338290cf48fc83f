"""Model files are found locally, verified, and missing ones are explained."""

import pytest

from emoji_privacy import model_files
from emoji_privacy.errors import ModelFileError


def test_all_models_found() -> None:
    for key in model_files.MODEL_FILES:
        try:
            assert model_files.find_model_file(key).is_file()
        except ModelFileError as e:
            pytest.skip(f"{key}: {e}")


def test_missing_and_corrupt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMOJI_PRIVACY_SHARED", str(tmp_path / "none"))
    monkeypatch.setattr(model_files, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(model_files, "REPO_ROOT", tmp_path)
    with pytest.raises(ModelFileError, match="face_detection_yunet_2023mar.onnx not found .*make setup"):
        model_files.find_model_file("yunet")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "face_detection_yunet_2023mar.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelFileError, match="corrupt \\(sha256 mismatch"):
        model_files.find_model_file("yunet")
    with pytest.raises(ModelFileError, match="unknown model"):
        model_files.find_model_file("nope")
