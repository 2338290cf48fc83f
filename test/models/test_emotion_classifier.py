"""The emotion classifiers' behaviour: probabilities, input checks, the mini-Xception port's padding, exports,
engines, the start-up cache, and loading that fails with messages that tell the user what to do. Their accuracy
on FER2013 is in test_emotion_accuracy.py, their calibration in test_emotion_calibration.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from emoji_privacy import EMOTIONS
from emoji_privacy.emotion.classifiers import EMOTION_BACKENDS, export_pt, load_emotion_classifier
from emoji_privacy.emotion.keras_import import MiniXception, _same_pads
from emoji_privacy.errors import ConfigError, ImageFormatError, ModelFileError


@pytest.fixture(scope="module")
def clf(mini_xception):
    return mini_xception


@pytest.fixture(scope="module")
def exported(clf, tmp_path_factory):
    return export_pt(clf, tmp_path_factory.mktemp("emotion") / "mini_xception.pt")


def test_probabilities_on_real_faces(clf, fer_private):
    crops = fer_private[0][:5]
    p = clf.predict(crops)
    assert p.shape == (5, 7) and p.dtype == np.float32
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    empty = clf.predict(np.zeros((0, 64, 64), np.uint8))
    assert empty.shape == (0, 7) and empty.dtype == np.float32


def test_rejects_wrong_crops(clf):
    with pytest.raises(ImageFormatError, match=r"\(N, 64, 64\)"):
        clf.predict(np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(ImageFormatError, match="uint8"):
        clf.predict(np.zeros((2, 64, 64), np.float32))


def test_keras_same_padding_is_asymmetric():
    # TF puts the odd padding pixel after (bottom/right); getting this wrong costs ~8 points.
    assert _same_pads(60, 3, 2) == (0, 1)
    assert _same_pads(15, 3, 2) == (1, 1)
    assert _same_pads(60, 1, 2) == (0, 0)
    assert _same_pads(64, 3, 1) == (1, 1)


def test_export_roundtrip_identical(clf, exported):
    crops = np.random.default_rng(0).integers(0, 256, (6, 64, 64), dtype=np.uint8)
    loaded = load_emotion_classifier("torch", str(exported))
    assert loaded.input_size == clf.input_size == 64
    np.testing.assert_array_equal(loaded.predict(crops), clf.predict(crops))
    assert isinstance(loaded.model, MiniXception)


def test_missing_files(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelFileError, match="does not exist"):
        load_emotion_classifier("torch", str(missing))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_emotion_classifier("mini_xception", str(tmp_path / "nope.hdf5"))


def test_corrupt_files(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x00not a checkpoint\xff" * 50)
    with pytest.raises(ModelFileError, match=r"garbage\.pt.*corrupt.*retrain it.*or point emotion model_path"):
        load_emotion_classifier("torch", str(bad))
    bad_h5 = tmp_path / "garbage.hdf5"
    bad_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 300)
    with pytest.raises(ModelFileError, match=r"garbage\.hdf5.*model_path"):
        load_emotion_classifier("mini_xception", str(bad_h5))
    not_ckpt = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_ckpt)
    with pytest.raises(ModelFileError, match="not an emoji_privacy checkpoint"):
        load_emotion_classifier("torch", str(not_ckpt))


def _resave(src, dst, **meta_changes):
    ckpt = torch.load(src, weights_only=True)
    ckpt["metadata"].update(meta_changes)
    torch.save(ckpt, dst)
    return str(dst)


def test_wrong_metadata(exported, tmp_path):
    path = _resave(exported, tmp_path / "classes.pt", classes=list(reversed(EMOTIONS)))
    with pytest.raises(ModelFileError, match="classes .* differ"):
        load_emotion_classifier("torch", path)
    path = _resave(exported, tmp_path / "size.pt", input_size=48)
    with pytest.raises(ModelFileError, match="input_size 48 does not match .* 64"):
        load_emotion_classifier("torch", path)
    path = _resave(exported, tmp_path / "arch.pt", architecture="resnet9000")
    with pytest.raises(ModelFileError, match="unknown architecture 'resnet9000'"):
        load_emotion_classifier("torch", path)
    ckpt = torch.load(exported, weights_only=True)
    del ckpt["state_dict"][next(iter(ckpt["state_dict"]))]
    torch.save(ckpt, tmp_path / "weights.pt")
    with pytest.raises(ModelFileError, match="weights do not fit"):
        load_emotion_classifier("torch", str(tmp_path / "weights.pt"))


def test_backend_names():
    assert set(EMOTION_BACKENDS) >= {"mini_xception", "torch"}
    with pytest.raises(ConfigError, match="known: mini_xception, torch"):
        load_emotion_classifier("vgg")
    default = load_emotion_classifier("torch")  # no model_path: the project's own best model
    assert default.path.name == "fer_robust.pt" and default.metadata["architecture"] == "compact_resnet"
    assert default.metadata["config"]["standardize"] is True  # the crop's photometric normalisation is in the net
    assert load_emotion_classifier().path == default.path  # and it is the default backend
    with pytest.raises(ModelFileError, match=r"nope\.pt does not exist.*name of one in models/"):
        load_emotion_classifier("torch", "nope.pt")


@pytest.mark.parametrize("backend", ["torch", "mini_xception"])
def test_onnxruntime_engine_gives_the_torch_probabilities(backend, fer_private):
    """The default engine runs the same weights exported at load: same probabilities, same labels."""
    fast = load_emotion_classifier(backend, engine="onnxruntime")
    ref = load_emotion_classifier(backend, engine="torch")
    assert fast.engine == "onnxruntime" and ref.engine == "torch"
    s = fast.input_size
    crops = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_LINEAR) for c in fer_private[0][:64]])
    for batch in (crops[:1], crops[:3], crops):
        p, q = fast.predict(batch), ref.predict(batch)
        np.testing.assert_allclose(p, q, atol=1e-4)
        assert (p.argmax(1) == q.argmax(1)).all()


def test_unknown_engine_is_refused():
    with pytest.raises(ConfigError, match="unknown emotion engine 'tensorrt'; choose one of: onnxruntime, torch"):
        load_emotion_classifier("torch", engine="tensorrt")


_STARTUP = """
import json, sys
import numpy as np
from emoji_privacy.emotion.classifiers import load_emotion_classifier
clf = load_emotion_classifier("torch", sys.argv[1] or None)
faces = np.random.default_rng(0).integers(0, 255, (3, clf.input_size, clf.input_size), dtype=np.uint8)
print(json.dumps({"torch": "torch" in sys.modules, "p": clf.predict(faces).tolist(), "t": clf.temperature}))
"""


def _start_up(tmp_path, model: str = "") -> dict:
    """A new process loading the emotion model with ``tmp_path`` as its user cache."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", _STARTUP, model], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 4.6 s measured (idle 2-core machine, --durations)
def test_onnx_export_is_cached_and_start_up_needs_no_torch(tmp_path):
    first = _start_up(tmp_path)
    assert first["torch"]  # the first start-up exports (and checks) with torch
    (entry,) = (tmp_path / "cache" / "emoji_privacy" / "emotion_onnx").glob("*.onnx")
    second = _start_up(tmp_path)
    assert not second["torch"], "the cached export should spare importing torch"
    assert second["p"] == first["p"] and second["t"] == first["t"] != 1.0
    # a replaced entry (a valid export of other weights) is not trusted: the export is made again
    from emoji_privacy.emotion.checkpoint import load_checkpoint
    from emoji_privacy.emotion.classifiers import onnx_export

    other = load_checkpoint(None)
    with torch.no_grad():
        for prm in other.model.parameters():
            prm.mul_(0.5)
    entry.write_bytes(onnx_export(other.model.eval(), other.input_size, "other"))
    third = _start_up(tmp_path)
    assert third["torch"] and third["p"] == first["p"]
    assert not _start_up(tmp_path)["torch"]  # and the entry is whole again


@pytest.mark.slow  # 4.2 s measured (idle 2-core machine, --durations)
def test_a_changed_model_never_meets_an_old_export(tmp_path):
    from emoji_privacy.emotion.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(None)
    shipped = _start_up(tmp_path)
    hotter = tmp_path / "hotter.pt"
    save_checkpoint(ckpt.model, hotter, {**ckpt.metadata, "calibration": {**ckpt.metadata["calibration"],
                                                                          "temperature": 2.0}})
    for _ in range(2):  # exported, then from the cache
        changed = _start_up(tmp_path, str(hotter))
        assert changed["t"] == 2.0 and changed["p"] != shipped["p"]
    assert np.argmax(changed["p"], 1).tolist() == np.argmax(shipped["p"], 1).tolist()
