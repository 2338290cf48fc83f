"""Configuration: the shipped YAML is valid and complete; mistakes are caught by name."""

from pathlib import Path

import pytest
import yaml
from data_helpers import REPO

from emoji_privacy.config import PipelineConfig
from emoji_privacy.errors import ConfigError

DEFAULT = REPO / "config" / "default.yaml"


def test_default_yaml_matches_code_defaults() -> None:
    assert PipelineConfig.from_yaml(DEFAULT) == PipelineConfig()
    data = yaml.safe_load(DEFAULT.read_text())
    for section, values in vars(PipelineConfig()).items():
        assert set(data[section]) == set(vars(values)), f"default.yaml section {section} is incomplete"


@pytest.mark.parametrize(("data", "message"), [
    ({"detectr": {}}, "unknown config section 'detectr'"),
    ({"detector": {"backnd": "x"}}, "unknown parameter 'detector.backnd'"),
    ({"detector": {"score_threshold": "high"}}, "must be float"),
    ({"tracking": {"hold_frames": 2.5}}, "must be int"),
    ({"tracking": {"enabled": 1}}, "must be bool"),
    ({"output": {"on_error": "raw"}}, "on_error must be 'mask' or 'drop'"),
    ({"emoji": {"margin": 0.8}}, "margin must be >= 1.0"),
    ({"output": {"video_preset": "turbo"}}, "'output.video_preset' is 'turbo': set it to one of ultrafast, "),
    ({"output": {"video_crf": 52}}, "video_crf must be in 0..51"),
    ({"tracking": {"smoothing_s": -0.1}}, "smoothing_s must be in"),
    ({"tracking": {"switch_margin": 1}}, "switch_margin must be in"),
    ({"tracking": {"switch_dwell_s": -1}}, "switch_dwell_s must be in"),
    ({"tracking": {"smoothing": 0.5}}, "unknown parameter 'tracking.smoothing'"),  # renamed: now in seconds
    ({"tracking": {"hysteresis": 0.1}}, "unknown parameter 'tracking.hysteresis'"),
])
def test_mistakes_are_named(data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(data)


def test_ints_accepted_for_floats_and_ignore_list() -> None:
    cfg = PipelineConfig.from_dict({"tracking": {"smoothing_s": 1}, "buff_size": 5}, ignore=("buff_size",))
    assert cfg.tracking.smoothing_s == 1.0


def test_bad_yaml_file(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("detector: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        PipelineConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="cannot read config file"):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("value", "default", "want"), [
    ("false", True, False), ("Yes", False, True), ("3", 0, 3), (4.0, 0, 4), ("0.5", 1.0, 0.5), (2, 1.0, 2.0),
    (0, "", "0"), (None, "", ""), (["a b"], [], ["a b"]),
])
def test_one_coercion_path_parses_strings(value, default, want) -> None:
    from emoji_privacy.config import coerce

    got = coerce(value, default, "x")
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(("value", "default"), [("flase", True), (1, True), (True, 0), ("2.5", 0), ("x", 1.0),
                                                (True, 1.0), ({}, ""), ("a", [])])
def test_one_coercion_path_guesses_nothing(value, default) -> None:
    from emoji_privacy.config import coerce

    with pytest.raises(ConfigError, match="parameter 'x' must be"):
        coerce(value, default, "x")


# --- backend names, the emoji folder, and the nodes' own parameters -----------------------------------------


def test_backend_names_equal_the_registries() -> None:
    """config keeps the backend names as constants (so validating imports neither onnxruntime nor torch);
    they must stay equal to the registries that build the backends."""
    import importlib

    from emoji_privacy import config
    from emoji_privacy.detection import DETECTOR_BACKENDS
    from emoji_privacy.emotion.classifiers import EMOTION_BACKENDS

    # the landmark backends may move within the landmarks package: align re-exports the registry either way
    align = importlib.import_module("emoji_privacy.landmarks.align")
    assert set(config.DETECTOR_BACKEND_NAMES) == set(DETECTOR_BACKENDS)
    assert set(config.EMOTION_BACKEND_NAMES) == set(EMOTION_BACKENDS)
    assert set(config.LANDMARK_BACKEND_NAMES) == set(align.LANDMARK_BACKENDS)
    from emoji_privacy.emoji import STYLES

    assert config.EMOJI_STYLES == STYLES


def test_unknown_emoji_style_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="parameter 'emoji.style' is 'mosaic': set it to one of emoji, blur, "
                       "pixelate, solid"):
        PipelineConfig.from_dict({"emoji": {"style": "mosaic"}})


@pytest.mark.parametrize(("section", "names"), [("detector", "yunet, centerface"), ("landmarks", "facemesh, fan"),
                                                ("emotion", "mini_xception, torch")])
def test_unknown_backend_is_named_with_the_choices(section, names) -> None:
    with pytest.raises(ConfigError, match=f"parameter '{section}.backend' is 'foo': set it to one of {names}"):
        PipelineConfig.from_dict({section: {"backend": "foo"}})


def _emoji_folder(path: Path, names) -> Path:
    import cv2
    import numpy as np

    path.mkdir()
    for n in names:
        cv2.imwrite(str(path / f"{n}.png"), np.zeros((8, 8, 4), np.uint8))
    return path


def test_png_dir_must_exist_and_hold_emotion_pngs(tmp_path) -> None:
    from emoji_privacy import EMOTIONS

    with pytest.raises(ConfigError, match="'emoji.png_dir': folder /nonexistent does not exist"):
        PipelineConfig.from_dict({"emoji": {"png_dir": "/nonexistent"}})
    wrong = _emoji_folder(tmp_path / "wrong", ["Happy", "smile"])  # none named as the renderer reads them
    with pytest.raises(ConfigError, match="holds none of angry.png, disgust.png, .*neutral.png"):
        PipelineConfig.from_dict({"emoji": {"png_dir": str(wrong)}})
    for name, names in [("partial", EMOTIONS[:2]), ("full", EMOTIONS)]:  # partial: drawn emoji for the rest
        folder = _emoji_folder(tmp_path / name, names)
        assert PipelineConfig.from_dict({"emoji": {"png_dir": str(folder)}}).emoji.png_dir == str(folder)


def test_listener_config_takes_every_private_param() -> None:
    from emoji_privacy.config import ListenerConfig, from_mapping

    params = {"detector": {"backend": "centerface"}, "transport": "compressed", "buff_size": 1 << 20,
              "failure_window": 3, "stale_after": "2.5"}  # rosparam gives typed values; strings parse too
    cfg = from_mapping(ListenerConfig, params)
    assert isinstance(cfg, PipelineConfig) and cfg.detector.backend == "centerface"
    assert (cfg.transport, cfg.buff_size, cfg.failure_window, cfg.stale_after) == ("compressed", 1 << 20, 3.0, 2.5)
    with pytest.raises(ConfigError, match=r"unknown .*'buf_size' \(known: detector, .*transport, buff_size"):
        from_mapping(ListenerConfig, {"buf_size": 5})
    with pytest.raises(ConfigError, match="parameter 'transport' is 'jpeg': set it to one of raw, compressed"):
        from_mapping(ListenerConfig, {"transport": "jpeg"})


def test_talker_and_replay_configs_are_strict() -> None:
    from emoji_privacy.config import ReplayConfig, TalkerConfig, from_mapping

    cfg = from_mapping(TalkerConfig, {"source": 0, "rate": 10, "loop": "true", "max_frames": 5})
    assert (cfg.source, cfg.rate, cfg.loop, cfg.max_frames) == ("0", 10.0, True, 5)
    with pytest.raises(ConfigError, match=r"unknown parameter 'rte' \(known: source, rate, width"):
        from_mapping(TalkerConfig, {"rte": 10})
    with pytest.raises(ConfigError, match="'retry_s' must be > 0"):
        from_mapping(TalkerConfig, {"retry_s": 0})
    cfg = from_mapping(ReplayConfig, {"bag": "/b.bag", "wait_for": ["emoji_anonymizer camera/image_raw"]})
    assert cfg.wait_for == ["emoji_anonymizer camera/image_raw"]
    with pytest.raises(ConfigError, match="parameter 'bag' is empty"):
        from_mapping(ReplayConfig, {})
    with pytest.raises(ConfigError, match=r"unknown parameter 'lingr' \(known: bag, rate"):
        from_mapping(ReplayConfig, {"bag": "/b.bag", "lingr": 1})
    with pytest.raises(ConfigError, match="'wait_for' must be a list of 'node topic'"):
        from_mapping(ReplayConfig, {"bag": "/b.bag", "wait_for": ["just_a_node"]})
