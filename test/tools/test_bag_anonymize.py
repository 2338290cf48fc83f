"""Recorded bags sanitized for sharing emoji_privacy.files.bag / `anonymize_bag`.

A real bag is made from a shared video: a raw bgr8 Image topic, a JPEG CompressedImage topic from the other
clip, CameraInfo, a String chatter and a latched transform topic, with one frame of each image topic that
cannot be decoded. It goes through the real pipeline; the output is read back with rosbag and checked
message by message, and the leak meter (another detector than the pipeline's) looks for faces left.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import genpy
import numpy as np
import pytest
from data_helpers import shared_path
from leak_helpers import bag_leaks

pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
pytestmark = pytest.mark.ros  # the generated emoji_privacy/FaceEmotionArray needs the catkin workspace

import rosbag  # noqa: E402
from geometry_msgs.msg import TransformStamped  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from emoji_privacy import image_io  # noqa: E402
from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend  # noqa: E402
from emoji_privacy.fail_closed import masked_frame  # noqa: E402
from emoji_privacy.files import bag as bag_tool  # noqa: E402
from emoji_privacy.files.cli import anonymize_bag_main  # noqa: E402
from emoji_privacy.ros import bags as bag_io  # noqa: E402
from emoji_privacy.ros.messages import bgr_to_image, bgr_to_jpeg, image_to_bgr, make_header  # noqa: E402

START = 1_700_000_000.0
FRAMES = 24  # frames per image topic
RAW, JPEG = "/camera/image_raw", "/front/image/compressed"
BROKEN_RAW, BROKEN_JPEG = 9, 14  # index of the undecodable frame on each topic
RECEIPT_DELAY = genpy.Duration(0, 13_000_017)  # receipt time = stamp + 13.000017 ms (nanoseconds must survive)
TF_HEADER = {"callerid": "/robot_state_publisher", "latching": "1"}


def clip(name: str, n: int, step: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("data", "videos", name)))
    frames, i = [], 0
    while len(frames) < n:
        ok, f = cap.read()
        assert ok, f"{name} ended after {i} frames"
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    return frames


def write_input(path: Path) -> dict[str, list[np.ndarray | None]]:
    """The test bag; returns the frames written per image topic (None where the frame is undecodable)."""
    raw_frames, jpeg_frames = clip("fer_test.mp4", FRAMES, 4), clip("fer_woman2.mp4", FRAMES, 15)
    written: dict[str, list[np.ndarray | None]] = {RAW: [], JPEG: []}
    with rosbag.Bag(str(path), "w") as bag:
        tf = TransformStamped(header=make_header(START, "base_link"), child_frame_id="camera")
        tf.transform.rotation.w = 1.0
        tf_header = {"topic": "/tf_static", "type": tf._type, "md5sum": tf._md5sum,
                     "message_definition": tf._full_text, **TF_HEADER}
        bag.write("/tf_static", tf, genpy.Time.from_sec(START), connection_header=tf_header)
        for i in range(FRAMES):
            stamp = START + i / 25.0
            t = genpy.Time.from_sec(stamp) + RECEIPT_DELAY
            header = make_header(stamp, "camera_optical", i)
            if i == BROKEN_RAW:  # the data is far too short for its size: not decodable
                msg = Image(header=header, height=336, width=596, encoding="bgr8", step=596 * 3,
                            data=raw_frames[i][:10].tobytes())
                written[RAW].append(None)
            else:
                msg = bgr_to_image(raw_frames[i], header)
                written[RAW].append(raw_frames[i])
            bag.write(RAW, msg, t)
            info = CameraInfo(header=header, width=596, height=336, K=[500.0, 0, 298, 0, 500.0, 168, 0, 0, 1])
            bag.write("/camera/camera_info", info, t)
            front = make_header(stamp + 0.004, "front_optical", i)
            if i == BROKEN_JPEG:  # a JPEG cut after its first bytes
                msg = CompressedImage(header=front, format="bgr8; jpeg compressed bgr8",
                                      data=bgr_to_jpeg(jpeg_frames[i], front).data[:400])
                written[JPEG].append(None)
            else:
                msg = bgr_to_jpeg(jpeg_frames[i], front, 90)
                written[JPEG].append(image_to_bgr(msg))
            bag.write(JPEG, msg, genpy.Time.from_sec(stamp + 0.004) + RECEIPT_DELAY)
            if i % 5 == 0:
                bag.write("/chatter", String(data=f"hello {i}"), t)
    return written


def read_all(path: Path) -> list[tuple[str, tuple, genpy.Time, dict]]:
    with bag_io.open_bag(path) as bag:
        return list(bag_io.read_raw(bag))


def decode(raw: tuple) -> object:
    msg = raw[4]()
    msg.deserialize(raw[1])
    return msg


def masked(height: int, width: int) -> np.ndarray:
    return masked_frame(height, width)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("anonymize_bag")
    src, dst, faces_json = folder / "in.bag", folder / "out.bag", folder / "faces.jsonl"
    written = write_input(src)
    calls: list[tuple[int, int]] = []
    summary = bag_tool.anonymize_bag(src, dst, PipelineConfig(), faces_json=faces_json,
                                     progress=lambda done, total: calls.append((done, total)))
    return {"src": src, "dst": dst, "faces_json": faces_json, "written": written, "summary": summary,
            "calls": calls, "folder": folder}


def test_same_topics_counts_stamps_and_other_messages_unchanged(run: dict) -> None:
    src, dst = read_all(run["src"]), read_all(run["dst"])
    summary = run["summary"]
    assert summary.topics == sorted([RAW, JPEG]) and summary.frames == {RAW: FRAMES, JPEG: FRAMES}
    assert summary.failed == 2 and summary.copied == len(src) - 2 * FRAMES
    assert summary.faces_topics == {RAW: f"{RAW}/faces", JPEG: f"{JPEG}/faces"}
    assert run["calls"][0] == (0, 2 * FRAMES) and run["calls"][-1] == (2 * FRAMES, 2 * FRAMES)
    assert sorted(os.listdir(run["folder"])) == ["faces.jsonl", "in.bag", "out.bag"], "no partial file left"

    with bag_io.open_bag(run["src"]) as a, bag_io.open_bag(run["dst"]) as b:
        want = {n: (t.msg_type, t.count) for n, t in bag_io.topics(a).items()}
        got = {n: (t.msg_type, t.count) for n, t in bag_io.topics(b).items()}
    faces_type = "emoji_privacy/FaceEmotionArray"
    assert got == {**want, f"{RAW}/faces": (faces_type, FRAMES), f"{JPEG}/faces": (faces_type, FRAMES)}

    out_faces = [m for m in dst if m[0].endswith("/faces")]
    dst = [m for m in dst if not m[0].endswith("/faces")]
    assert [(m[0], m[2]) for m in dst] == [(m[0], m[2]) for m in src], "same messages in the same order, same times"
    for (topic, a, _, ha), (_, b, _, hb) in zip(src, dst, strict=True):
        assert a[0] == b[0] and a[2] == b[2], f"{topic}: same type and md5sum"
        assert ha == hb, f"{topic}: same connection header"
        if topic in (RAW, JPEG):
            ma, mb = decode(a), decode(b)
            assert (ma.header.stamp, ma.header.frame_id, ma.header.seq) == \
                   (mb.header.stamp, mb.header.frame_id, mb.header.seq)
            if topic == RAW:
                assert (mb.encoding, mb.height, mb.width, mb.step) == ("bgr8", 336, 596, 596 * 3) or \
                       ma.header.seq == BROKEN_RAW
            else:
                assert mb.format == ma.format and bytes(mb.data[:3]) == b"\xff\xd8\xff", "still a JPEG"
            assert bytes(mb.data) != bytes(ma.data), f"{topic} frame {ma.header.seq} was written unchanged"
        else:
            assert a[1] == b[1], f"{topic}: message bytes unchanged"
    tf_header = next(h for tp, _, _, h in dst if tp == "/tf_static")  # rosbag reads header values as bytes
    assert {k: tf_header[k] for k in TF_HEADER} == {k: v.encode() for k, v in TF_HEADER.items()}

    images = {(tp, decode(raw).header.stamp): t for tp, raw, t, _ in src if tp in (RAW, JPEG)}
    for topic, raw, t, _ in out_faces:
        msg = decode(raw)
        image_topic = topic[: -len("/faces")]
        assert images[(image_topic, msg.header.stamp)] == t, "faces message at its frame's receipt time"


def test_no_face_left_and_the_check_fires_on_the_input(run: dict) -> None:
    """The leak meter (CenterFace; the pipeline runs YuNet) on every decodable frame: the faces it finds in
    the input are gone from the output; the same check on the input bag itself finds them all."""
    out = {RAW: [], JPEG: []}
    for topic, raw, _, _ in read_all(run["dst"]):
        if topic in out:
            out[topic].append(image_to_bgr(decode(raw)))
    faces, leaked, leaked_in_input = bag_leaks(run["written"], out, lambda topic, img: img)
    assert faces >= 2 * (FRAMES - 1) - 4, f"the reference detector finds the faces of the input ({faces})"
    assert leaked_in_input == faces, "the companion: the check fires on every face of the input bag"
    assert leaked == 0, f"{leaked} of {faces} faces left visible in the output bag"


def test_the_check_fires_when_the_tool_finds_no_face(tmp_path: Path) -> None:
    """The companion that breaks the tool itself: with a detector threshold no face reaches, the bag comes
    out with its faces uncovered, and the same check as above reports them."""
    src = small_bag(tmp_path / "in.bag", frames=6)
    config = PipelineConfig()
    config.detector.score_threshold = 0.9999
    summary = bag_tool.anonymize_bag(src, tmp_path / "out.bag", config)
    assert summary.faces == 0 and summary.failed == 0
    pairs = [(image_to_bgr(decode(a)), image_to_bgr(decode(b))) for (tp, a, _, _), (_, b, _, _)
             in zip(read_all(src), [m for m in read_all(tmp_path / "out.bag") if not m[0].endswith("/faces")],
                    strict=True) if tp == RAW]
    meter = LeakMeter(independent_backend(config.detector.backend))
    leaks = [meter.measure(original, anonymized, []) for original, anonymized in pairs]
    assert len(pairs) == 6 and sum(r.count for r in leaks) == sum(len(r.truth) for r in leaks) >= 5


def test_raw_pixels_away_from_faces_are_unchanged(run: dict) -> None:
    """Only the covered faces change in a raw frame: the rest of the picture is byte-identical."""
    out = [image_to_bgr(decode(raw)) for tp, raw, _, _ in read_all(run["dst"]) if tp == RAW]
    for i, (original, anonymized) in enumerate(zip(run["written"][RAW], out, strict=True)):
        if original is None:
            continue
        changed = (original != anonymized).any(axis=2).mean()
        assert 0.01 < changed < 0.35, f"frame {i}: {100 * changed:.1f}% of the pixels changed"


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "bgra8", "png", "jpeg"])
def test_every_encoding_comes_out_in_its_own_encoding(tmp_path: Path, encoding: str) -> None:
    """Raw encodings keep their encoding, step and every byte away from the faces (16-bit depth included);
    compressed frames keep their format."""
    from emoji_privacy.evaluation import video_to_bag

    src, dst = tmp_path / "in.bag", tmp_path / "out.bag"
    video_to_bag.convert(str(shared_path("data", "videos", "fer_test.mp4")), src, encoding=encoding, max_frames=2,
                         progress=False)
    summary = bag_tool.anonymize_bag(src, dst, PipelineConfig())
    assert summary.failed == 0 and summary.faces == 2
    for (_, a, t, _), (_, b, u, _) in zip(read_all(src), [m for m in read_all(dst) if m[0] == RAW], strict=True):
        ma, mb = decode(a), decode(b)
        assert t == u and ma.header.stamp == mb.header.stamp
        if encoding in ("png", "jpeg"):
            assert mb.format == ma.format and image_io.sniff_format(bytes(mb.data)) == encoding
            before = cv2.imdecode(np.frombuffer(bytes(ma.data), np.uint8), cv2.IMREAD_UNCHANGED)
            after = cv2.imdecode(np.frombuffer(bytes(mb.data), np.uint8), cv2.IMREAD_UNCHANGED)
        else:
            assert (mb.encoding, mb.step, mb.height, mb.width) == (ma.encoding, ma.step, ma.height, ma.width)
            channels, dtype = image_io.ENCODINGS[encoding]
            before = np.frombuffer(bytes(ma.data), dtype).reshape(ma.height, ma.width, channels)
            after = np.frombuffer(bytes(mb.data), dtype).reshape(mb.height, mb.width, channels)
        assert before.shape == after.shape and before.dtype == after.dtype
        changed = (before != after).reshape(*before.shape[:2], -1).any(axis=2).mean()
        if encoding == "jpeg":  # re-encoded: every block may move a little; the face moves a lot
            assert np.abs(before.astype(int) - after).max() > 100
        else:
            assert 0.01 < changed < 0.35, f"{encoding}: {100 * changed:.1f}% of the pixels changed"


def test_undecodable_frames_are_masked_not_copied(run: dict) -> None:
    src = {(tp, decode(raw).header.seq): decode(raw) for tp, raw, _, _ in read_all(run["src"]) if tp in (RAW, JPEG)}
    dst = {(tp, decode(raw).header.seq): decode(raw) for tp, raw, _, _ in read_all(run["dst"]) if tp in (RAW, JPEG)}
    raw_in, raw_out = src[(RAW, BROKEN_RAW)], dst[(RAW, BROKEN_RAW)]
    assert bytes(raw_out.data[:10]) != bytes(raw_in.data) and len(raw_out.data) == 336 * 596 * 3
    assert np.array_equal(image_to_bgr(raw_out), masked(336, 596)), "the striped mask at the frame's own size"
    jpeg_out = dst[(JPEG, BROKEN_JPEG)]
    assert bytes(jpeg_out.data) != bytes(src[(JPEG, BROKEN_JPEG)].data)
    frame = image_to_bgr(jpeg_out)  # a whole JPEG again, of the topic's last decoded size
    assert frame.shape == run["written"][JPEG][0].shape
    assert np.abs(frame.astype(int) - masked(*frame.shape[:2])).mean() < 3, "the mask (JPEG noise aside)"
    faces = {(tp, decode(raw).header.seq): decode(raw) for tp, raw, _, _ in read_all(run["dst"])
             if tp.endswith("/faces")}
    assert faces[(f"{RAW}/faces", BROKEN_RAW)].faces == [] and faces[(f"{JPEG}/faces", BROKEN_JPEG)].faces == []
    assert len(faces[(f"{RAW}/faces", 0)].faces) == 1


def test_faces_json_has_every_frame(run: dict) -> None:
    import json

    lines = [json.loads(line) for line in run["faces_json"].read_text().splitlines()]
    assert len(lines) == 2 * FRAMES
    first = next(r for r in lines if r["topic"] == RAW)
    assert first["frame"] == 0 and abs(first["stamp"] - START) < 1e-6 and first["frame_id"] == "camera_optical"
    face = first["faces"][0]
    assert {"track_id", "box", "emotion", "confidence"} <= set(face) and len(face["box"]) == 4
    assert first["held"] == []
    broken = next(r for r in lines if r["topic"] == RAW and r["frame"] == BROKEN_RAW)
    assert broken["faces"] == [] and broken["held"] == [], "a masked frame has no faces"
    assert {tuple(f["track_id"] for f in r["faces"]) for r in lines if r["topic"] == RAW and r["faces"]} == {(1,)}


# --- errors -----------------------------------------------------------------------------------------------


def small_bag(path: Path, frames: int = 3, images: bool = True) -> Path:
    video = clip("fer_test.mp4", frames, 1)
    with rosbag.Bag(str(path), "w") as bag:
        for i, f in enumerate(video):
            t = genpy.Time.from_sec(START + i / 25)
            if images:
                bag.write(RAW, bgr_to_image(f, make_header(START + i / 25, "camera", i)), t)
            bag.write("/chatter", String(data=str(i)), t)
    return path


def error_of(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """Run the tool's main; it must exit 2 with one line on stderr, which is returned."""
    assert anonymize_bag_main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anonymize_bag: error: ") and "\n" not in err, err
    return err


def test_error_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = small_bag(tmp_path / "good.bag", frames=2)
    out = tmp_path / "out.bag"
    assert "does not exist" in error_of(capsys, str(tmp_path / "missing.bag"), "-o", str(out))
    assert "is a folder" in error_of(capsys, str(tmp_path), "-o", str(out))
    corrupt = tmp_path / "corrupt.bag"
    corrupt.write_bytes(b"this is not a bag\n" * 100)
    assert "not a readable ROS 1 bag" in error_of(capsys, str(corrupt), "-o", str(out))
    binary = tmp_path / "binary.bag"
    binary.write_bytes(bytes(range(128, 256)) * 40)  # rosbag itself fails to decode this one's first line
    assert "is not a ROS 1 bag" in error_of(capsys, str(binary), "-o", str(out))
    cut = tmp_path / "cut.bag"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "rosbag reindex" in error_of(capsys, str(cut), "-o", str(out))
    active = tmp_path / "rec.bag.active"
    active.write_bytes(cut.read_bytes())
    err = error_of(capsys, str(active), "-o", str(out))
    assert "still being recorded" in err and "rosbag reindex" in err
    no_images = small_bag(tmp_path / "chatter.bag", images=False)
    err = error_of(capsys, str(no_images), "-o", str(out))
    assert "no sensor_msgs/Image or sensor_msgs/CompressedImage" in err and "/chatter" in err
    assert "input bag itself" in error_of(capsys, str(good), "-o", str(good))
    link = tmp_path / "link.bag"
    link.symlink_to(good)
    assert "input bag itself" in error_of(capsys, str(good), "-o", str(link))
    assert "input bag itself" in error_of(capsys, str(good), "-o", str(out), "--faces-json", str(good))
    assert "folder" in error_of(capsys, str(good), "-o", str(tmp_path / "nowhere" / "out.bag"))
    assert "is a folder" in error_of(capsys, str(good), "-o", str(tmp_path))
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("tracking: {hold_frames: -1}\n")
    assert "hold_frames" in error_of(capsys, str(good), "-o", str(out), "--config", str(bad_config))
    inputs = ["good.bag", "corrupt.bag", "binary.bag", "cut.bag", "rec.bag.active", "chatter.bag", "link.bag",
              "bad.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs), "no output and no partial file after an error"


def test_already_anonymized_bag_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = small_bag(tmp_path / "in.bag", frames=1)
    with rosbag.Bag(str(path), "a") as bag:
        bag.write(f"{RAW}/faces", String(data="x"), genpy.Time.from_sec(START))
    err = error_of(capsys, str(path), "-o", str(tmp_path / "out.bag"))
    assert f"{RAW}/faces" in err and "anonymized already" in err


def test_ctrl_c_removes_the_partial_output(tmp_path: Path) -> None:
    src = small_bag(tmp_path / "in.bag", frames=6)
    dst = tmp_path / "out.bag"
    dst.write_bytes(b"an older output")

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            assert any(".partial" in p.name for p in tmp_path.iterdir()), "the partial file is being written"
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bag_tool.anonymize_bag(src, dst, PipelineConfig(), faces_json=tmp_path / "f.jsonl", progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bag", "out.bag"]
    assert dst.read_bytes() == b"an older output", "an existing output is left as it was"


def test_rosrun_entry_point(tmp_path: Path) -> None:
    src = small_bag(tmp_path / "in.bag", frames=2)
    proc = subprocess.run(["rosrun", "emoji_privacy", "anonymize_bag", str(src), "--quiet", "__name:=anon"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "in_anonymized.bag"
    assert "anonymized 2 frames" in proc.stdout and str(out) in proc.stdout
    with bag_io.open_bag(out) as bag:
        assert {n: t.count for n, t in bag_io.topics(bag).items()} == {RAW: 2, f"{RAW}/faces": 2, "/chatter": 2}
    proc = subprocess.run(["rosrun", "emoji_privacy", "anonymize_bag", str(tmp_path / "missing.bag")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
