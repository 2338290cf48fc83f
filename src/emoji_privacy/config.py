"""Typed, validated configuration for the pipeline, loaded from YAML or a ROS param dict.

Every key has a default here and in `config/default.yaml`; unknown keys and wrong types are
errors (a typo in a launch file should not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DetectorConfig:
    backend: str = "yunet"
    score_threshold: float = 0.6
    max_side: int = 640  # the coarse search level: the frame downscaled so its longer side is at most this
    min_face: int = 20  # faces this wide (px) or wider are searched for at every frame size (0: coarse level only)
    low_light: str = "auto"  # auto: a brightened extra pass on dark frames | always | off
    model_path: str = ""
    threads: int = 2  # onnxruntime threads of the detector


@dataclass
class LandmarkConfig:
    backend: str = "facemesh"
    threads: int = 1
    model_path: str = ""


@dataclass
class EmotionConfig:
    backend: str = "torch"
    model_path: str = ""  # empty: models/fer_resnet.pt
    threads: int = 1
    engine: str = "onnxruntime"  # onnxruntime (the loaded weights exported in memory; faster) | torch
    refresh_frames: int = 2  # classify each tracked face every this many frames (bench/results/emotion_refresh.md)


@dataclass
class EmojiConfig:
    png_dir: str = ""  # folder of <emotion>.png to use instead of the drawn emoji
    margin: float = 1.05  # emoji radius = margin * radius of the circle enclosing the face region


@dataclass
class TrackingConfig:
    enabled: bool = True  # false: every frame on its own (no hold, no emotion smoothing; ids are still given)
    iou_threshold: float = 0.3  # minimum IoU between a track's predicted (or last) box and a detection to match
    hold_frames: int = 8  # frames a missed face stays covered at its predicted position (bench/results/hold_sweep.md)
    smoothing: float = 0.5  # weight of the newest probabilities in the per-track running average (1 = none)
    hysteresis: float = 0.1  # a new emotion must beat the shown one by this much to replace it


@dataclass
class OutputConfig:
    on_error: str = "mask"  # "mask": publish a fully masked frame; "drop": publish nothing
    publish_landmarks: bool = False  # landmark geometry is identifying: off by default
    jpeg_quality: int = 80
    max_pixels: int = 8192 * 8192


@dataclass
class PipelineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    emoji: EmojiConfig = field(default_factory=EmojiConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, ignore: tuple[str, ...] = ()) -> PipelineConfig:
        """Build from nested dicts; keys in ``ignore`` (e.g. node-only params) are skipped."""
        cfg = cls()
        for section, values in (data or {}).items():
            if section in ignore:
                continue
            if not hasattr(cfg, section) or not isinstance(values, dict):
                known = ", ".join(f.name for f in dataclasses.fields(cls))
                raise ConfigError(f"unknown config section '{section}' (known: {known})")
            _update(getattr(cfg, section), values, section)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        return cls.from_dict(data)

    def validate(self) -> None:
        _check(0 < self.detector.score_threshold < 1, "detector.score_threshold must be in (0, 1)")
        _check(self.detector.max_side >= 64, "detector.max_side must be >= 64")
        _check(self.detector.min_face >= 0, "detector.min_face must be >= 0 (0: search the max_side level only)")
        _check(self.detector.low_light in ("auto", "always", "off"), "detector.low_light must be auto, always or off")
        _check(min(self.detector.threads, self.landmarks.threads, self.emotion.threads) >= 1, "threads must be >= 1")
        _check(self.emoji.margin >= 1.0, "emoji.margin must be >= 1.0 (the emoji must cover the whole face)")
        _check(0 < self.tracking.iou_threshold < 1, "tracking.iou_threshold must be in (0, 1)")
        _check(self.tracking.hold_frames >= 0, "tracking.hold_frames must be >= 0")
        _check(0 < self.tracking.smoothing <= 1, "tracking.smoothing must be in (0, 1]")
        _check(0 <= self.tracking.hysteresis < 1, "tracking.hysteresis must be in [0, 1)")
        _check(self.emotion.refresh_frames >= 1, "emotion.refresh_frames must be >= 1")
        _check(self.emotion.engine in ("onnxruntime", "torch"), "emotion.engine must be 'onnxruntime' or 'torch'")
        _check(self.output.on_error in ("mask", "drop"), "output.on_error must be 'mask' or 'drop'")
        _check(1 <= self.output.jpeg_quality <= 100, "output.jpeg_quality must be in 1..100")
        _check(self.output.max_pixels >= 1, "output.max_pixels must be >= 1")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _update(obj: Any, values: dict[str, Any], section: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown parameter '{section}.{key}' (known: {', '.join(fields)})")
        default = getattr(obj, key)
        want = type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is None and want is str:
            value = ""
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"parameter '{section}.{key}' must be {want.__name__}, got {value!r}")
        setattr(obj, key, value)
