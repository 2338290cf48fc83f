"""The reliability rule: which readings count, and why the others do not."""

import math

import numpy as np
import pytest
import torch

from emoji_privacy.config import PipelineConfig
from emoji_privacy.emotion.nets import build_emotion_net
from emoji_privacy.emotion.reliability import FAINT, READ, TURNED, UNCERTAIN, ReadingRule, crop_contrast
from emoji_privacy.errors import ConfigError

SURE = np.array([0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01])
UNSURE = np.array([0.3, 0.25, 0.1, 0.1, 0.1, 0.1, 0.05])


def test_rule_gives_the_first_reason_a_reading_fails() -> None:
    rule = ReadingRule(min_confidence=0.4, max_turn=0.5, min_contrast=4.0)
    assert rule.judge(SURE, 30.0, 0.1) == READ
    assert rule.judge(SURE, 30.0, math.nan) == READ  # no landmarks, no turn: not held against the face
    assert rule.judge(SURE, 30.0, -0.7) == TURNED
    assert rule.judge(SURE, 2.0, 0.0) == FAINT
    assert rule.judge(UNSURE, 30.0, 0.0) == UNCERTAIN
    assert rule.judge(UNSURE, 2.0, 0.9) == TURNED
    got = rule.judge_many(np.stack([SURE, UNSURE, SURE]), np.array([30.0, 30.0, 1.0]))
    assert list(got) == [READ, UNCERTAIN, FAINT]


def test_crop_contrast_ignores_the_corners() -> None:
    flat = np.full((1, 48, 48), 20, np.uint8)
    assert crop_contrast(flat)[0] == 0.0
    corners = flat.copy()
    corners[:, :5, :5] = 255  # what a warp fills outside the photo
    assert crop_contrast(corners)[0] == 0.0
    face = flat.copy()
    face[:, 20:28, 10:38] = 60
    assert crop_contrast(face)[0] > 10


def test_config_carries_the_rule_and_refuses_bad_values() -> None:
    cfg = PipelineConfig.from_dict({"emotion": {"min_confidence": 0.5, "max_turn": 0.4, "min_contrast": 3}})
    assert ReadingRule(**cfg.emotion.reading_rule()) == ReadingRule(0.5, 0.4, 3.0)
    for bad in ({"min_confidence": 1.0}, {"max_turn": 0.0}, {"max_turn": 1.5}, {"min_contrast": -1}):
        with pytest.raises(ConfigError):
            PipelineConfig.from_dict({"emotion": bad})


def test_standardized_net_ignores_brightness_and_contrast() -> None:
    """standardize=True normalises each crop inside the net: a face at a third of the exposure (or with its contrast
    halved) gets the same probabilities, up to rounding of the levels; without it, it does not."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    darker = (x + 1) * 0.35 - 1  # every level x0.35, in the nets' normalized units
    for standardize, same in ((True, True), (False, False)):
        net = build_emotion_net("compact_resnet", standardize=standardize).eval()
        with torch.inference_mode():
            close = torch.allclose(net(x), net(darker), atol=1e-4)
        assert close == same
    assert build_emotion_net("compact_resnet", standardize=True).config["standardize"] is True
    assert "standardize" not in build_emotion_net("compact_resnet").config  # old checkpoints' metadata unchanged
