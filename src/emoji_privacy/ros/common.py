"""What ROS 1 and ROS 2 messages have in common, without importing either: message type names, a bag's topic
listing, and the field values the project reads from or writes into its messages.

``messages`` (ROS 1: genpy classes) and ``ros2_bags`` (ROS 2: the dataclasses of the ``rosbags`` library)
both build on these functions, which only read attributes: a ROS 1 ``sensor_msgs/Image`` and a ROS 2
``sensor_msgs/msg/Image`` share their field names (``header``, ``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data``); the stamp is ``secs``/``nsecs`` in ROS 1 and ``sec``/``nanosec`` in ROS 2, the
camera matrix ``K`` in ROS 1 and ``k`` in ROS 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import UNKNOWN_INDEX, emotion_name, image_io
from ..errors import ImageFormatError

IMAGE_TYPE, COMPRESSED_TYPE = "sensor_msgs/Image", "sensor_msgs/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
UNKNOWN_EMOTION = 255
"""FaceEmotion.UNKNOWN: the emotion_index of a face whose emotion is not known (msg/FaceEmotion.msg)."""


def base_type(msg_type: str) -> str:
    """A message type in ROS 1 spelling: ``sensor_msgs/msg/Image`` (ROS 2) -> ``sensor_msgs/Image``."""
    return msg_type.replace("/msg/", "/", 1)


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: its name, message type (as the bag spells it) and message count."""

    name: str
    msg_type: str
    count: int


def describe(infos: dict[str, TopicInfo]) -> str:
    """'name (type, N messages), ...' for error messages."""
    if not infos:
        return "none (the bag is empty)"
    return ", ".join(f"{t.name} ({t.msg_type}, {t.count} messages)" for t in infos.values())


def image_topics(infos: dict[str, TopicInfo]) -> list[str]:
    """The topics holding sensor_msgs Image or CompressedImage messages (ROS 1 or ROS 2 type names)."""
    return [t.name for t in infos.values() if base_type(t.msg_type) in IMAGE_TYPES and t.count > 0]


def decode_image(msg: Any, compressed: bool, max_pixels: int = image_io.MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs Image (any supported encoding) or, when ``compressed``, CompressedImage -> BGR array."""
    if compressed:
        return image_io.decode_compressed(msg.data, max_pixels)
    return image_io.decode_raw(msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian),
                               max_pixels)


def image_to_bgr(msg: Any, msg_type: str, max_pixels: int = image_io.MAX_PIXELS) -> np.ndarray:
    """``decode_image`` for a message of type ``msg_type`` (ROS 1 or ROS 2 spelling); ImageFormatError for
    any other type."""
    kind = base_type(msg_type)
    if kind not in IMAGE_TYPES:
        raise ImageFormatError(f"expected sensor_msgs/Image or CompressedImage, got {msg_type}")
    return decode_image(msg, kind == COMPRESSED_TYPE, max_pixels)


def stamp_seconds(msg: Any) -> float:
    """The header stamp of a message, in seconds (ROS 1 secs/nsecs or ROS 2 sec/nanosec)."""
    stamp = msg.header.stamp
    if hasattr(stamp, "nanosec"):
        return float(stamp.sec) + float(stamp.nanosec) / 1e9
    return float(stamp.secs) + float(stamp.nsecs) / 1e9


def camera_matrix_values(info: Any) -> list[float] | None:
    """The 9 values of a ``sensor_msgs/CameraInfo``'s K (ROS 1 ``K``, ROS 2 ``k``; row-major), or None when
    the camera is uncalibrated (K all zero): the head pose then uses a nominal pinhole camera."""
    k = getattr(info, "K", None)
    k = [float(v) for v in (getattr(info, "k", ()) if k is None else k)]
    return k if len(k) == 9 and any(k) else None


def face_fields(face: Any, with_landmarks: bool = False) -> dict[str, Any]:
    """The fields of an emoji_privacy FaceEmotion for one listed ``pipeline.FaceResult``, with ``roi`` as the
    fields of its sensor_msgs/RegionOfInterest: the same values in ROS 1 and ROS 2 (msg/FaceEmotion.msg)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
    return {
        "track_id": face.track_id,
        "roi": {"x_offset": max(x0, 0), "y_offset": max(y0, 0), "height": max(y1 - y0, 0),
                "width": max(x1 - x0, 0), "do_rectify": False},
        "detection_score": face.score,
        "emotion": emotion_name(face.emotion_index),
        "emotion_index": UNKNOWN_EMOTION if face.emotion_index == UNKNOWN_INDEX else face.emotion_index,
        "confidence": face.confidence,
        "probabilities": [float(p) for p in face.probabilities],
        "yaw_deg": face.yaw_deg,
        "pitch_deg": face.pitch_deg,
        "roll_deg": face.roll_deg,
        "reading": face.reading,
        "landmarks": [float(v) for v in face.landmarks.reshape(-1)] if with_landmarks else [],
    }
