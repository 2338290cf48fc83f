"""Bag files for the offline tools: open with clear errors, find the image topics, read and
write messages in time order (the rosbag API).

The `rosbag` module imports `rospy`, so this is the one library module that pulls rospy in.
The library never imports it at module level: only the command-line tools (`video_to_bag`,
`evaluate_bag`, the `replay_bag` node) do, inside their entry points. Message conversion stays
in `ros_messages`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import genpy
import rosbag

from ..errors import BagError
from .common import IMAGE_TYPES, TopicInfo, describe, image_topics  # noqa: F401 - the ROS 1 bag tools use them here

FACES_TYPE = "emoji_privacy/FaceEmotionArray"
DIAGNOSTICS_TYPE = "diagnostic_msgs/DiagnosticArray"
OUTPUT_IMAGE_SUFFIXES = ("anonymized/image", "anonymized/image/compressed")
"""Topics the listener publishes its anonymized frames on (any namespace)."""


def open_bag(path: str | Path) -> rosbag.Bag:
    """Open a bag for reading, or raise BagError saying what is wrong with the file and what to do."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag file {p} does not exist")
    if p.is_dir():
        raise BagError(f"{p} is a folder, not a bag file (ROS 2 bags are folders; this tool reads ROS 1 .bag files)")
    try:
        return rosbag.Bag(str(p), "r")
    except rosbag.ROSBagUnindexedException as e:
        raise BagError(f"bag {p} has no index: the file is truncated or its recording was cut off; repair it with "
                       f"`rosbag reindex {p}` (keeps the original as .orig.bag) and run this again") from e
    except rosbag.ROSBagException as e:
        raise BagError(f"{p} is not a readable ROS 1 bag ({e}); check it with `rosbag info {p}`") from e
    except UnicodeDecodeError as e:  # rosbag decodes the version line before it can say "not a bag"
        raise BagError(f"{p} is not a ROS 1 bag (its first line is not a bag header); check it with "
                       f"`rosbag info {p}`") from e
    except OSError as e:
        raise BagError(f"cannot read bag {p}: {e.strerror}") from e


def topics(bag: rosbag.Bag) -> dict[str, TopicInfo]:
    """Every topic of the bag with its message type and count."""
    info = bag.get_type_and_topic_info().topics
    return {name: TopicInfo(name, t.msg_type, t.message_count) for name, t in sorted(info.items())}


def output_topics(infos: dict[str, TopicInfo]) -> tuple[str | None, str | None]:
    """The listener's (anonymized image topic, faces topic) in this bag, when it holds them.

    The raw `anonymized/image` is preferred over its JPEG twin (no compression artefacts).
    """
    images = [n for n in image_topics(infos) if n.endswith(OUTPUT_IMAGE_SUFFIXES)]
    images.sort(key=lambda n: n.endswith("compressed"))
    faces = [t.name for t in infos.values() if t.msg_type == FACES_TYPE]
    return (images[0] if images else None), (faces[0] if faces else None)


def choose_image_topic(path: str | Path, infos: dict[str, TopicInfo], wanted: str | None,
                       exclude: tuple[str, ...] = ()) -> str:
    """The image topic to read: ``wanted`` when given (checked), else the bag's only image topic
    outside ``exclude``. Raises BagError listing the topics when there is no clear choice."""
    if wanted:
        if wanted not in infos:
            raise BagError(f"bag {path} has no topic {wanted}; its topics: {describe(infos)}")
        if infos[wanted].msg_type not in IMAGE_TYPES:
            raise BagError(f"topic {wanted} of {path} holds {infos[wanted].msg_type}, not sensor_msgs/Image or "
                           f"CompressedImage; its image topics: {', '.join(image_topics(infos)) or 'none'}")
        return wanted
    candidates = [n for n in image_topics(infos) if n not in exclude]
    if not candidates:
        raise BagError(f"bag {path} holds no sensor_msgs/Image or sensor_msgs/CompressedImage topic; "
                       f"its topics: {describe(infos)}")
    if len(candidates) > 1:
        raise BagError(f"bag {path} holds several image topics ({', '.join(candidates)}); choose one with --topic")
    return candidates[0]


def read(bag: rosbag.Bag, names: list[str]) -> Iterator[tuple[str, object, float]]:
    """(topic, message, receipt time in seconds) of ``names`` in recording order.

    A chunk that cannot be read (a damaged file) raises BagError instead of rosbag's traceback.
    """
    try:
        for topic, msg, t in bag.read_messages(topics=names):
            yield topic, msg, t.to_sec()
    except (rosbag.ROSBagException, genpy.DeserializationError, OSError) as e:
        raise BagError(f"bag {bag.filename} is damaged ({e}); try `rosbag check {bag.filename}` "
                       "and `rosbag fix` or `rosbag reindex`") from e


def read_raw(bag: rosbag.Bag, names: list[str] | None = None,
             start_ns: int | None = None) -> Iterator[tuple[str, tuple, genpy.Time, dict]]:
    """(topic, raw message, receipt time, connection header) of every message (or of ``names``) in
    recording order, for copying messages unchanged: the raw message is rosbag's
    (type, serialized bytes, md5sum, position, message class), the time rosbag's own (nanoseconds kept).
    ``start_ns``: only the messages received at or after this time (the index finds them: the chunks before
    are not read).

    A chunk that cannot be read raises BagError, as ``read`` does.
    """
    start = None if start_ns is None else genpy.Time(*divmod(int(start_ns), 1_000_000_000))
    try:
        yield from bag.read_messages(topics=names, start_time=start, raw=True, return_connection_header=True)
    except (rosbag.ROSBagException, genpy.DeserializationError, OSError) as e:
        raise BagError(f"bag {bag.filename} is damaged ({e}); try `rosbag check {bag.filename}` "
                       "and `rosbag fix` or `rosbag reindex`") from e


def span_ns(bag: rosbag.Bag) -> tuple[int, int]:
    """Receipt times (nanoseconds) of the bag's first message (exactly: it is read) and last one (from the index,
    to the microsecond); (0, 0) for an empty bag."""
    first = next(read_raw(bag), None)
    if first is None:
        return 0, 0
    return first[2].to_nsec(), max(first[2].to_nsec(), round(bag.get_end_time() * 1e9))


def compression(bag: rosbag.Bag) -> str:
    """The chunk compression of a bag opened for reading ('none', 'bz2' or 'lz4')."""
    return bag.get_compression_info().compression or "none"


class BagWriter:
    """Writes messages with their receipt time; a context manager that closes (indexes) the bag."""

    def __init__(self, path: str | Path, compression: str = "none") -> None:
        try:
            self._bag = rosbag.Bag(str(path), "w", compression=compression)
        except (OSError, rosbag.ROSBagException) as e:
            raise BagError(f"cannot write bag {path}: {e}") from e

    def write(self, topic: str, msg: object, t: float) -> None:
        self._bag.write(topic, msg, genpy.Time.from_sec(t))

    def write_at(self, topic: str, msg: object, t: genpy.Time) -> None:
        """Write a message at the exact time ``t`` (nanoseconds kept, unlike ``write``'s float seconds)."""
        try:
            self._bag.write(topic, msg, t)
        except OSError as e:
            raise BagError(f"cannot write bag {self._bag.filename}: {e.strerror or e}") from e

    def write_raw(self, topic: str, raw: tuple, t: genpy.Time, connection_header: dict | None = None) -> None:
        """Write serialized bytes as read by ``read_raw`` (raw = (type, bytes, md5sum, position, class)) at the
        exact time ``t``; ``connection_header``: the topic's header in the new bag (the first one written for a
        topic is kept, as rosbag keeps one connection per topic)."""
        try:
            self._bag.write(topic, raw, t, raw=True, connection_header=connection_header)
        except OSError as e:
            raise BagError(f"cannot write bag {self._bag.filename}: {e.strerror or e}") from e

    def close(self) -> None:
        self._bag.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
