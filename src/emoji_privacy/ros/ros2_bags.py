"""ROS 2 bags (rosbag2: a folder holding ``metadata.yaml`` and its ``.db3`` (sqlite3) or ``.mcap`` storage files),
read and written with the pure-Python ``rosbags`` library: no ROS 2 installation, no ROS 1 import.

- ``bag_folder``, ``read_metadata``, ``image_message_count``: the folder and its metadata.yaml (PyYAML only);
- ``Ros2BagReader``: connections, topics and raw (CDR) messages in recording order, with one-line BagErrors;
- ``Ros2BagWriter``: a new bag (same storage, compression and rosbag2 version as another when asked), copied
  connections keeping their definition, hash, serialization format and QoS profiles;
- ``typestore()``: rosbags' ROS 2 Humble types with emoji_privacy/msg/FaceEmotion(Array) registered from the
  package's own ``msg/*.msg`` files, so a bag written here carries their definition;
- ``faces_message``, ``image_message``: the ROS 2 messages the tools write;
- ``video_to_ros2_bag``, ``write_image_bag``, ``read_images``: bags made from videos or frames, and their images
  read back (tests, benchmarks).

``rosbags`` is imported inside the functions that need it: importing this module, and the metadata helpers,
cost nothing.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import image_io
from ..errors import BagError
from ..model_files import package_dirs
from .common import IMAGE_TYPES, TopicInfo, base_type, face_fields, image_to_bgr, image_topics

FACES_TYPE = "emoji_privacy/msg/FaceEmotionArray"
MSG_TYPES = ("FaceEmotion", "FaceEmotionArray")  # msg/<name>.msg of this package, in dependency order
STORAGE_SUFFIXES = {"sqlite3": ".db3", "mcap": ".mcap"}
"""The storage plugins read and written here, and their files' suffix."""
WRITE_VERSIONS = (8, 9)
"""rosbag2 metadata versions rosbags writes; an input of another version is written as version 9."""


# --- the folder and its metadata -------------------------------------------------------------------------------


def bag_folder(path: Path) -> Path | None:
    """The rosbag2 folder ``path`` stands for: itself when it is a folder holding metadata.yaml, its folder when
    it is a ``.db3``/``.mcap`` file beside a metadata.yaml; None otherwise."""
    path = Path(path)
    if path.is_dir():
        return path if (path / "metadata.yaml").is_file() else None
    if path.suffix in STORAGE_SUFFIXES.values() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    return None


def read_metadata(folder: Path) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` of a bag folder's metadata.yaml, or a one-line BagError saying what
    is wrong (no metadata.yaml, not YAML, not rosbag2 metadata, a storage this tool cannot read)."""
    folder = Path(folder)
    meta = folder / "metadata.yaml"
    if not folder.is_dir():
        raise BagError(f"{folder} is not a ROS 2 bag: a rosbag2 bag is a folder holding metadata.yaml")
    if not meta.is_file():
        storage = sorted(p.name for p in folder.iterdir() if p.suffix in STORAGE_SUFFIXES.values())
        if storage:
            raise BagError(f"ROS 2 bag folder {folder} has {', '.join(storage)} but no metadata.yaml: its recording "
                           f"is still running or was cut off; when it is over, `ros2 bag reindex {folder}` "
                           "writes the metadata")
        raise BagError(f"{folder} is not a ROS 2 bag folder (no metadata.yaml in it)")
    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        storage = info["storage_identifier"]
        files = list(info["relative_file_paths"])
        info["topics_with_message_count"] = topics = info.get("topics_with_message_count") or []
        if not all(isinstance(t["topic_metadata"]["name"], str) and isinstance(t["topic_metadata"]["type"], str)
                   and int(t["message_count"]) >= 0 for t in topics):
            raise ValueError("topics_with_message_count")
    except OSError as e:
        raise BagError(f"cannot read {meta}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise BagError(f"{meta} is not valid YAML{line}; restore it or rebuild it with "
                       f"`ros2 bag reindex {folder}`") from e
    except (KeyError, TypeError, ValueError) as e:
        raise BagError(f"{meta} is not rosbag2 metadata (missing or bad {e}); rebuild it with "
                       f"`ros2 bag reindex {folder}`") from e
    if storage not in STORAGE_SUFFIXES:
        raise BagError(f"ROS 2 bag {folder} is stored with '{storage}'; this tool reads sqlite3 and mcap bags "
                       "(convert it with `ros2 bag convert`)")
    missing = [f for f in files if not (folder / Path(f).name).is_file()]
    if missing:
        raise BagError(f"ROS 2 bag {folder} lacks its storage file(s) {', '.join(missing)} listed in metadata.yaml")
    return info


def span_ns(metadata: dict[str, Any]) -> tuple[int, int]:
    """(starting time, time of the last message) in nanoseconds, from metadata.yaml's rosbag2_bagfile_information
    (``read_metadata``): its starting_time and duration."""
    try:
        first = int(metadata["starting_time"]["nanoseconds_since_epoch"])
        return first, first + int(metadata["duration"]["nanoseconds"])
    except (KeyError, TypeError, ValueError) as e:
        raise BagError(f"metadata.yaml has no usable starting_time/duration ({e}); rebuild it with "
                       "`ros2 bag reindex`") from e


def image_message_count(folder: Path) -> int:
    """Image and CompressedImage messages of a bag, from its metadata.yaml alone."""
    topics = read_metadata(folder)["topics_with_message_count"]
    return sum(int(t["message_count"]) for t in topics if base_type(t["topic_metadata"]["type"]) in IMAGE_TYPES)


# --- types -------------------------------------------------------------------------------------------------------


def msg_files() -> list[Path]:
    """This package's FaceEmotion.msg and FaceEmotionArray.msg: the source tree's msg/ or the installed
    ``share/emoji_privacy/msg`` (catkin installs them there), found as the model files' package folders are."""
    dirs = package_dirs()
    for d in dirs:
        files = [d / "msg" / f"{name}.msg" for name in MSG_TYPES]
        if all(f.is_file() for f in files):
            return files
    raise BagError(f"the message definitions msg/{MSG_TYPES[0]}.msg and msg/{MSG_TYPES[1]}.msg of emoji_privacy "
                   f"are not in {', '.join(map(str, dirs)) or 'any package folder'}; reinstall the package")


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """rosbags' ROS 2 Humble typestore with emoji_privacy/msg/FaceEmotion and FaceEmotionArray registered from
    the package's .msg files (``msg_files``)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for f in msg_files():
        types.update(get_types_from_msg(f.read_text(), f"emoji_privacy/msg/{f.stem}"))
    store.register(types)
    return store


def _store_for(msgtype: str, msgdef: str) -> Any:
    """A typestore knowing ``msgtype`` from its ros2msg definition (with the types it embeds)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    sep = "=" * 80 + "\n"
    parts = msgdef.split(sep)
    types = dict(get_types_from_msg(parts[0], msgtype))
    for part in parts[1:]:
        head, _, text = part.partition("\n")
        name = head.removeprefix("MSG: ").strip()
        name = name if "/msg/" in name else name.replace("/", "/msg/", 1)
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def definition(msgtype: str, msgdef: str = "", msg_format: str = "", digest: str = "") -> tuple[str, str]:
    """(definition text, RIHS01 hash) to write for ``msgtype``: those given, what is missing completed from
    the given ros2msg definition or else from ``typestore()``. BagError when neither knows the type."""
    if msgdef and digest:
        return msgdef, digest
    try:
        store = _store_for(msgtype, msgdef) if msgdef and msg_format == "MSG" else typestore()
        return msgdef or store.generate_msgdef(msgtype, ros_version=2)[0], digest or store.hash_rihs01(msgtype)
    except Exception as e:  # noqa: BLE001 - rosbags raises several types for an unknown or unparsable type
        raise BagError(f"the definition of {msgtype} is neither in the bag nor a ROS 2 Humble type known to "
                       f"rosbags ({type(e).__name__}: {_one_line(e)}); record the bag with MCAP storage, which keeps "
                       "the definitions, or drop the topic with `ros2 bag convert`") from e


# --- reading -----------------------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class Ros2BagReader:
    """An open rosbag2 folder: ``connections``, ``infos`` (topic -> TopicInfo), ``metadata`` (metadata.yaml's
    rosbag2_bagfile_information) and its raw messages. Errors are one-line BagErrors."""

    def __init__(self, folder: Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(folder)
        self.metadata = read_metadata(self.path)
        self.storage: str = self.metadata["storage_identifier"]
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as e:  # noqa: BLE001 - ReaderError, sqlite/apsw and parser errors: all mean unreadable
            raise BagError(f"cannot read ROS 2 bag {self.path}: {_one_line(e)}; its {self.storage} storage is "
                           f"damaged or cut off (check it with `ros2 bag info {self.path}`)") from e
        self.connections = list(self._reader.connections)
        self.infos = {name: TopicInfo(name, t.msgtype or "(several types)", t.msgcount)
                      for name, t in sorted(self._reader.topics.items())}

    def messages(self, topics: Sequence[str] | None = None,
                 start: int | None = None) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, receipt time in nanoseconds, CDR bytes) of every message (or of ``topics``) in
        recording order; ``start``: only those received at or after it (nanoseconds)."""
        conns = [c for c in self.connections if topics is None or c.topic in topics]
        if not conns:
            return
        try:
            yield from self._reader.messages(conns, start=start)
        except Exception as e:  # noqa: BLE001 - a damaged chunk or page: say so in one line
            raise BagError(f"ROS 2 bag {self.path} is damaged ({_one_line(e)}); check it with "
                           f"`ros2 bag info {self.path}`") from e

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> Ros2BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deserialize(data: bytes, msgtype: str) -> Any:
    return typestore().deserialize_cdr(data, msgtype)


def serialize(msg: Any) -> bytes:
    """CDR bytes of a message; a ``data`` field left as bytes (the tools' image buffers) becomes a uint8 array."""
    if isinstance(getattr(msg, "data", None), bytes | bytearray):
        msg.data = np.frombuffer(msg.data, np.uint8)
    return bytes(typestore().serialize_cdr(msg, msg.__msgtype__))


# --- writing -----------------------------------------------------------------------------------------------------


class Ros2BagWriter:
    """A new rosbag2 folder at ``path`` (which must not exist): ``storage`` 'sqlite3' or 'mcap', rosbag2
    ``version`` 8 or 9 (another becomes 9), ``compression`` (mode, format) as metadata.yaml has them
    ('file'/'message', 'zstd'; empty: none). A context manager: closed (metadata written) at the end of the
    block, aborted on an exception."""

    def __init__(self, path: Path, storage: str = "sqlite3", version: int = 9,
                 compression: tuple[str, str] = ("", ""), custom_data: dict[str, str] | None = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        self.path = Path(path)
        try:
            self._writer = Writer(self.path, version=version if version in WRITE_VERSIONS else 9,
                                  storage_plugin=StoragePlugin[storage.upper()])
            mode, fmt = (compression[0] or "").lower(), (compression[1] or "").lower()
            if mode in ("file", "message"):
                self._writer.set_compression(CompressionMode[mode.upper()], CompressionFormat[fmt.upper()])
            for key, value in (custom_data or {}).items():
                self._writer.set_custom_data(str(key), str(value))
            self._writer.open()
        except (KeyError, ValueError) as e:
            raise BagError(f"cannot write ROS 2 bag {self.path}: unsupported storage or compression {e}") from e
        except Exception as e:  # noqa: BLE001 - WriterError, OSError
            raise BagError(f"cannot write ROS 2 bag {self.path}: {_one_line(e)}") from e

    def add_connection(self, topic: str, msgtype: str, *, msgdef: str = "", msg_format: str = "",
                       digest: str = "", serialization_format: str = "cdr", qos: Sequence[Any] = ()) -> Any:
        """A connection for ``topic``; its definition and hash are those given, completed by ``definition``."""
        msgdef, digest = definition(msgtype, msgdef, msg_format, digest)
        return self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest,
                                           serialization_format=serialization_format,
                                           offered_qos_profiles=list(qos))

    def copy_connection(self, conn: Any) -> Any:
        """A connection like ``conn`` (read from another bag): same topic, type, definition, hash, serialization
        format and offered QoS profiles."""
        return self.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data,
                                   msg_format=conn.msgdef.format.name, digest=conn.digest,
                                   serialization_format=conn.ext.serialization_format,
                                   qos=conn.ext.offered_qos_profiles)

    def write(self, conn: Any, t_ns: int, data: bytes) -> None:
        try:
            self._writer.write(conn, int(t_ns), data)
        except OSError as e:
            raise BagError(f"cannot write ROS 2 bag {self.path}: {e.strerror or e}") from e

    def __enter__(self) -> Ros2BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.__exit__(*exc)


# --- messages ----------------------------------------------------------------------------------------------------


def faces_message(faces: Sequence[Any], header: Any, with_landmarks: bool = False) -> Any:
    """A frame's faces -> emoji_privacy/msg/FaceEmotionArray carrying the image's ``header``: the listed faces,
    the same fields as the ROS 1 message (common.face_fields)."""
    from ..pipeline import listed_faces

    types = typestore().types
    face_type, roi_type = types["emoji_privacy/msg/FaceEmotion"], types["sensor_msgs/msg/RegionOfInterest"]
    out = []
    for f in listed_faces(faces):
        fields = face_fields(f, with_landmarks)
        out.append(face_type(**{**fields, "roi": roi_type(**fields["roi"]),
                                "probabilities": np.asarray(fields["probabilities"], np.float32),
                                "landmarks": np.asarray(fields["landmarks"], np.float32)}))
    return types[FACES_TYPE](header=header, faces=out)


def header(stamp_ns: int, frame_id: str = "") -> Any:
    """std_msgs/msg/Header with a stamp in nanoseconds."""
    types = typestore().types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def image_message(img: np.ndarray, head: Any, encoding: str = "bgr8", jpeg_quality: int = 90) -> Any:
    """BGR array -> sensor_msgs/msg/Image in a raw ``encoding``, or CompressedImage for 'jpeg' / 'png' (format
    named as image_transport's compressed plugin does)."""
    types = typestore().types
    if encoding in ("jpeg", "png"):
        data = image_io.encode_jpeg(img, jpeg_quality) if encoding == "jpeg" else image_io.encode_png(img)
        return types["sensor_msgs/msg/CompressedImage"](header=head, format=f"bgr8; {encoding} compressed bgr8",
                                                        data=np.frombuffer(data, np.uint8))
    data, h, w, step = image_io.encode_raw(img, encoding)
    return types["sensor_msgs/msg/Image"](header=head, height=h, width=w, encoding=encoding,
                                          is_bigendian=0 if np.little_endian else 1, step=step,
                                          data=np.frombuffer(data, np.uint8))


# --- bags from videos, images from bags (tests, benchmarks) ------------------------------------------------------


def write_image_bag(dst: Path, frames: Iterable[tuple[int, np.ndarray]], storage: str = "sqlite3",
                    topic: str = "/camera/image_raw", encoding: str = "bgr8", frame_id: str = "camera") -> int:
    """The ROS 2 bag folder ``dst`` (which must not exist) holding ``frames`` ((stamp in ns, BGR array), in order)
    on ``topic``: sensor_msgs/msg/Image in ``encoding``, or CompressedImage for 'jpeg'/'png'; receipt time =
    stamp. Written whole or not at all. Returns the number of frames written."""
    from ..atomic import atomic_new_folder

    dst = Path(dst)
    if storage not in STORAGE_SUFFIXES:
        raise BagError(f"unknown ROS 2 bag storage '{storage}'; choose sqlite3 or mcap")
    if encoding not in image_io.ENCODINGS and encoding not in ("jpeg", "png"):
        raise BagError(f"unknown encoding '{encoding}'; choose one of {', '.join(image_io.ENCODINGS)}, jpeg, png")
    if dst.exists():
        raise BagError(f"{dst} exists already; give a new folder name for the ROS 2 bag")
    written = 0
    with atomic_new_folder(dst) as tmp, Ros2BagWriter(tmp, storage) as bag:
        conn = None
        for t_ns, frame in frames:
            msg = image_message(frame, header(t_ns, frame_id), encoding)
            conn = conn or bag.add_connection(topic, msg.__msgtype__)
            bag.write(conn, t_ns, serialize(msg))
            written += 1
    return written


def video_to_ros2_bag(video: str | Path, dst: str | Path, storage: str = "sqlite3", topic: str = "/camera/image_raw",
                      max_frames: int | None = None, encoding: str = "bgr8", fps: float = 0.0,
                      start: float | None = None, frame_id: str = "camera") -> int:
    """Write ``video`` (a video file, an image folder, 'demo': ``sources.open_source``) as the ROS 2 bag folder
    ``dst`` (``write_image_bag``): its first ``max_frames`` frames (all when None), stamped from ``start``
    (seconds; default now) at the source's frame rate (``fps`` to override). Returns the number of frames."""
    from ..sources import DemoSource, open_source

    src = open_source(str(video), loop=False)
    try:
        if isinstance(src, DemoSource) and not max_frames:
            max_frames = src.frames
        if src.live and not max_frames:
            raise BagError(f"{src.description} never ends: give max_frames")
        period_ns = 1e9 / (fps or src.fps)
        t0 = int(round((time.time() if start is None else start) * 1e9))

        def frames() -> Iterator[tuple[int, np.ndarray]]:
            for i in itertools.count():
                frame = None if max_frames and i >= max_frames else src.read()
                if frame is None:
                    return
                yield t0 + int(round(i * period_ns)), frame

        written = write_image_bag(Path(dst), frames(), storage, topic, encoding, frame_id)
    finally:
        src.close()
    if written == 0:
        shutil.rmtree(dst, ignore_errors=True)
        raise BagError(f"{src.description} delivered no frame (corrupt or unsupported file?)")
    return written


def read_images(path: Path, topics: Sequence[str] | None = None,
                max_pixels: int = image_io.MAX_PIXELS) -> list[np.ndarray]:
    """Every image message of the bag ``path`` (of its image topics, or of ``topics``) as a BGR array, in
    recording order."""
    with Ros2BagReader(bag_folder(Path(path)) or Path(path)) as reader:
        names = list(topics) if topics is not None else image_topics(reader.infos)
        return [image_to_bgr(deserialize(data, c.msgtype), c.msgtype, max_pixels)
                for c, _, data in reader.messages(names)]
