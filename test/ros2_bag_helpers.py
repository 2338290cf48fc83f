"""ROS 2 bags (rosbag2 folders, sqlite3 or MCAP) made from the shared videos for the tests, written with the
library's own writer (emoji_privacy.ros.ros2_bags, on the pure-Python rosbags), and read back raw.

``write_ros2_bag`` makes the bag of test_ros2_bag: a raw bgr8 Image topic from fer_test.mp4, a JPEG
CompressedImage topic from fer_woman2.mp4 (one frame of each undecodable when asked), CameraInfo beside the raw
topic, a std_msgs/String chatter and a /tf_static with transient-local QoS (copied connections must keep it).
The bench's converter is ``emoji_privacy.ros.ros2_bags.video_to_ros2_bag``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from data_helpers import video_frames

from emoji_privacy.ros import ros2_bags

START_NS = 1_700_000_000 * 10**9
FRAME_NS = 40_000_000  # 25 fps
RECEIPT_DELAY_NS = 13_000_017  # receipt time = stamp + 13.000017 ms (nanoseconds must survive)
RAW, JPEG = "/camera/image_raw", "/front/image/compressed"
INFO, CHATTER, TF = "/camera/camera_info", "/chatter", "/tf_static"


def latched_qos() -> list[Any]:
    """The offered QoS of a latched topic (/tf_static): keep last 1, reliable, transient local."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, never, never,
                QosLiveliness.AUTOMATIC, never, False)]


def write_ros2_bag(path: Path, storage: str, frames: int = 12, broken: dict[str, int] | None = None,
                   images: bool = True) -> dict[str, list[np.ndarray | None]]:
    """The test bag at ``path`` (a new folder); returns the frames written per image topic (None where the
    frame is undecodable: ``broken`` maps a topic to the index of its broken frame)."""
    broken = broken or {}
    types = ros2_bags.typestore().types
    raw_frames, jpeg_frames = video_frames("fer_test.mp4", 4, frames), video_frames("fer_woman2.mp4", 15, frames)
    assert len(raw_frames) == len(jpeg_frames) == frames
    written: dict[str, list[np.ndarray | None]] = {RAW: [], JPEG: []}
    with ros2_bags.Ros2BagWriter(path, storage) as bag:
        conn = {INFO: bag.add_connection(INFO, "sensor_msgs/msg/CameraInfo"),
                CHATTER: bag.add_connection(CHATTER, "std_msgs/msg/String"),
                TF: bag.add_connection(TF, "tf2_msgs/msg/TFMessage", qos=latched_qos())}
        if images:
            conn[RAW] = bag.add_connection(RAW, "sensor_msgs/msg/Image")
            conn[JPEG] = bag.add_connection(JPEG, "sensor_msgs/msg/CompressedImage")

        def write(topic: str, msg: Any, t_ns: int) -> None:
            bag.write(conn[topic], t_ns, ros2_bags.serialize(msg))

        write(TF, types["tf2_msgs/msg/TFMessage"](transforms=[]), START_NS)
        for i in range(frames):
            stamp = START_NS + i * FRAME_NS
            head = ros2_bags.header(stamp, "camera_optical")
            info = types["sensor_msgs/msg/CameraInfo"](
                header=head, height=336, width=596, distortion_model="plumb_bob", d=np.zeros(5),
                k=np.array([500.0, 0, 298, 0, 500.0, 168, 0, 0, 1]), r=np.eye(3).reshape(-1), p=np.zeros(12),
                binning_x=0, binning_y=0, roi=types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False))
            write(INFO, info, stamp + RECEIPT_DELAY_NS)
            if i % 5 == 0:
                write(CHATTER, types["std_msgs/msg/String"](data=f"hello {i}"), stamp + RECEIPT_DELAY_NS)
            if not images:
                continue
            msg = ros2_bags.image_message(raw_frames[i], head)
            if broken.get(RAW) == i:  # the data is far too short for its size: not decodable
                msg.data = msg.data[:10].copy()
            written[RAW].append(None if broken.get(RAW) == i else raw_frames[i])
            write(RAW, msg, stamp + RECEIPT_DELAY_NS)
            front = ros2_bags.header(stamp + 4_000_000, "front_optical")
            msg = ros2_bags.image_message(jpeg_frames[i], front, "jpeg")
            if broken.get(JPEG) == i:  # a JPEG cut after its first bytes
                msg.data = msg.data[:400].copy()
                written[JPEG].append(None)
            else:
                from emoji_privacy import image_io

                written[JPEG].append(image_io.decode_compressed(msg.data))
            write(JPEG, msg, stamp + 4_000_000 + RECEIPT_DELAY_NS)
    return written


def read_raw(path: Path) -> list[tuple[str, int, bytes]]:
    """(topic, receipt time in ns, CDR bytes) of every message of the bag, in recording order."""
    with ros2_bags.Ros2BagReader(path) as reader:
        return [(c.topic, t, bytes(data)) for c, t, data in reader.messages()]


def connections(path: Path) -> dict[str, Any]:
    """topic -> the bag's rosbags Connection (type, definition, hash, serialization format, QoS)."""
    with ros2_bags.Ros2BagReader(path) as reader:
        return {c.topic: c for c in reader.connections}


def decode(topic_type: str, data: bytes) -> Any:
    return ros2_bags.deserialize(data, topic_type)
