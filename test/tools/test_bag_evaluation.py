"""Bag evaluation: bags made from videos (video_to_bag), offline evaluation (evaluate_bag), bad bags, and the
tools' entry points. Anonymizing a bag for sharing is in test_bag_anonymize.py."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import shared_path

pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
from std_msgs.msg import String  # noqa: E402

from emoji_privacy import image_io  # noqa: E402
from emoji_privacy.evaluation import bag as evaluate_bag
from emoji_privacy.evaluation import video_to_bag
from emoji_privacy.evaluation.cli import evaluate_bag_main
from emoji_privacy.ros import bags as bag_io
from emoji_privacy.ros.messages import bgr_to_message, image_to_bgr, make_header  # noqa: E402

START = 1_700_000_000.0


def video_frame(path: Path, index: int = 0) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    for _ in range(index + 1):
        ok, frame = cap.read()
        assert ok
    cap.release()
    return frame


def read_all(path: Path, topic: str = "/camera/image_raw") -> list[tuple[object, float]]:
    with bag_io.open_bag(path) as bag:
        return [(msg, t) for _, msg, t in bag_io.read(bag, [topic])]


@pytest.fixture(scope="module")
def fer_test_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "fer_test.bag"
    n = video_to_bag.convert(str(shared_path("data", "videos", "fer_test.mp4")), out, start=START, progress=False)
    assert n == 115
    return out


def test_video_to_bag_stamps_at_the_video_rate(fer_test_bag: Path) -> None:
    video = shared_path("data", "videos", "fer_test.mp4")
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    msgs = read_all(fer_test_bag)
    assert len(msgs) == 115
    stamps = np.array([m.header.stamp.to_sec() for m, _ in msgs])
    assert np.allclose(stamps, START + np.arange(115) / fps, atol=1e-6)
    assert np.allclose([t for _, t in msgs], stamps, atol=1e-6), "bag time = header stamp"
    assert [m.header.seq for m, _ in msgs] == list(range(115))
    assert {m.header.frame_id for m, _ in msgs} == {"camera"}
    assert np.array_equal(image_to_bgr(msgs[7][0]), video_frame(video, 7))


@pytest.mark.parametrize("encoding", [*image_io.ENCODINGS, "jpeg", "png"])
def test_every_encoding_round_trips(tmp_path: Path, encoding: str) -> None:
    video = shared_path("data", "videos", "fer_test.mp4")
    out = tmp_path / f"{encoding}.bag"
    assert video_to_bag.convert(str(video), out, encoding=encoding, max_frames=2, progress=False) == 2
    msg, _ = read_all(out)[1]
    assert msg._type == ("sensor_msgs/CompressedImage" if encoding in ("jpeg", "png") else "sensor_msgs/Image")
    got, want = image_to_bgr(msg).astype(int), video_frame(video, 1)
    if image_io.ENCODINGS.get(encoding, (3,))[0] == 1:
        want = cv2.cvtColor(cv2.cvtColor(want, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    diff = np.abs(got - want.astype(int)).mean()
    assert diff < (3.0 if encoding == "jpeg" else 1e-9), f"{encoding}: mean difference {diff:.2f}"


@pytest.mark.slow  # 3.3 s measured (idle 2-core machine, --durations)
def test_perturbations(tmp_path: Path) -> None:
    video = str(shared_path("data", "videos", "fer_test.mp4"))
    frames = {}
    for name in ("none", *video_to_bag.PERTURBATION_NAMES):
        path = tmp_path / f"{name}.bag"
        video_to_bag.convert(video, path, start=START, max_frames=60, progress=False,
                             perturb=() if name == "none" else (name,))
        frames[name] = read_all(path)
    base = frames["none"]
    period = base[1][0].header.stamp.to_sec() - START
    kept = [round((m.header.stamp.to_sec() - START) / period) for m, _ in frames["drop"]]
    assert 30 < len(kept) < 55 and kept == sorted(kept), "about 30% of the frames removed, stamps keep their gaps"
    assert max(np.diff(kept)) >= 2
    assert {(m.width, m.height) for m, _ in frames["downscale"]} == {(320, 240)}
    brightness = [image_to_bgr(m).mean() / image_to_bgr(b).mean() for (m, _), (b, _) in zip(frames["dark"], base,
                                                                                             strict=True)]
    assert sum(r < 0.4 for r in brightness) == 8 and sum(r > 0.99 for r in brightness) == 52
    sharp = [cv2.Laplacian(image_to_bgr(m), cv2.CV_64F).var() for m, _ in frames["blur"][:20]]
    plain = [cv2.Laplacian(image_to_bgr(m), cv2.CV_64F).var() for m, _ in base[:20]]
    assert np.mean(sharp) < 0.5 * np.mean(plain), "motion blur removes detail"


@pytest.mark.slow  # 12 s measured (idle 2-core machine, --durations)
def test_evaluate_offline_writes_the_report(fer_test_bag: Path, tmp_path: Path) -> None:
    """The shared clip, evaluated offline with the leak metric: every frame has its one face,
    covered in every frame, one track all along, and every report file is there."""
    out = tmp_path / "report"
    ev, report = evaluate_bag.evaluate(fer_test_bag, out, evaluate_bag.Options(progress=False))
    assert ev.mode == "offline" and ev.frames == 115 and ev.input_frames == 115 and ev.undecodable == 0
    assert (ev.width, ev.height) == (596, 336)
    leaks = ev.leak_summary()
    assert leaks.face_frames >= 110, "CenterFace finds the face in (nearly) every original frame"
    assert leaks.leaked == 0 and leaks.max_run == 0 and leaks.id_switches == 0
    tracks = ev.tracks()
    assert tracks[0].track_id == 1 and tracks[0].detected >= 110 and tracks[0].lifetime_s > 4.5
    assert abs(ev.source_fps - 24.7) < 0.1 and ev.pipeline_fps() > 0
    text = report.read_text()
    for heading in ("## Privacy", "leaked face-frames | 0 of", "## Speed", "## Tracks", "## Emotion timelines",
                    "timeline_track_1.png", "contact_sheet.png"):
        assert heading in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table>" in html
    cap = cv2.VideoCapture(str(out / "anonymized.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 115
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (596, 336)
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 115 and {r["leaked"] for r in rows} == {"0"}
    with open(out / "faces.csv") as f:
        faces = list(csv.DictReader(f))
    assert {r["track_id"] for r in faces if r["held"] == "0"} >= {"1"}
    for name in ("timeline_track_1.png", "timing.png", "contact_sheet.png", "tracks.csv"):
        assert (out / name).stat().st_size > 0


def test_evaluate_compressed_bag(tmp_path: Path) -> None:
    bag = tmp_path / "jpeg.bag"
    video_to_bag.convert(str(shared_path("data", "videos", "fer_woman2.mp4")), bag, encoding="jpeg", max_frames=20,
                         progress=False)
    ev, _ = evaluate_bag.evaluate(bag, None, evaluate_bag.Options(leak_check=False, progress=False))
    assert ev.frames == 20 and ev.faces_per_frame() >= 0.9 and ev.leak_summary() is None


# --- bad bags ---------------------------------------------------------------------------------------


def write_bag(path: Path, messages: list[tuple[str, object]]) -> Path:
    with bag_io.BagWriter(path) as bag:
        for i, (topic, msg) in enumerate(messages):
            bag.write(topic, msg, START + i)
    return path


def run_tool(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = evaluate_bag_main([*args, "--quiet"])
    return code, capsys.readouterr().err


def test_truncated_bag(fer_test_bag: Path, tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.bag"
    data = fer_test_bag.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, err = run_tool(capsys, str(cut))
    assert code == 1 and err.count("\n") == 1
    assert "truncated" in err and f"rosbag reindex {cut}" in err


def test_bag_without_image_topic_lists_its_topics(tmp_path: Path, capsys) -> None:
    bag = write_bag(tmp_path / "chatter.bag", [("/chatter", String(data="hi"))] * 3)
    code, err = run_tool(capsys, str(bag))
    assert code == 1
    assert "holds no sensor_msgs/Image or sensor_msgs/CompressedImage topic" in err
    assert "/chatter (std_msgs/String, 3 messages)" in err


def test_unknown_encoding(tmp_path: Path, capsys) -> None:
    msg = bgr_to_message(np.zeros((4, 6, 3), np.uint8), make_header(START), "mono8")
    msg.encoding = "bayer_rggb8"
    bag = write_bag(tmp_path / "bayer.bag", [("/cam/image", msg)])
    code, err = run_tool(capsys, str(bag))
    assert code == 1 and "/cam/image" in err and "unsupported image encoding 'bayer_rggb8'" in err


def test_other_bad_bags(tmp_path: Path, capsys) -> None:
    assert "does not exist" in run_tool(capsys, str(tmp_path / "none.bag"))[1]
    junk = tmp_path / "junk.bag"
    junk.write_text("not a bag")
    assert "is not a readable ROS 1 bag" in run_tool(capsys, str(junk))[1]
    img = bgr_to_message(np.zeros((4, 6, 3), np.uint8), make_header(START))
    two = write_bag(tmp_path / "two.bag", [("/a/image", img), ("/b/image", img)])
    code, err = run_tool(capsys, str(two))
    assert code == 1 and "several image topics (/a/image, /b/image); choose one with --topic" in err
    code, err = run_tool(capsys, str(two), "--topic", "/c/image")
    assert code == 1 and "has no topic /c/image" in err
    code, err = run_tool(capsys, str(two), "--set", "tracking.hold=3")
    assert code == 1 and "unknown parameter 'tracking.hold'" in err


@pytest.mark.ros  # runs `rosrun`, which needs the sourced catkin workspace
def test_tools_run_with_rosrun_and_python_m(tmp_path: Path) -> None:
    bag = tmp_path / "demo.bag"
    made = subprocess.run(["rosrun", "emoji_privacy", "video_to_bag", "demo", str(bag), "--max-frames", "3",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "wrote 3 frames on /camera/image_raw (bgr8)" in made.stdout
    cut = tmp_path / "cut.bag"
    cut.write_bytes(bag.read_bytes()[:1000])
    res = subprocess.run([sys.executable, "-m", "emoji_privacy.evaluation", "bag", str(cut)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("evaluate_bag: error: bag ")


@pytest.mark.parametrize(("tool", "usage"), [("video_to_bag", "source bag"), ("emotion", "models")])
def test_the_other_documented_python_m_tools_answer_help(tool: str, usage: str) -> None:
    """docs/evaluation.md and docs/training.md give `python -m emoji_privacy.evaluation <tool>` too."""
    res = subprocess.run([sys.executable, "-m", "emoji_privacy.evaluation", tool, "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and usage in res.stdout, res.stderr


def test_rate_does_not_depend_on_the_order_of_the_times() -> None:
    """Listener mode evaluates an output whose faces message was not recorded after the others, so its
    receipt time comes last in the list although it is the earliest: the rate is over the span."""
    from emoji_privacy.evaluation.records import rate

    assert rate([0.0, 0.1, 0.2, 0.3]) == pytest.approx(10.0)
    assert rate([0.1, 0.2, 0.3, 0.0]) == pytest.approx(10.0)
    assert rate([0.5]) == 0.0 and rate([0.5, 0.5]) == 0.0
