"""emoji_privacy: see people without recording who they are.

A plain Python library (no rospy): detection, landmarks and alignment, emotion, emoji
rendering, tracking, and the `Anonymizer` pipeline that composes them. ROS nodes in
`nodes/` convert messages and call into it::

    from emoji_privacy import Anonymizer
    result = Anonymizer().process(frame, still=True)   # BGR uint8 in, faces covered out

The names below load lazily (PEP 562), so ``import emoji_privacy.msg`` or the configs do not
pull in torch and onnxruntime; the heavy modules load on first use of ``Anonymizer``.
"""

from importlib import import_module as _import_module

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 class order; every probability vector in the project uses it."""
UNKNOWN = "unknown"
"""The emotion of a face too small to read (under ``emotion.min_face``): covered like any face, its emotion
not classified. Published as emotion "unknown", emotion_index FaceEmotion.UNKNOWN (255), no probabilities."""
UNKNOWN_INDEX = -1
"""``FaceResult.emotion_index`` of an unknown emotion (the message carries 255)."""


def emotion_name(index: int) -> str:
    """The label of an emotion index: a class of EMOTIONS, or UNKNOWN for UNKNOWN_INDEX."""
    return UNKNOWN if index == UNKNOWN_INDEX else EMOTIONS[index]

__version__ = "0.1.0"

_LAZY = {
    "Anonymizer": "pipeline",
    "FaceResult": "pipeline",
    "PipelinedAnonymizer": "streaming",
    "PipelineConfig": "config",
    "ConfigError": "errors",
    "EmojiPrivacyError": "errors",
    "ImageFormatError": "errors",
    "ModelFileError": "errors",
    "find_model_file": "model_files",
}

__all__ = ["EMOTIONS", "__version__", *_LAZY]


def lazy_attributes(package: str, names: dict[str, str], namespace: dict[str, object]):
    """A module ``__getattr__`` (PEP 562) that imports ``package.<names[name]>`` on first use of ``name``
    and keeps the value in ``namespace``, so heavy modules load only when a caller needs them."""

    def __getattr__(name: str) -> object:
        if name in names:
            value = getattr(_import_module(f"{package}.{names[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
