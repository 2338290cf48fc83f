"""Configuration: the shipped YAML is valid and complete; mistakes are caught by name."""

from pathlib import Path

import pytest
import yaml

from emoji_privacy.config import PipelineConfig
from emoji_privacy.errors import ConfigError

DEFAULT = Path(__file__).resolve().parents[1] / "config" / "default.yaml"


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
])
def test_mistakes_are_named(data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(data)


def test_ints_accepted_for_floats_and_ignore_list() -> None:
    cfg = PipelineConfig.from_dict({"tracking": {"smoothing": 1}, "buff_size": 5}, ignore=("buff_size",))
    assert cfg.tracking.smoothing == 1.0


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
