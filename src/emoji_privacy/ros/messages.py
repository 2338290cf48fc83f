"""All ROS 1 message handling of the project: image and face messages in and out.

Imports message classes only (no rospy), so the conversions are testable without a master.
The generated `emoji_privacy.msg` classes need the catkin workspace sourced. The field values shared with
ROS 2 messages are in ``common``; ROS 2 messages (rosbag2 files, read and written with ``rosbags``) are
built in ``ros2_bags``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import genpy
import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from .. import UNKNOWN_INDEX, image_io
from ..errors import ConfigError
from ..pipeline import FaceResult, listed_faces
from . import common
from .common import camera_matrix_values, face_fields, stamp_seconds  # noqa: F401 - also public here (ROS 1)

COMPRESSED_FORMATS = ("jpeg", "png")
"""Encodings that make a sensor_msgs/CompressedImage instead of an Image."""


def image_to_bgr(msg: Image | CompressedImage, max_pixels: int = image_io.MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image (any supported encoding) or CompressedImage -> BGR array."""
    return common.image_to_bgr(msg, msg._type, max_pixels)


def bgr_to_image(img: np.ndarray, header: object, encoding: str = "bgr8") -> Image:
    """BGR array -> sensor_msgs/Image carrying ``header``."""
    data, h, w, step = image_io.encode_raw(img, encoding)
    return Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step, data=data)


def bgr_to_jpeg(img: np.ndarray, header: object, quality: int = 80) -> CompressedImage:
    """BGR array -> sensor_msgs/CompressedImage (JPEG), as image_transport's compressed plugin names it."""
    return CompressedImage(header=header, format="bgr8; jpeg compressed bgr8", data=image_io.encode_jpeg(img, quality))


def make_header(stamp_s: float, frame_id: str = "", seq: int = 0) -> Header:
    """std_msgs/Header with a stamp in seconds."""
    return Header(seq=seq, stamp=genpy.Time.from_sec(stamp_s), frame_id=frame_id)


def bgr_to_message(img: np.ndarray, header: object, encoding: str = "bgr8",
                   jpeg_quality: int = 90) -> Image | CompressedImage:
    """BGR array -> Image in any supported raw ``encoding``, or CompressedImage for 'jpeg' / 'png'."""
    if encoding == "jpeg":
        return bgr_to_jpeg(img, header, jpeg_quality)
    if encoding == "png":
        return CompressedImage(header=header, format="bgr8; png compressed bgr8", data=image_io.encode_png(img))
    return bgr_to_image(img, header, encoding)


def faces_to_message(faces: Sequence[FaceResult], header: object, with_landmarks: bool = False) -> object:
    """Faces of one frame -> emoji_privacy/FaceEmotionArray: the listed ones (``listed_faces``: confirmed
    tracks; every face was covered all the same)."""
    from emoji_privacy.msg import FaceEmotion, FaceEmotionArray

    out = FaceEmotionArray(header=header)
    for f in listed_faces(faces):
        fields = face_fields(f, with_landmarks)
        out.faces.append(FaceEmotion(**{**fields, "roi": RegionOfInterest(**fields["roi"])}))
    return out


def faces_from_message(msg: object) -> list[FaceResult]:
    """emoji_privacy/FaceEmotionArray -> FaceResult list (the inverse of faces_to_message, e.g. for the web view).

    The message carries no cover circle: ``center`` is the box centre and ``radius`` half its diagonal;
    ``landmarks`` is (0, 2) unless the anonymizer published them.
    """
    out = []
    for f in msg.faces:
        r = f.roi
        box = np.array([r.x_offset, r.y_offset, r.x_offset + r.width, r.y_offset + r.height], np.float32)
        out.append(FaceResult(
            track_id=int(f.track_id), box=box, score=float(f.detection_score),
            probabilities=np.asarray(f.probabilities, np.float32),
            emotion_index=UNKNOWN_INDEX if f.emotion_index == f.UNKNOWN else int(f.emotion_index),
            confidence=float(f.confidence), roll_deg=float(f.roll_deg),
            landmarks=np.asarray(f.landmarks, np.float32).reshape(-1, 2),
            center=(float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2),
            radius=float(np.hypot(r.width, r.height)) / 2,
            yaw_deg=float(f.yaw_deg), pitch_deg=float(f.pitch_deg), reading=str(getattr(f, "reading", "") or "read"),
        ))
    return out


def diagnostics_values(msg: object, name_part: str = "emoji anonymizer") -> dict[str, str] | None:
    """The key/values of the first status in a DiagnosticArray whose name contains ``name_part``."""
    for status in msg.status:
        if name_part in status.name:
            return {kv.key: kv.value for kv in status.values}
    return None


def diagnostics_message(header: object, name: str, hardware_id: str, level: int, summary: str,
                        values: dict[str, object]) -> DiagnosticArray:
    """One DiagnosticStatus wrapped in a DiagnosticArray for /diagnostics."""
    status = DiagnosticStatus(level=level, name=name, message=summary, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=header, status=[status])


IDENTITY3 = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def camera_info_from_yaml(path: str | Path, frame_id: str = "") -> CameraInfo:
    """Read a camera_calibration YAML (the format camera_info_manager writes) into CameraInfo."""
    try:
        with open(path) as f:
            c = yaml.safe_load(f)
        info = CameraInfo(width=int(c["image_width"]), height=int(c["image_height"]),
                          distortion_model=str(c.get("distortion_model", "plumb_bob")),
                          D=[float(v) for v in c["distortion_coefficients"]["data"]],
                          K=[float(v) for v in c["camera_matrix"]["data"]],
                          R=[float(v) for v in c.get("rectification_matrix", {"data": IDENTITY3})["data"]],
                          P=[float(v) for v in c["projection_matrix"]["data"]])
    except OSError as e:
        raise ConfigError(f"cannot read calibration file {path}: {e.strerror}") from e
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"calibration file {path} is not a camera_calibration YAML ({e!r}); "
                          "write it with `rosrun camera_calibration cameracalibrator.py`") from e
    if len(info.K) != 9 or len(info.R) != 9 or len(info.P) != 12:
        raise ConfigError(f"calibration file {path}: camera_matrix needs 9, rectification 9, projection 12 values")
    info.header.frame_id = frame_id
    return info


def default_camera_info(width: int, height: int, frame_id: str) -> CameraInfo:
    """An uncalibrated CameraInfo (all-zero K) so consumers still learn the image size."""
    info = CameraInfo(width=width, height=height)
    info.header.frame_id = frame_id
    return info
