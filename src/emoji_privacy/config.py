"""Typed, validated configuration for the pipeline, loaded from YAML or a ROS param dict.

Every key has a default here and in `config/default.yaml`; unknown keys and wrong types are
errors (a typo in a launch file should not silently fall back to a default).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import EMOTIONS
from .errors import ConfigError

# The backend names of the registries (detection.DETECTOR_BACKENDS, landmarks.align.LANDMARK_BACKENDS,
# emotion.classifiers.EMOTION_BACKENDS), kept here so that validating a config imports neither onnxruntime
# nor torch; test_config checks that they equal the registries.
DETECTOR_BACKEND_NAMES: tuple[str, ...] = ("yunet", "centerface")
LANDMARK_BACKEND_NAMES: tuple[str, ...] = ("facemesh", "fan")
EMOTION_BACKEND_NAMES: tuple[str, ...] = ("mini_xception", "torch")
EMOJI_STYLES: tuple[str, ...] = ("emoji", "blur", "pixelate", "solid")
"""What covers a face (emoji.STYLES; test_config checks they are equal)."""
TRANSPORTS: tuple[str, ...] = ("raw", "compressed")
"""What the listener subscribes: camera/image_raw (sensor_msgs/Image) or camera/image_raw/compressed."""
X264_PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                 "slower", "veryslow")
"""libx264's presets, fastest first: how hard the encoder of anonymized video files works (docs/files.md)."""


@dataclass
class DetectorConfig:
    backend: str = "yunet"
    score_threshold: float = 0.6
    max_side: int = 640  # the coarse search level: the frame downscaled so its longer side is at most this
    min_face: int = 20  # faces this wide (px) or wider are searched for at every frame size (0: coarse level only)
    low_light: str = "auto"  # auto: dark frames are searched on a brightened copy | always | off
    model_path: str = ""
    threads: int = 2  # onnxruntime threads of the detector


@dataclass
class LandmarkConfig:
    backend: str = "facemesh"
    threads: int = 1
    model_path: str = ""
    min_face: int = 64  # narrower faces: 68 points sketched from the detector's 5 keypoints, not the model
    per_frame: int = 2  # the model on at most this many faces a frame (0: no limit); the others wait their turn


@dataclass
class EmotionConfig:
    backend: str = "torch"
    model_path: str = ""  # empty: models/fer_robust.pt
    threads: int = 1
    engine: str = "onnxruntime"  # onnxruntime (the loaded weights exported in memory; faster) | torch
    refresh_frames: int = 2  # classify each tracked face every this many frames (bench/results/emotion_refresh.md)
    min_face: int = 32  # narrower faces are not classified: their emotion is unknown (too small to read)
    # the reliability rule (emotion/reliability.py): a reading that fails it does not change the track's emotion
    min_confidence: float = 0.44  # calibrated top probability below this: "uncertain"
    max_turn: float = 0.5  # head turned further (landmarks.geometry.head_turn; 0 frontal, 1 profile): "turned"
    min_contrast: float = 4.0  # spread (sd) of the aligned crop's gray levels below this: "faint"

    def reading_rule(self) -> dict[str, float]:
        """The keyword arguments of emotion.reliability.ReadingRule (config does not import the emotion stage)."""
        return {"min_confidence": self.min_confidence, "max_turn": self.max_turn, "min_contrast": self.min_contrast}


@dataclass
class EmojiConfig:
    png_dir: str = ""  # folder of <emotion>.png to use instead of the drawn emoji
    margin: float = 1.05  # emoji radius = margin * radius of the circle enclosing the face region
    style: str = "emoji"  # emoji | blur | pixelate | solid: a neutral mask over the same disk (EMOJI_STYLES)


@dataclass
class TrackingConfig:
    enabled: bool = True  # false: every frame on its own (no hold, no emotion smoothing; ids are still given)
    iou_threshold: float = 0.3  # minimum IoU between a track's predicted (or last) box and a detection to match
    hold_frames: int = 8  # frames a missed face stays covered at its predicted position (bench/results/hold_sweep.md)
    # the shown emotion (FaceTracker.smooth, docs/shown_emotion.md; chosen by bench/results/emotion_timeline.md)
    smoothing_s: float = 0.3  # time constant (s) of the per-track time-weighted mean of the probabilities (0: none)
    switch_margin: float = 0.1  # another emotion must lead the shown one in that mean by this much ...
    switch_dwell_s: float = 0.3  # ... for this long (s) without interruption to replace it (0: at once)
    # Listing (FaceEmotion, faces JSON, website, evaluate_bag); every face is covered at once regardless. A track is
    # listed once the detector found it at the full score threshold (on the image as it is or brightened), or once in
    # confirm_hits of its last confirm_window frames: dark-pass ghosts (bench/results/tracks.md) stay unlisted.
    confirm_hits: int = 3  # 1: every face listed at once (also dark-pass ones)
    confirm_window: int = 5
    reid_frames: int = 90  # a lost face (missed beyond hold_frames, no longer covered) keeps its id if seen again
    # near where it was within this many frames (0: never; hold_frames alone decides what is covered)


@dataclass
class OutputConfig:
    on_error: str = "mask"  # "mask": publish a fully masked frame; "drop": publish nothing
    publish_landmarks: bool = False  # landmark geometry is identifying: off by default
    jpeg_quality: int = 80
    max_pixels: int = 8192 * 8192
    video_preset: str = "superfast"  # x264 preset of anonymized video files: speed against file size
    video_crf: int = 20  # x264 constant quality of anonymized video files: lower is better and larger


@dataclass
class PipelineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    emoji: EmojiConfig = field(default_factory=EmojiConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, ignore: tuple[str, ...] = ()) -> PipelineConfig:
        """Build from nested dicts; keys in ``ignore`` (e.g. node-only params) are skipped."""
        return from_mapping(cls, {k: v for k, v in (data or {}).items() if k not in ignore})

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
        _check_choice(self.detector.backend, DETECTOR_BACKEND_NAMES, "detector.backend")
        _check_choice(self.landmarks.backend, LANDMARK_BACKEND_NAMES, "landmarks.backend")
        _check_choice(self.emotion.backend, EMOTION_BACKEND_NAMES, "emotion.backend")
        _check_choice(self.emoji.style, EMOJI_STYLES, "emoji.style")
        if self.emoji.png_dir:
            check_png_dir(self.emoji.png_dir)
        _check(0 < self.detector.score_threshold < 1, "detector.score_threshold must be in (0, 1)")
        _check(self.detector.max_side >= 64, "detector.max_side must be >= 64")
        _check(self.detector.min_face >= 0, "detector.min_face must be >= 0 (0: search the max_side level only)")
        _check(self.detector.low_light in ("auto", "always", "off"), "detector.low_light must be auto, always or off")
        _check(min(self.detector.threads, self.landmarks.threads, self.emotion.threads) >= 1, "threads must be >= 1")
        _check(self.emoji.margin >= 1.0, "emoji.margin must be >= 1.0 (the emoji must cover the whole face)")
        _check(0 < self.tracking.iou_threshold < 1, "tracking.iou_threshold must be in (0, 1)")
        _check(self.tracking.hold_frames >= 0, "tracking.hold_frames must be >= 0")
        _check(0 <= self.tracking.smoothing_s <= 60, "tracking.smoothing_s must be in [0, 60] (seconds; 0: none)")
        _check(0 <= self.tracking.switch_margin < 1, "tracking.switch_margin must be in [0, 1) (a probability lead)")
        _check(0 <= self.tracking.switch_dwell_s <= 60, "tracking.switch_dwell_s must be in [0, 60] (seconds)")
        _check(self.tracking.confirm_hits >= 1, "tracking.confirm_hits must be >= 1 (1: list every face at once)")
        _check(self.tracking.confirm_window >= self.tracking.confirm_hits,
               "tracking.confirm_window must be >= tracking.confirm_hits")
        _check(self.tracking.reid_frames >= 0, "tracking.reid_frames must be >= 0 (0: no re-identification)")
        _check(self.emotion.refresh_frames >= 1, "emotion.refresh_frames must be >= 1")
        _check(self.landmarks.min_face >= 0, "landmarks.min_face must be >= 0 (0: every face gets the landmark model)")
        _check(self.emotion.min_face >= 0, "emotion.min_face must be >= 0 (0: every face is classified)")
        _check(0.0 <= self.emotion.min_confidence < 1.0,
               "emotion.min_confidence must be in [0, 1) (0: never uncertain)")
        _check(0.0 < self.emotion.max_turn <= 1.0, "emotion.max_turn must be in (0, 1] (1: never turned)")
        _check(self.emotion.min_contrast >= 0.0, "emotion.min_contrast must be >= 0 gray levels (0: never faint)")
        _check(self.landmarks.per_frame >= 0, "landmarks.per_frame must be >= 0 (0: no limit)")
        _check(self.emotion.engine in ("onnxruntime", "torch"), "emotion.engine must be 'onnxruntime' or 'torch'")
        _check(self.output.on_error in ("mask", "drop"), "output.on_error must be 'mask' or 'drop'")
        _check(1 <= self.output.jpeg_quality <= 100, "output.jpeg_quality must be in 1..100")
        _check(self.output.max_pixels >= 1, "output.max_pixels must be >= 1")
        _check_choice(self.output.video_preset, X264_PRESETS, "output.video_preset")
        _check(0 <= self.output.video_crf <= 51, "output.video_crf must be in 0..51 (x264: 0 lossless, 51 worst)")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    _check(value in choices, f"parameter '{name}' is {value!r}: set it to one of {', '.join(choices)}")


def check_png_dir(png_dir: str | Path) -> Path:
    """The emoji folder ``png_dir`` (``emoji.png_dir``): it must exist and hold ``<emotion>.png`` for at least
    one of the 7 emotions (a folder with none of them is a wrong path, not a choice); the renderer draws the
    emoji of the missing ones and warns (emoji.EmojiRenderer, which also reads and checks the PNGs)."""
    folder = Path(png_dir).expanduser()
    names = ", ".join(f"{n}.png" for n in EMOTIONS)
    if not folder.is_dir():
        raise ConfigError(f"parameter 'emoji.png_dir': folder {folder} does not exist; create it with {names}, or "
                          "leave emoji.png_dir empty for the drawn emoji")
    if not any((folder / f"{n}.png").is_file() for n in EMOTIONS):
        raise ConfigError(f"parameter 'emoji.png_dir': folder {folder} holds none of {names}; add them (one PNG "
                          "per emotion, lower case), or leave emoji.png_dir empty for the drawn emoji")
    return folder


@dataclass
class ListenerConfig(PipelineConfig):
    """All private parameters of the emoji_anonymizer node: the pipeline's sections plus the node's own."""

    transport: str = "raw"  # raw: camera/image_raw | compressed: camera/image_raw/compressed
    buff_size: int = 2 ** 26  # rospy receive buffer (bytes): must hold one whole frame
    diagnostics_period: float = 1.0  # seconds between /diagnostics messages
    failure_window: float = 10.0  # /diagnostics: WARN (ERROR if nothing was anonymized) while failures are this recent
    stale_after: float = 5.0  # /diagnostics says STALE when no input frame arrived for this many seconds
    log_period: float = 5.0  # failed frames are logged at most once per this many seconds (with a count)

    def validate(self) -> None:
        super().validate()
        _check_choice(self.transport, TRANSPORTS, "transport")
        _check(self.buff_size >= 2 ** 16, "parameter 'buff_size' must be >= 65536 (bytes; one frame must fit)")
        _check(self.diagnostics_period > 0, "parameter 'diagnostics_period' must be > 0 (seconds)")
        _check(self.failure_window > 0, "parameter 'failure_window' must be > 0 (seconds)")
        _check(self.stale_after > 0, "parameter 'stale_after' must be > 0 (seconds)")
        _check(self.log_period >= 0, "parameter 'log_period' must be >= 0 (seconds; 0 logs every failed frame)")


@dataclass
class TalkerConfig:
    """Private parameters of the camera_talker node."""

    source: str = "0"  # V4L2 index, /dev/videoN, a video file, an image folder, a stream URL, or "demo"
    rate: float = 0.0  # publish rate in Hz; 0: the source's own frame rate
    width: int = 0  # resize frames to this size; 0: keep the source's size
    height: int = 0
    frame_id: str = "camera"
    loop: bool = False  # restart a video file or folder at its end
    camera_info_url: str = ""  # camera_calibration YAML (file:// or a path); empty: uncalibrated CameraInfo
    retry_s: float = 1.0  # seconds between reconnection attempts of a live source
    max_frames: int = 0  # stop after this many frames; 0: never

    def validate(self) -> None:
        for name in ("rate", "width", "height", "max_frames"):
            _check(getattr(self, name) >= 0, f"parameter '{name}' must be >= 0 (0: see its description)")
        _check(self.retry_s > 0, "parameter 'retry_s' must be > 0 (seconds)")


@dataclass
class ReplayConfig:
    """Private parameters of the replay_bag node."""

    bag: str = ""  # the bag to play
    rate: float = 1.0  # playback speed factor
    topic: str = ""  # the bag's image topic; empty: its only one
    transport: str = "raw"  # what the listener subscribes: raw | compressed
    start: float = 0.0  # seconds into the bag
    linger: float = 2.0  # seconds to wait after the last frame
    delay: float = 1.0  # seconds between advertising and the first frame
    wait_timeout: float = 120.0  # seconds to wait for the wait_for subscriptions
    wait_for: list = field(default_factory=list)  # "node topic" pairs that must subscribe before playing

    def validate(self) -> None:
        _check(bool(self.bag), "parameter 'bag' is empty: give the bag to play, e.g. "
                               "`roslaunch emoji_privacy replay.launch bag:=/path/to/file.bag`")
        _check(self.rate > 0, "parameter 'rate' must be > 0 (a playback speed factor)")
        _check(self.wait_timeout > 0, "parameter 'wait_timeout' must be > 0 (seconds)")
        for name in ("start", "linger", "delay"):
            _check(getattr(self, name) >= 0, f"parameter '{name}' must be >= 0 (seconds)")
        _check_choice(self.transport, TRANSPORTS, "transport")
        _check(all(isinstance(w, str) and len(w.split()) == 2 for w in self.wait_for),
               f"parameter 'wait_for' must be a list of 'node topic' strings, got {self.wait_for!r}")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def coerce(value: Any, default: Any, name: str) -> Any:
    """``value`` as the type of ``default``, or a ConfigError naming ``name``.

    The one conversion path for YAML files, ROS parameters, Flower run configs and command-line
    flags: strings are parsed (``"false"`` is False, ``"3"`` is 3), but nothing is guessed (a bool
    is not an int, ``"flase"`` is an error, 2.5 is not an int).
    """
    want = type(default)

    def bad() -> ConfigError:
        return ConfigError(f"parameter '{name}' must be {want.__name__}, got {value!r}")

    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if isinstance(value, bool) and want is not str:
        raise bad()
    if want is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value.strip()) if isinstance(value, str) else _exact(value, int)
        except (TypeError, ValueError):
            raise bad() from None
    if want is float:
        try:
            return float(value.strip()) if isinstance(value, str) else float(_exact(value, (int, float)))
        except (TypeError, ValueError):
            raise bad() from None
    if want is str:
        if value is None:
            return ""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)  # rosparam reads `_source:=0` as the int 0
        raise bad()
    if want in (list, tuple):
        if isinstance(value, list | tuple):
            return want(value)
        raise bad()
    if want is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise bad()
    raise bad()


def _exact(value: Any, types: type | tuple[type, ...]) -> Any:
    if not isinstance(value, types):
        raise TypeError
    return value


def update_from_mapping(obj: Any, values: Mapping[str, Any], where: str = "") -> None:
    """Set the fields of dataclass ``obj`` from ``values``; unknown keys and bad values are errors.

    Keys may use ``-`` for ``_`` (Flower run configs, flags); a dataclass-valued field takes a
    nested mapping (a config section). ``where`` prefixes the names in error messages.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of parameters, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        full = f"{where}.{key}" if where else str(key)  # as the user wrote it
        if name not in fields:
            known = ", ".join(fields)
            sections = not where and all(dataclasses.is_dataclass(getattr(obj, f)) for f in fields)
            kind = "config section" if sections else "parameter"
            raise ConfigError(f"unknown {kind} '{full}' (known: {known})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            update_from_mapping(current, value, full)
        else:
            setattr(obj, name, coerce(value, current, full))


T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """A ``cls()`` updated from ``values`` and validated (its ``validate()`` when it has one)."""
    obj = cls()
    update_from_mapping(obj, values or {}, where)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def argparse_type(default: Any, flag: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that converts a flag like a config value (same rules, same errors)."""

    def convert(text: str) -> Any:
        try:
            return coerce(text, default, flag)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = type(default).__name__
    return convert


def key_value_pairs(items: list[str], flag: str, example: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` from a command line as ``{"a": "1", "b": "x"}``; a ConfigError naming ``flag`` otherwise."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes key=value (e.g. {example}), not {item!r}")
        out[key.strip()] = value.strip()
    return out
