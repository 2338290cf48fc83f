"""Round trip through the real ROS graph: video -> bag -> replay.launch (roscore, rosbag play,
emoji_anonymizer, rosbag record) -> recorded output bag -> evaluate_bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import shared_path

pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")

from emoji_privacy.evaluation import bag as evaluate_bag  # noqa: E402
from emoji_privacy.evaluation import video_to_bag

LAUNCH_TIMEOUT = 240


@pytest.mark.slow  # 36 s measured
def test_round_trip_records_and_evaluates_the_listener(launch, tmp_path: Path) -> None:
    played, recorded = tmp_path / "fer_test.bag", tmp_path / "out.bag"
    assert video_to_bag.convert(str(shared_path("data", "videos", "fer_test.mp4")), played, progress=False) == 115
    proc = launch("roslaunch", "emoji_privacy", "replay.launch", f"bag:={played}", f"record:={recorded}",
                  "rate:=0.5")
    assert proc.proc.wait(LAUNCH_TIMEOUT) == 0, proc.output()[-3000:]
    assert "replay_bag: bag played" in proc.output()

    ev, report = evaluate_bag.evaluate(recorded, tmp_path / "report", evaluate_bag.Options(progress=False))
    assert ev.mode == "listener" and ev.input_topic == "camera/image_raw" and ev.image_topic == "anonymized/image"
    assert ev.input_frames == 115, "every played frame was recorded (playing waited for the recorder)"
    assert ev.dropped_at_start <= 2, "playing waited for the listener (a frame may go while it connects)"
    assert 20 <= ev.frames <= 115 and ev.dropped == 115 - ev.frames
    latency = ev.latency_ms()
    # a fast listener's output can reach the recorder before its input: that frame's latency counts as 0
    assert len(latency) == ev.frames and (latency >= 0).all() and np.median(latency) > 0
    assert ev.output_first <= 0.1 * ev.frames and (latency == 0).sum() == ev.output_first
    assert ev.output_fps() > 0 and ev.faces_per_frame() >= 0.9
    leaks = ev.leak_summary()
    assert leaks.face_frames >= ev.frames - 2, "the original of every output frame was found by its stamp"
    assert leaks.leaked == 0, f"{leaks.leaked} face-frames leaked"
    assert ev.diagnostics.get("errors") == "0"
    assert len({t.track_id for t in ev.tracks() if t.detected >= 10}) == 1
    assert "## Privacy" in report.read_text() and (tmp_path / "report" / "anonymized.mp4").exists()
    assert np.isfinite(ev.latency_ms()).all()


def test_compressed_bag_needs_the_compressed_transport(launch, tmp_path: Path) -> None:
    bag = tmp_path / "jpeg.bag"
    video_to_bag.convert("demo", bag, encoding="jpeg", max_frames=3, progress=False)
    proc = launch("roslaunch", "emoji_privacy", "replay.launch", f"bag:={bag}")
    proc.proc.wait(LAUNCH_TIMEOUT)  # roslaunch exits 0 even when a required node failed: check the log
    assert "holds sensor_msgs/CompressedImage; replay it with transport:=compressed" in proc.output()
