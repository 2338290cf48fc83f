"""Long recordings split into time segments (emoji_privacy.files.segments): a ROS 1 bag, a ROS 2 bag and an MP4
are planned into 3 segments, each segment anonymized into its part, the parts joined, and the result compared
with a whole run of the same recording.

Bags: the same topics, messages, receipt times and headers; the other topics' bytes; the track ids of segment k
offset by k * ID_STRIDE; the covered pixels (those changed from the input) the same as the whole run's in the
first segment and within COVER_BOUND of them after a cut (tracker state older than the warm-up: docs/fleet.md),
with no face left visible (the leak meter). The ROS 1 bag hides its face for three frames right after the first
cut: the whole run covers them with held tracks, so must the split run (the warm-up's job; without it they are
left bare). MP4: the joined video's packets are the parts' packets (a stream copy), the frame times the whole
run's, the input's audio track kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from data_helpers import video_frames
from leak_helpers import bag_leaks

from emoji_privacy.config import PipelineConfig
from emoji_privacy.files import segments

N = 90  # frames of the bags
FPS = 30
SECONDS = 1.0  # cuts at frames 30 and 60
HIDDEN = (30, 31, 32)  # frames of the ROS 1 bag whose face is painted over, right after the first cut
START = 1000.0
LEAK_FRAMES = 12  # frames after each cut the leak meter looks at (the whole run's are test_bag_anonymize's)
TOPIC = "/camera/image_raw"
CHATTER = "/chatter"
IMAGE = "sensor_msgs/msg/Image"
COVER_BOUND = 0.05
"""Largest share of a whole run's cover that the split run covers differently in a frame after a cut (measured:
at most 0.032 on these clips; the landmark model's roll and the tracks' velocity carry state over more frames than
the warm-up, see docs/fleet.md)."""


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return video_frames("fer_woman2.mp4", 1, 150)


@pytest.fixture(scope="module")
def anonymizer() -> object:
    from emoji_privacy.pipeline import Anonymizer

    return Anonymizer(PipelineConfig())


def split_run(src: Path, kind: str, dst: Path, anonymizer: object, warmup: float | None = None,
              seconds: float = SECONDS) -> list[segments.Segment]:
    """Plan, anonymize every segment into its part (its faces JSON beside it: ``faces_json``), join into
    ``dst``; ``warmup`` overrides the plan's."""
    config = PipelineConfig()
    plan = segments.plan_segments(src, kind, config, seconds)
    if warmup is not None:
        plan = [segments.Segment(s.index, s.count, s.start, s.end, warmup if s.index else 0.0) for s in plan]
    parts = [segments.part_path(dst, s) for s in plan]
    for s, part in zip(plan, parts, strict=True):
        segments.anonymize_segment(src, kind, s, part, config, anonymizer, faces_json=faces_json(dst, s))
    segments.join_segments(kind, parts, dst, src)
    assert all(p.exists() for p in parts)  # the join removes nothing
    return plan


def faces_json(dst: Path, segment: segments.Segment) -> Path:
    return dst.with_name(f"faces{segment.index}.jsonl")


def cover_differences(inputs: list[np.ndarray], whole: list[np.ndarray], split: list[np.ndarray],
                      threshold: int = 0) -> list[float]:
    """Per frame: the pixels covered (changed from the input by more than ``threshold``) in one run and not the
    other, as a share of the whole run's cover (1.0 when one run covers nothing and the other something)."""
    shares = []
    for x, w, s in zip(inputs, whole, split, strict=True):
        cw = (np.abs(w.astype(np.int16) - x).max(axis=2) > threshold)
        cs = (np.abs(s.astype(np.int16) - x).max(axis=2) > threshold)
        differ = int((cw != cs).sum())
        shares.append(differ / cw.sum() if cw.any() else float(differ > 0))
    return shares


def first_frames(plan: list[segments.Segment], times: list[float]) -> list[int]:
    """Index of the first frame of every segment but the first (``times``: seconds from the first frame)."""
    return [next(i for i, t in enumerate(times) if t >= s.start - 1e-9) for s in plan[1:]]


def test_plan_one_segment_for_a_short_recording_and_part_names(tmp_path: Path) -> None:
    pytest.importorskip("rosbags", reason="rosbags is not installed")
    from emoji_privacy.ros import ros2_bags

    bag = tmp_path / "short"
    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(10)]  # 0.3 s at 30 fps
    ros2_bags.write_image_bag(bag, ((int(START * 1e9) + i * 1_000_000_000 // FPS, f) for i, f in enumerate(frames)))
    config = PipelineConfig()
    whole = [segments.Segment(0, 1, 0.0, math.inf, 0.0)]
    assert segments.plan_segments(bag, "ros2bag", config, 1.0) == whole
    assert segments.plan_segments(bag, "ros2bag", config, 0) == whole
    plan = segments.plan_segments(bag, "ros2bag", config, 0.1)
    assert [(s.start, s.end) for s in plan] == [(0.0, 0.1), (0.1, 0.2), (0.2, math.inf)]
    assert plan[1].start - plan[1].warmup == 0.0  # fewer frames before it than the warm-up: from the first one
    assert segments.part_path(tmp_path / "out.bag", plan[2]) == tmp_path / ".out.bag.part0002.bag"
    assert segments.part_path(tmp_path / "out", plan[1]) == tmp_path / ".out.part0001"
    with pytest.raises(ValueError, match="kind"):
        segments.plan_segments(bag, "bags", config, 1.0)


# --- ROS 1 ------------------------------------------------------------------------------------------------------


def ros1_bag(path: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    import genpy
    import rosbag
    from std_msgs.msg import String

    from emoji_privacy.ros.messages import bgr_to_image, make_header

    written = []
    with rosbag.Bag(str(path), "w") as bag:
        for i in range(N):
            frame = frames[i].copy()
            if i in HIDDEN:
                frame[:] = 128
            stamp = START + i / FPS
            bag.write(TOPIC, bgr_to_image(frame, make_header(stamp, "camera", i)), genpy.Time.from_sec(stamp))
            if i % 7 == 0:
                bag.write(CHATTER, String(data=f"hello {i}"), genpy.Time.from_sec(stamp + 0.005))
            written.append(frame)
    return written


def read_ros1(path: Path) -> list[tuple[str, int, object, bytes, dict]]:
    """(topic, receipt time in ns, message, serialized bytes, connection header) of every message."""
    import rosbag

    with rosbag.Bag(str(path)) as bag:
        raw = [(topic, t.to_nsec(), m[1], h) for topic, m, t, h in
               bag.read_messages(raw=True, return_connection_header=True)]
        msgs = [m for _, m, _ in bag.read_messages()]
    return [(topic, t, msg, data, h) for (topic, t, data, h), msg in zip(raw, msgs, strict=True)]


@pytest.fixture(scope="module")
def ros1(tmp_path_factory: pytest.TempPathFactory, frames: list[np.ndarray], anonymizer: object) -> dict:
    pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
    from emoji_privacy.files.bag import anonymize_bag

    d = tmp_path_factory.mktemp("ros1")
    written = ros1_bag(d / "in.bag", frames)
    anonymize_bag(d / "in.bag", d / "whole.bag", PipelineConfig(), anonymizer=anonymizer,
                  faces_json=d / "whole.jsonl")
    plan = split_run(d / "in.bag", "bag", d / "split.bag", anonymizer)
    return {"dir": d, "written": written, "plan": plan, "whole": read_ros1(d / "whole.bag"),
            "split": read_ros1(d / "split.bag")}


def images_of(messages: list, topic: str = TOPIC) -> list[np.ndarray]:
    from emoji_privacy.ros.messages import image_to_bgr

    return [image_to_bgr(m) for t, _, m, _, _ in messages if t == topic]


@pytest.mark.slow
@pytest.mark.ros
def test_ros1_plan_is_three_segments_with_a_warmup(ros1: dict) -> None:
    plan = ros1["plan"]
    assert [(s.index, s.count) for s in plan] == [(0, 3), (1, 3), (2, 3)]
    assert plan[0].warmup == 0 and math.isinf(plan[-1].end)
    config = PipelineConfig()
    for s in plan[1:]:  # at least hold + confirm window frames, starting on the pipeline's frame phase
        first = math.ceil((s.start - s.warmup) * FPS - 1e-6)
        assert s.start * FPS - first >= segments.warmup_frames(config)
        assert first % segments.phase_period(config) == 0


@pytest.mark.slow
@pytest.mark.ros
def test_ros1_joined_bag_has_the_whole_runs_messages(ros1: dict) -> None:
    whole, split = ros1["whole"], ros1["split"]
    assert [(t, ns) for t, ns, *_ in split] == [(t, ns) for t, ns, *_ in whole]
    for (topic, _, w, wdata, wheader), (_, _, s, sdata, sheader) in zip(whole, split, strict=True):
        assert sheader == wheader  # connection headers: type, md5sum, definition, callerid
        if topic == CHATTER:
            assert sdata == wdata
        else:
            assert s.header == w.header
        if topic.endswith("/faces"):  # the same faces; ids of segment k offset by k * ID_STRIDE
            assert len(s.faces) == len(w.faces)
    stamps = [m.header.stamp.to_sec() - START for t, _, m, *_ in split if t == TOPIC + "/faces"]
    faces = [m for t, _, m, *_ in split if t == TOPIC + "/faces"]
    for msg, t in zip(faces, stamps, strict=True):
        k = next(s.index for s in ros1["plan"] if s.start - 1e-6 <= t < s.end)
        assert all(k * segments.ID_STRIDE < f.track_id < (k + 1) * segments.ID_STRIDE for f in msg.faces)


@pytest.mark.slow
@pytest.mark.ros
def test_ros1_faces_json_per_segment(ros1: dict) -> None:
    """Each segment's faces JSON: its own frames, numbered from 0, its stamps, its ids (offset by the index)."""
    lines = 0
    for s in ros1["plan"]:
        records = [json.loads(line) for line in faces_json(ros1["dir"] / "split.bag", s).read_text().splitlines()]
        assert [r["frame"] for r in records] == list(range(len(records)))
        assert all(s.start - 1e-6 <= r["stamp"] - START < s.end for r in records)
        ids = [f["track_id"] for r in records for f in r["faces"] + r["held"]]
        assert ids and all(s.index * segments.ID_STRIDE < i < (s.index + 1) * segments.ID_STRIDE for i in ids)
        lines += len(records)
    assert lines == N
    joined = ros1["dir"] / "split.jsonl"
    segments.join_faces_json([faces_json(ros1["dir"] / "split.bag", s) for s in ros1["plan"]], joined)
    whole = [json.loads(line) for line in (ros1["dir"] / "whole.jsonl").read_text().splitlines()]
    split = [json.loads(line) for line in joined.read_text().splitlines()]
    key = ("topic", "frame", "stamp", "frame_id")
    assert [[r[k] for k in key] for r in split] == [[r[k] for k in key] for r in whole]
    assert [len(r["faces"]) for r in split] == [len(r["faces"]) for r in whole]


@pytest.mark.slow
@pytest.mark.ros
def test_ros1_covers_match_the_whole_run(ros1: dict) -> None:
    shares = cover_differences(ros1["written"], images_of(ros1["whole"]), images_of(ros1["split"]))
    print("ROS 1 cover differences", max(shares), [round(s, 4) for s in shares])
    cut = first_frames(ros1["plan"], [i / FPS for i in range(N)])
    assert cut == [30, 60]
    assert max(shares[:cut[0]]) == 0  # the first segment is the whole run's
    assert max(shares) <= COVER_BOUND, [(i, round(s, 3)) for i, s in enumerate(shares) if s > COVER_BOUND]
    hidden = images_of(ros1["split"])[HIDDEN[0]]
    assert (hidden != 128).any()  # the face painted over right after the cut is covered where it was (held)


def after_cuts(plan: list[segments.Segment], images: list[np.ndarray]) -> list[np.ndarray]:
    """The frames of the first LEAK_FRAMES after each cut: where the split run's tracks are young."""
    cuts = first_frames(plan, [i / FPS for i in range(len(images))])
    return [images[i] for c in cuts for i in range(c, c + LEAK_FRAMES)]


@pytest.mark.slow
@pytest.mark.ros
def test_ros1_no_face_left_after_the_cuts(ros1: dict) -> None:
    plan = ros1["plan"]
    out = {TOPIC: after_cuts(plan, images_of(ros1["split"]))}
    faces, leaked, in_input = bag_leaks({TOPIC: after_cuts(plan, ros1["written"])}, out, lambda _t, img: img)
    assert faces >= 2 * LEAK_FRAMES - len(HIDDEN) and in_input > 0
    assert leaked == 0


# --- ROS 2 ------------------------------------------------------------------------------------------------------


def ros2_bag(path: Path, frames: list[np.ndarray], storage: str = "mcap") -> None:
    from emoji_privacy.ros import ros2_bags

    types = ros2_bags.typestore().types
    with ros2_bags.Ros2BagWriter(path, storage) as bag:
        image = bag.add_connection(TOPIC, "sensor_msgs/msg/Image")
        chatter = bag.add_connection(CHATTER, "std_msgs/msg/String")
        for i in range(N):
            t_ns = int(START * 1e9) + i * 1_000_000_000 // FPS
            bag.write(image, t_ns, ros2_bags.serialize(ros2_bags.image_message(frames[i],
                                                                               ros2_bags.header(t_ns, "camera"))))
            if i % 7 == 0:
                bag.write(chatter, t_ns + 5_000_000, ros2_bags.serialize(types["std_msgs/msg/String"](data=f"{i}")))


@pytest.fixture(scope="module")
def ros2(tmp_path_factory: pytest.TempPathFactory, frames: list[np.ndarray], anonymizer: object) -> dict:
    pytest.importorskip("rosbags", reason="rosbags is not installed")
    from ros2_bag_helpers import connections, read_raw

    from emoji_privacy.files.bag import anonymize_ros2_bag

    d = tmp_path_factory.mktemp("ros2")
    ros2_bag(d / "in", frames)
    anonymize_ros2_bag(d / "in", d / "whole", PipelineConfig(), anonymizer=anonymizer)
    plan = split_run(d / "in", "ros2bag", d / "split", anonymizer)
    return {"plan": plan, "whole": read_raw(d / "whole"), "split": read_raw(d / "split"),
            "conns": (connections(d / "whole"), connections(d / "split")), "dir": d}


@pytest.mark.slow
def test_ros2_joined_bag_has_the_whole_runs_messages(ros2: dict) -> None:
    from ros2_bag_helpers import decode

    from emoji_privacy.ros import ros2_bags

    whole, split = ros2["whole"], ros2["split"]
    assert len(ros2["plan"]) == 3
    assert [(t, ns) for t, ns, _ in split] == [(t, ns) for t, ns, _ in whole]
    assert ros2_bags.read_metadata(ros2["dir"] / "split")["storage_identifier"] == "mcap"
    cw, cs = ros2["conns"]
    assert list(cs) == list(cw)
    for topic, c in cw.items():
        assert (cs[topic].msgtype, cs[topic].msgdef.data, cs[topic].digest) == (c.msgtype, c.msgdef.data, c.digest)
    for (topic, _, w), (_, _, s) in zip(whole, split, strict=True):
        if topic == CHATTER:
            assert s == w
        else:
            assert decode(cw[topic].msgtype, s).header == decode(cw[topic].msgtype, w).header


@pytest.mark.slow
def test_ros2_covers_match_the_whole_run(ros2: dict, frames: list[np.ndarray]) -> None:
    from ros2_bag_helpers import decode

    from emoji_privacy.ros.ros2_bags import image_to_bgr

    def images(messages: list) -> list[np.ndarray]:
        return [image_to_bgr(decode(IMAGE, d), IMAGE) for t, _, d in messages if t == TOPIC]

    whole, split = images(ros2["whole"]), images(ros2["split"])
    shares = cover_differences(frames[:N], whole, split)
    print("ROS 2 cover differences", max(shares), [round(s, 4) for s in shares])
    assert max(shares[:30]) == 0
    assert max(shares) <= COVER_BOUND, [(i, round(s, 3)) for i, s in enumerate(shares) if s > COVER_BOUND]
    plan = ros2["plan"]
    faces, leaked, in_input = bag_leaks({TOPIC: after_cuts(plan, frames[:N])}, {TOPIC: after_cuts(plan, split)},
                                        lambda _t, img: img)
    assert faces >= 2 * LEAK_FRAMES and in_input > 0 and leaked == 0


# --- MP4 --------------------------------------------------------------------------------------------------------

VIDEO_FRAMES = 150
VIDEO_SECONDS = 1.7  # cuts at frames 51 and 102
VIDEO_COVER = 48  # a pixel is covered when a channel changed by more than this (H.264 noise stays well below)
VIDEO_COVER_BOUND = 0.05  # measured at most 0.025 (H.264 noise and the state older than the warm-up)


def packets(path: Path, kind: str = "video") -> list[tuple]:
    """(pts, dts, bytes, keyframe) of every packet of the first ``kind`` stream."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, p.dts, bytes(p), p.is_keyframe) for p in c.demux(stream) if p.dts is not None]


def frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [f.time for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, frames: list[np.ndarray], anonymizer: object) -> dict:
    from video_helpers import read_frames, write_clip

    from emoji_privacy.files.video import anonymize_video

    d = tmp_path_factory.mktemp("video")
    src = write_clip(d / "in.mp4", frames[:VIDEO_FRAMES], fps=FPS)
    anonymize_video(src, d / "whole.mp4", anonymizer.sharing_models())
    plan = split_run(src, "video", d / "split.mp4", anonymizer, seconds=VIDEO_SECONDS)
    return {"dir": d, "plan": plan, "parts": [segments.part_path(d / "split.mp4", s) for s in plan],
            "input": read_frames(src), "whole": read_frames(d / "whole.mp4"), "split": read_frames(d / "split.mp4")}


@pytest.mark.slow
def test_video_joined_frames_and_times_are_the_whole_runs(video: dict) -> None:
    d = video["dir"]
    assert len(video["plan"]) == 3
    assert len(video["split"]) == len(video["whole"]) == VIDEO_FRAMES
    assert frame_times(d / "split.mp4") == frame_times(d / "whole.mp4") == frame_times(d / "in.mp4")


@pytest.mark.slow
def test_video_join_is_a_stream_copy_with_the_audio(video: dict) -> None:
    d = video["dir"]
    joined = packets(d / "split.mp4")
    assert joined == [p for part in video["parts"] for p in packets(part)]
    assert sum(p[3] for p in joined) == len(video["parts"])  # a keyframe where each part starts, none re-made
    assert packets(d / "split.mp4", "audio") == packets(d / "in.mp4", "audio")  # copied as the whole run does
    assert packets(d / "whole.mp4", "audio") == packets(d / "in.mp4", "audio")


@pytest.mark.slow
def test_video_covers_match_the_whole_run(video: dict) -> None:
    shares = cover_differences(video["input"], video["whole"], video["split"], VIDEO_COVER)
    print("video cover differences", max(shares), [round(s, 4) for s in shares])
    cuts = first_frames(video["plan"], [i / FPS for i in range(VIDEO_FRAMES)])
    assert cuts == [51, 102]
    assert max(shares) <= VIDEO_COVER_BOUND, [(i, round(s, 3)) for i, s in enumerate(shares) if s > VIDEO_COVER_BOUND]
    near = [i for c in cuts for i in range(c, c + LEAK_FRAMES)]
    faces, leaked, in_input = bag_leaks({"v": [video["input"][i] for i in near]},
                                        {"v": [video["split"][i] for i in near]}, lambda _t, img: img)
    assert faces >= len(near) and in_input > 0 and leaked == 0
