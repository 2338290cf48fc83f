"""Recorded ROS 2 bags (rosbag2), sanitized for sharing as ROS 1 bags are (``bag.py``, docs/bags.md).

A ROS 2 bag is a folder holding ``metadata.yaml`` and its storage files: ``.db3`` (sqlite3, the default of ROS 2
Humble) or ``.mcap`` (MCAP, the default from Iron on). ``anonymize_ros2_bag(src, dst, config)`` writes the folder
``dst`` in the same storage format with the same topics, message counts and receipt times: every
``sensor_msgs/msg/Image`` and ``CompressedImage`` topic anonymized in place (header, encoding or format kept),
every other message copied as its CDR bytes, each copied topic keeping its type, definition, hash,
serialization format and QoS profiles; beside each image topic ``<image topic>/faces``
(``emoji_privacy/msg/FaceEmotionArray``, one per frame with the frame's header, the image topic's QoS), its
definition (and FaceEmotion's) registered in the bag from the package's msg/ files. The per-frame work,
fail-closed masking and --faces-json lines are those of the ROS 1 tool (``bag._BagAnonymizer``).

``src`` may be the folder or one of its ``.db3``/``.mcap`` files (which stands for its whole folder); a storage
file without a metadata.yaml beside it is refused (``ros2 bag reindex`` writes one). The output folder is
written whole or not at all (``atomic.atomic_new_folder``); an existing ``dst`` is replaced only when it is an
empty folder or holds nothing but a rosbag2 bag. The pure-Python ``rosbags`` library is loaded only when a
ROS 2 bag is read or written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..atomic import atomic_new_folder
from ..config import PipelineConfig
from ..errors import BagError
from ..ros import ros2_bags
from .bag import BagOutput, BagSummary, check_output_folder, faces_topic, run_job

BAG_FILE_SUFFIXES = (".db3", ".mcap", ".db3.zstd", ".mcap.zstd", ".db3-shm", ".db3-wal", ".db3-journal")
"""Files a rosbag2 folder may hold beside metadata.yaml: an output folder holding only these may be replaced."""


def is_ros2_bag(path: Path) -> bool:
    """Whether ``path`` is a ROS 2 bag: a folder holding metadata.yaml, or a ``.db3``/``.mcap`` file beside one.
    Reads no more than the folder listing (a damaged bag is still one; ``anonymize_ros2_bag`` says what is
    wrong with it)."""
    return ros2_bags.bag_folder(Path(path)) is not None


def _folder(src: Path) -> Path:
    """The bag folder of ``src`` (itself or the folder of its storage file), or a BagError saying why not."""
    src = Path(src)
    if not src.exists():
        raise BagError(f"ROS 2 bag {src} does not exist")
    folder = ros2_bags.bag_folder(src)
    if folder is not None:
        return folder
    if src.is_file() and src.suffix in ros2_bags.STORAGE_SUFFIXES.values():
        ros2_bags.read_metadata(src.parent)  # raises, saying that metadata.yaml is missing
    ros2_bags.read_metadata(src)  # a folder without metadata.yaml, or a file: raises saying which
    raise BagError(f"{src} is not a ROS 2 bag")  # not reached: read_metadata raised


def ros2_default_output(src: Path) -> Path:
    """``<name>_anonymized`` beside the bag folder (``rec/`` -> ``rec_anonymized/``; given ``rec/rec_0.mcap``,
    the same)."""
    src = Path(src)
    folder = ros2_bags.bag_folder(src) or src
    return folder.with_name(f"{folder.name}_anonymized")


def ros2_frame_count(src: Path) -> int:
    """Image messages of the bag (all its Image and CompressedImage topics), from metadata.yaml alone: the
    ``total`` that ``progress`` will be given. BagError when it is not a readable ROS 2 bag folder."""
    return ros2_bags.image_message_count(_folder(src))


def _replaceable(dst: Path) -> bool:
    """Whether an existing ``dst`` may be replaced: an empty folder, or one holding only a rosbag2 bag."""
    if not dst.is_dir() or dst.is_symlink():
        return False
    names = [p.name for p in dst.iterdir()]
    if not names:
        return True
    return "metadata.yaml" in names and all(n == "metadata.yaml" or n.endswith(BAG_FILE_SUFFIXES) for n in names)


def _check_paths(folder: Path, dst: Path, faces_json: Path | None) -> None:
    src = folder.resolve()
    out = dst.resolve()
    if out == src or src in out.parents:
        raise BagError(f"the output bag {dst} is the input bag {folder} or inside it; choose a folder outside it")
    if out in src.parents:
        raise BagError(f"the output bag {dst} would replace a folder holding the input bag {folder}; "
                       "choose another output folder")
    if dst.exists() or dst.is_symlink():
        if not dst.is_dir():
            raise BagError(f"the output bag {dst} is a file; a ROS 2 bag is a folder: give a new folder name")
        if not _replaceable(dst):
            raise BagError(f"the output folder {dst} exists and holds more than a ROS 2 bag; give a new folder "
                           "name (an existing output bag folder is replaced)")
    check_output_folder("output bag", dst)
    if faces_json is not None:
        fj = faces_json.resolve()
        if fj == out or out in fj.parents or src in fj.parents:
            raise BagError(f"the faces JSON {faces_json} would be inside the input or output bag folder; "
                           "write it elsewhere")
        if faces_json.is_dir():
            raise BagError(f"the faces JSON {faces_json} is a folder; give a file name")
        check_output_folder("faces JSON", faces_json)


class _Ros2Bag:
    """A ROS 2 bag through ``ros.ros2_bags`` (rosbags): the backend of ``anonymize_ros2_bag``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.reader = ros2_bags.Ros2BagReader(folder)
        self.infos = self.reader.infos

    def items(self) -> Iterator[tuple[str, str, Any]]:
        for conn, t, data in self.reader.messages():
            yield conn.topic, conn.msgtype, (conn, t, data)

    def decode(self, item: Any, topic: str, index: int) -> Any:
        conn, _, data = item
        try:
            return ros2_bags.deserialize(data, conn.msgtype)
        except Exception as e:  # noqa: BLE001 - a damaged record: say so, write nothing
            raise BagError(f"message {index} of {topic} in {self.path} is damaged ({type(e).__name__}: {e}); "
                           f"check the bag with `ros2 bag info {self.path}`") from e

    def reread(self, topic: str) -> Iterator[Any]:
        with ros2_bags.Ros2BagReader(self.path) as reader:
            for conn, _, data in reader.messages([topic]):
                try:
                    msg = ros2_bags.deserialize(data, conn.msgtype)
                except Exception:  # noqa: BLE001, S112 - a damaged record: try the next one
                    continue
                yield msg

    @contextlib.contextmanager
    def writer(self, path: Path, images: list[str]) -> Iterator[BagOutput]:
        meta = self.reader.metadata
        compression = (meta.get("compression_mode") or "", meta.get("compression_format") or "")
        with ros2_bags.Ros2BagWriter(path, self.reader.storage, int(meta.get("version", 9)), compression,
                                     meta.get("custom_data")) as writer:
            out: dict[int, Any] = {}
            faces: dict[str, Any] = {}
            for conn in self.reader.connections:
                out[conn.id] = writer.copy_connection(conn)
                topic = faces_topic(conn.topic)
                if conn.topic in images and topic not in faces:  # the faces topic next to its image topic
                    faces[topic] = writer.add_connection(topic, ros2_bags.FACES_TYPE, qos=conn.ext.offered_qos_profiles)
            yield _Ros2Output(writer, out, faces)

    def faces_message(self, faces: list, header: Any, with_landmarks: bool) -> Any:
        return ros2_bags.faces_message(faces, header, with_landmarks)

    def close(self) -> None:
        self.reader.close()


class _Ros2Output:
    def __init__(self, writer: ros2_bags.Ros2BagWriter, connections: dict[int, Any], faces: dict[str, Any]) -> None:
        self.writer, self.connections, self.faces = writer, connections, faces

    def copy(self, item: Any) -> None:
        conn, t, data = item
        self.writer.write(self.connections[conn.id], t, data)

    def write_image(self, item: Any, msg: Any) -> None:
        conn, t, _ = item
        self.writer.write(self.connections[conn.id], t, ros2_bags.serialize(msg))

    def write_faces(self, topic: str, msg: Any, item: Any) -> None:
        self.writer.write(self.faces[topic], item[1], ros2_bags.serialize(msg))


def anonymize_ros2_bag(src: Path, dst: Path, config: PipelineConfig, *, faces_json: Path | None = None,
                       progress: Callable[[int, int], None] | None = None) -> BagSummary:
    """Write the folder ``dst``: the ROS 2 bag ``src`` (a folder, or one of its storage files) with every face of
    every image topic covered (module docstring), in the same storage format.

    ``faces_json``: also write one JSON line per frame (topic, frame, stamp, faces). ``progress(done, total)``
    is called with (0, total) first and after every image frame. Raises BagError (or another
    EmojiPrivacyError) with a one-line message; on any error or KeyboardInterrupt no output is left behind
    and an existing ``dst`` is left as it was.
    """
    dst = Path(dst)
    faces_json = Path(faces_json) if faces_json is not None else None
    config.validate()
    folder = _folder(Path(src))
    _check_paths(folder, dst, faces_json)
    return run_job(_Ros2Bag(folder), dst, config, atomic_new_folder, faces_json, progress,
                   "drop that topic, e.g. with `ros2 bag convert`, to run again")
