"""ROS 2 bags (rosbag2 folders, sqlite3 and MCAP) sanitized by emoji_privacy.files.bag / `anonymize_ros2_bag`.

A bag is made from the shared videos for each storage (ros2_bag_helpers: a raw bgr8 Image topic and a JPEG
CompressedImage topic with one undecodable frame each, CameraInfo, a String chatter, a transient-local
/tf_static). It goes through the real pipeline; the output is read back message by message, the faces topic
is read with only the definitions the bag itself carries, and the leak meter (another detector than the
pipeline's) looks for faces left. Needs no ROS installation: rosbags is pure Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from leak_helpers import bag_leaks
from ros2_bag_helpers import (
    CHATTER,
    INFO,
    JPEG,
    RAW,
    RECEIPT_DELAY_NS,
    START_NS,
    TF,
    connections,
    decode,
    read_raw,
    write_ros2_bag,
)

pytest.importorskip("rosbags", reason="rosbags (pure-Python rosbag2 reader and writer) is not installed")

from emoji_privacy import image_io  # noqa: E402
from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.errors import BagError  # noqa: E402
from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend  # noqa: E402
from emoji_privacy.fail_closed import masked_frame  # noqa: E402
from emoji_privacy.files import bag as bag_tool  # noqa: E402
from emoji_privacy.ros.common import decode_image  # noqa: E402

FRAMES = 12  # frames per image topic
BROKEN = {RAW: 5, JPEG: 8}  # index of the undecodable frame of each image topic
STORAGES = ("sqlite3", "mcap")
SUFFIX = {"sqlite3": ".db3", "mcap": ".mcap"}
IMAGE_TYPE, COMPRESSED_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"


def image(topic: str, data: bytes) -> np.ndarray:
    msg = decode(IMAGE_TYPE if topic == RAW else COMPRESSED_TYPE, data)
    return decode_image(msg, topic != RAW)


@pytest.fixture(scope="module", params=STORAGES)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    storage = request.param
    folder = tmp_path_factory.mktemp(f"ros2_{storage}")
    src, faces_json = folder / "rec", folder / "faces.jsonl"
    written = write_ros2_bag(src, storage, FRAMES, BROKEN)
    calls: list[tuple[int, int]] = []
    dst = bag_tool.ros2_default_output(src)
    summary = bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig(), faces_json=faces_json,
                                      progress=lambda done, total: calls.append((done, total)))
    return {"storage": storage, "src": src, "dst": dst, "faces_json": faces_json, "written": written,
            "summary": summary, "calls": calls, "folder": folder}


def test_same_storage_topics_counts_times_and_other_messages_unchanged(run: dict) -> None:
    src, dst, storage = run["src"], run["dst"], run["storage"]
    assert dst == run["folder"] / "rec_anonymized"
    assert sorted(p.name for p in run["folder"].iterdir()) == ["faces.jsonl", "rec", "rec_anonymized"], \
        "no partial folder left"
    assert sorted(p.name for p in dst.iterdir()) == ["metadata.yaml", f"rec_anonymized{SUFFIX[storage]}"]
    assert f"storage_identifier: {storage}" in (dst / "metadata.yaml").read_text()
    summary = run["summary"]
    assert summary.topics == sorted([RAW, JPEG]) and summary.frames == {RAW: FRAMES, JPEG: FRAMES}
    assert summary.failed == 2 and summary.faces >= 2 * (FRAMES - 1) - 2
    assert run["calls"][0] == (0, 2 * FRAMES) and run["calls"][-1] == (2 * FRAMES, 2 * FRAMES)
    assert bag_tool.ros2_frame_count(src) == 2 * FRAMES

    a, b = connections(src), connections(dst)
    faces_type = "emoji_privacy/msg/FaceEmotionArray"
    assert set(b) == set(a) | {f"{RAW}/faces", f"{JPEG}/faces"}
    for topic, conn in a.items():
        got = b[topic]
        assert (got.msgtype, got.msgcount, got.msgdef, got.digest) == \
               (conn.msgtype, conn.msgcount, conn.msgdef, conn.digest), topic
        assert got.ext == conn.ext, f"{topic}: same serialization format and QoS profiles"
    assert b[TF].ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"
    for topic in (RAW, JPEG):
        faces = b[f"{topic}/faces"]
        assert (faces.msgtype, faces.msgcount) == (faces_type, FRAMES)
        assert faces.ext.offered_qos_profiles == a[topic].ext.offered_qos_profiles

    before, after = read_raw(src), read_raw(dst)
    out_faces = [m for m in after if m[0].endswith("/faces")]
    after = [m for m in after if not m[0].endswith("/faces")]
    assert [(tp, t) for tp, t, _ in after] == [(tp, t) for tp, t, _ in before], "same messages, order and times"
    for (topic, _, x), (_, _, y) in zip(before, after, strict=True):
        if topic in (RAW, JPEG):
            ma, mb = decode(a[topic].msgtype, x), decode(a[topic].msgtype, y)
            assert (ma.header.stamp, ma.header.frame_id) == (mb.header.stamp, mb.header.frame_id)
            if topic == RAW:
                assert (mb.encoding, mb.height, mb.width, mb.step) == ("bgr8", 336, 596, 596 * 3)
            else:
                assert mb.format == ma.format and bytes(mb.data[:3]) == b"\xff\xd8\xff", "still a JPEG"
            assert bytes(mb.data) != bytes(ma.data), f"{topic}: a frame was written unchanged"
        else:
            assert x == y, f"{topic}: CDR bytes unchanged"
    assert {tp for tp, _, _ in before} == {RAW, JPEG, INFO, CHATTER, TF}

    def key(topic: str, head: object) -> tuple:
        return topic, head.stamp.sec, head.stamp.nanosec, head.frame_id

    stamps = {key(tp, decode(a[tp].msgtype, x).header): t for tp, t, x in before if tp in (RAW, JPEG)}
    for topic, t, data in out_faces:
        msg = decode("emoji_privacy/msg/FaceEmotionArray", data)
        assert stamps[key(topic.removesuffix("/faces"), msg.header)] == t, "faces with its frame's header and time"
    first = min(t for tp, t, _ in before if tp == RAW)
    assert first == START_NS + RECEIPT_DELAY_NS, "nanoseconds of the receipt time kept"


def test_faces_topic_reads_with_only_the_bags_own_definitions(run: dict) -> None:
    """rosbags' AnyReader without a default typestore knows only the definitions stored in the bag: the faces
    messages deserialize from those, with the fields of msg/FaceEmotion.msg."""
    from rosbags.highlevel import AnyReader

    with AnyReader([run["dst"]]) as reader:
        conns = [c for c in reader.connections if c.topic == f"{RAW}/faces"]
        assert conns and "string reading" in conns[0].msgdef.data and "uint8 UNKNOWN=255" in conns[0].msgdef.data
        msgs = [reader.deserialize(data, c.msgtype) for c, _, data in reader.messages(conns)]
    assert len(msgs) == FRAMES
    assert msgs[0].header.frame_id == "camera_optical" and len(msgs[0].faces) in (0, 1)
    listed = [f for m in msgs for f in m.faces]
    assert listed, "confirmed faces are listed"
    face = listed[-1]
    assert face.roi.width > 20 and face.roi.height > 20 and face.reading in ("read", "small", "turned", "faint",
                                                                               "uncertain")
    assert msgs[BROKEN[RAW]].faces == [], "a masked frame lists no face"


@pytest.mark.slow  # 5-7 s each (the leak meter on every frame)
def test_no_face_left_and_the_check_fires_on_the_input(run: dict) -> None:
    """The leak meter (CenterFace; the pipeline runs YuNet) on every decodable frame: the faces it finds in the
    input are gone from the output; the same check on the input bag itself finds them all."""
    out: dict[str, list[bytes]] = {RAW: [], JPEG: []}
    for topic, _, data in read_raw(run["dst"]):
        if topic in out:
            out[topic].append(data)
    faces, leaked, leaked_in_input = bag_leaks(run["written"], out, image)
    assert faces >= 2 * (FRAMES - 1) - 2, f"the reference detector finds the faces of the input ({faces})"
    assert leaked_in_input == faces, "the companion: the check fires on every face of the input bag"
    assert leaked == 0, f"{leaked} of {faces} faces left visible in the output bag"


def test_undecodable_frames_are_masked_not_copied(run: dict) -> None:
    before = [m for m in read_raw(run["src"]) if m[0] in (RAW, JPEG)]
    after = [m for m in read_raw(run["dst"]) if m[0] in (RAW, JPEG)]
    raw_in = [d for tp, _, d in before if tp == RAW][BROKEN[RAW]]
    raw_out = decode(IMAGE_TYPE, [d for tp, _, d in after if tp == RAW][BROKEN[RAW]])
    assert len(raw_out.data) == 336 * 596 * 3 and bytes(raw_out.data[:10]) not in raw_in
    assert np.array_equal(decode_image(raw_out, False), masked_frame(336, 596)), "the mask at the frame's own size"
    jpeg_in = [d for tp, _, d in before if tp == JPEG][BROKEN[JPEG]]
    jpeg_out = [d for tp, _, d in after if tp == JPEG][BROKEN[JPEG]]
    assert jpeg_out != jpeg_in
    frame = image(JPEG, jpeg_out)  # a whole JPEG again, of the topic's last decoded size
    assert frame.shape == run["written"][JPEG][0].shape
    assert np.abs(frame.astype(int) - masked_frame(*frame.shape[:2])).mean() < 3, "the mask (JPEG noise aside)"


def test_faces_json_has_every_frame(run: dict) -> None:
    lines = [json.loads(line) for line in run["faces_json"].read_text().splitlines()]
    assert len(lines) == 2 * FRAMES
    first = next(r for r in lines if r["topic"] == RAW)
    assert first["frame"] == 0 and abs(first["stamp"] - START_NS / 1e9) < 1e-6
    assert first["frame_id"] == "camera_optical" and first["held"] == []
    broken = next(r for r in lines if r["topic"] == RAW and r["frame"] == BROKEN[RAW])
    assert broken["faces"] == [] and broken["held"] == [], "a masked frame has no faces"


# --- small bags --------------------------------------------------------------------------------------------------


def small(path: Path, storage: str = "sqlite3", frames: int = 3, images: bool = True) -> Path:
    from emoji_privacy.ros import ros2_bags

    if not images:
        write_ros2_bag(path, storage, frames, images=False)
        return path
    from data_helpers import shared_path

    n = ros2_bags.video_to_ros2_bag(shared_path("data", "videos", "fer_test.mp4"), path, storage, max_frames=frames,
                          start=START_NS / 1e9)
    assert n == frames and ros2_bags.image_message_count(path) == frames
    return path


@pytest.mark.parametrize("storage", STORAGES)
def test_deterministic_and_an_existing_output_bag_is_replaced(tmp_path: Path, storage: str) -> None:
    """The same bag twice gives the same image bytes; the second run replaces the first output folder; the
    input may be given as its storage file."""
    src = small(tmp_path / "in", storage, frames=4)
    dst = tmp_path / "out"
    bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig())
    first = read_raw(dst)
    storage_file = src / f"in{SUFFIX[storage]}"
    assert bag_tool.is_ros2_bag(storage_file)
    assert bag_tool.ros2_default_output(storage_file) == tmp_path / "in_anonymized"
    summary = bag_tool.anonymize_ros2_bag(storage_file, dst, PipelineConfig())
    assert summary.faces == 4 and summary.src == str(src)
    second = read_raw(dst)
    assert first == second, "identical bytes, images and faces messages"
    assert [d for tp, _, d in first if tp == RAW] != [d for tp, _, d in read_raw(src) if tp == RAW]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_the_check_fires_when_the_tool_finds_no_face(tmp_path: Path) -> None:
    """The companion that breaks the tool itself: with a detector threshold no face reaches, the frames come
    out uncovered, and the leak check reports every face."""
    src = small(tmp_path / "in", "mcap", frames=4)
    config = PipelineConfig()
    config.detector.score_threshold = 0.9999
    summary = bag_tool.anonymize_ros2_bag(src, tmp_path / "out", config)
    assert summary.faces == 0 and summary.failed == 0
    pairs = [(image(RAW, a), image(RAW, b)) for (_, _, a), (_, _, b)
             in zip(read_raw(src), [m for m in read_raw(tmp_path / "out") if m[0] == RAW], strict=True)]
    meter = LeakMeter(independent_backend(config.detector.backend))
    leaks = [meter.measure(original, anonymized, []) for original, anonymized in pairs]
    assert len(pairs) == 4 and sum(r.count for r in leaks) == sum(len(r.truth) for r in leaks) >= 3


def error_of(src: Path, dst: Path, **kwargs: object) -> str:
    with pytest.raises(BagError) as e:
        bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig(), **kwargs)
    text = str(e.value)
    assert "\n" not in text and text, text
    return text


def test_error_cases(tmp_path: Path) -> None:
    good = small(tmp_path / "good", "sqlite3", frames=2)
    out = tmp_path / "out"
    assert "does not exist" in error_of(tmp_path / "missing", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a ROS 2 bag folder (no metadata.yaml" in error_of(empty, out)
    assert not bag_tool.is_ros2_bag(empty) and bag_tool.is_ros2_bag(good)
    cut_off = tmp_path / "cut_off"
    cut_off.mkdir()
    (cut_off / "cut_off_0.mcap").write_bytes(b"\x89MCAP0\r\n")
    err = error_of(cut_off, out)
    assert "no metadata.yaml" in err and "ros2 bag reindex" in err and "cut_off_0.mcap" in err
    assert "no metadata.yaml" in error_of(cut_off / "cut_off_0.mcap", out)
    bad_yaml = tmp_path / "bad_yaml"
    bad_yaml.mkdir()
    (bad_yaml / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    assert "not valid YAML" in error_of(bad_yaml, out)
    (bad_yaml / "metadata.yaml").write_text("something: else\n")
    assert "not rosbag2 metadata" in error_of(bad_yaml, out)
    for storage in STORAGES:  # a storage file cut in half
        cut = small(tmp_path / f"cut_{storage}", storage, frames=2)
        f = cut / f"cut_{storage}{SUFFIX[storage]}"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        err = error_of(cut, out)
        assert f"cannot read ROS 2 bag {cut}" in err and "damaged or cut off" in err, err
    chatter = small(tmp_path / "chatter", "mcap", frames=2, images=False)
    err = error_of(chatter, out)
    assert "no sensor_msgs/Image or sensor_msgs/CompressedImage" in err and CHATTER in err
    assert "inside it" in error_of(good, good)
    assert "inside it" in error_of(good, good / "sub")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert "is a file" in error_of(good, a_file)
    assert "holding the input bag" in error_of(good, tmp_path)
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "notes.txt").write_text("mine")
    assert "holds more than a ROS 2 bag" in error_of(good, stuff)
    assert "does not exist" in error_of(good, tmp_path / "nowhere" / "out")
    assert "faces JSON" in error_of(good, out, faces_json=good / "faces.jsonl")
    inputs = ["good", "empty", "cut_off", "bad_yaml", "cut_sqlite3", "cut_mcap", "chatter", "a_file", "stuff"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs), "no output and no partial folder"


def test_already_anonymized_bag_is_refused(tmp_path: Path) -> None:
    src = small(tmp_path / "in", "mcap", frames=2)
    once = tmp_path / "once"
    bag_tool.anonymize_ros2_bag(src, once, PipelineConfig())
    err = error_of(once, tmp_path / "twice")
    assert f"{RAW}/faces" in err and "anonymized already" in err and "ros2 bag convert" in err


def test_a_damaged_message_is_a_clear_error(tmp_path: Path) -> None:
    """An image record whose CDR bytes cannot be read: a one-line error naming it, and no output."""
    import sqlite3

    src = small(tmp_path / "in", "sqlite3", frames=3)
    with sqlite3.connect(src / "in.db3") as db:
        db.execute("UPDATE messages SET data = ? WHERE id = 2", (b"\x00\x01\x00\x00garbage",))
    err = error_of(src, tmp_path / "out")
    assert f"message 2 of {RAW}" in err and "damaged" in err and "ros2 bag info" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_ctrl_c_keeps_an_existing_output(tmp_path: Path) -> None:
    src = small(tmp_path / "in", "mcap", frames=4)
    dst = tmp_path / "out"
    bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig())
    before = read_raw(dst)

    seen: list[list[str]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig(), faces_json=tmp_path / "f.jsonl", progress=interrupt)
    partial = [n for n in seen[-1] if n.startswith(".out.") and n.endswith(".partial")]
    assert partial, f"a hidden partial folder beside the output while it is written: {seen[-1]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"], "the partial folder and JSON are removed"
    assert read_raw(dst) == before, "the existing output is left as it was"


def test_rosbags_is_loaded_only_for_a_ros2_bag(tmp_path: Path) -> None:
    """Importing the tools and asking whether a path is a ROS 2 bag (and its frame count) loads no rosbags."""
    code = ("import sys; from pathlib import Path; from emoji_privacy.files import bag as bag_tool; "
            f"assert not bag_tool.is_ros2_bag(Path({str(tmp_path)!r})); "
            "assert 'rosbags' not in sys.modules and 'rospy' not in sys.modules, sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_image_raw_encoding_survives(tmp_path: Path) -> None:
    """A mono16 and a png topic (via video_to_ros2_bag's encodings) keep their encoding, step and format."""
    from data_helpers import shared_path

    from emoji_privacy.ros.ros2_bags import video_to_ros2_bag

    video = shared_path("data", "videos", "fer_test.mp4")
    for encoding in ("mono16", "png"):
        src = tmp_path / f"in_{encoding}"
        video_to_ros2_bag(video, src, "mcap", max_frames=2, encoding=encoding, start=START_NS / 1e9)
        summary = bag_tool.anonymize_ros2_bag(src, tmp_path / f"out_{encoding}", PipelineConfig())
        assert summary.failed == 0 and summary.faces == 2
        msgtype = COMPRESSED_TYPE if encoding == "png" else IMAGE_TYPE
        for (_, t, a), (_, u, b) in zip(read_raw(src), [m for m in read_raw(tmp_path / f"out_{encoding}")
                                                        if m[0] == RAW], strict=True):
            ma, mb = decode(msgtype, a), decode(msgtype, b)
            assert t == u and ma.header == mb.header
            if encoding == "png":
                assert mb.format == ma.format and image_io.sniff_format(bytes(mb.data)) == "png"
            else:
                assert (mb.encoding, mb.step, mb.height, mb.width) == (ma.encoding, ma.step, ma.height, ma.width)
            assert bytes(ma.data) != bytes(mb.data)


def humble_style(src: Path) -> None:
    """Make the sqlite3 bag ``src`` look recorded by ROS 2 Humble: no message definitions, no type hashes,
    metadata version 5."""
    import sqlite3

    import yaml

    with sqlite3.connect(src / f"{src.name}.db3") as db:
        db.execute("DELETE FROM message_definitions")
        db.execute("UPDATE topics SET type_description_hash = ''")
    meta = yaml.safe_load((src / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = 5
    for t in info["topics_with_message_count"]:
        del t["topic_metadata"]["type_description_hash"]
    (src / "metadata.yaml").write_text(yaml.safe_dump(meta))


def test_a_bag_without_definitions_gets_the_standard_ones(tmp_path: Path) -> None:
    """A Humble sqlite3 bag keeps no definitions: the output carries rosbags' ROS 2 Humble definitions of the
    standard types (readable without a typestore of the reader's own) and is written as rosbag2 version 9; a
    type that neither the bag nor rosbags knows is a clear error."""
    from rosbags.highlevel import AnyReader

    src = small(tmp_path / "in", "sqlite3", frames=2)
    humble_style(src)
    assert all(c.msgdef.data == "" and c.digest == "" for c in connections(src).values())
    dst = tmp_path / "out"
    bag_tool.anonymize_ros2_bag(src, dst, PipelineConfig())
    assert "version: 9" in (dst / "metadata.yaml").read_text()
    with AnyReader([dst]) as reader:
        msgs = [reader.deserialize(data, c.msgtype) for c, _, data in reader.messages()]
    assert len(msgs) == 4 and {type(m).__name__ for m in msgs} == {"sensor_msgs__msg__Image",
                                                                   "emoji_privacy__msg__FaceEmotionArray"}

    from emoji_privacy.ros import ros2_bags

    custom = tmp_path / "custom"
    with ros2_bags.Ros2BagWriter(custom, "sqlite3") as bag:
        conn = bag.add_connection("/thing", "my_pkg/msg/Thing", msgdef="int32 x\n", msg_format="MSG")
        bag.write(conn, START_NS, b"\x00\x01\x00\x00\x07\x00\x00\x00")
        image = bag.add_connection(RAW, "sensor_msgs/msg/Image")
        bag.write(image, START_NS, read_raw(src)[0][2])
    assert connections(custom)["/thing"].digest.startswith("RIHS01_"), "the hash made from the bag's definition"
    humble_style(custom)
    err = error_of(custom, tmp_path / "custom_out")
    assert "my_pkg/msg/Thing" in err and "neither in the bag" in err
