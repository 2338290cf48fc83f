"""The web demo's ROS view: a real roscore, the real talker/anonymizer graph on the demo scene, and
`rosrun emoji_privacy web_demo` serving /anonymized/image as MJPEG with the current faces."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request

import cv2
import numpy as np
import pytest
from web_helpers import wait_for_server

pytest.importorskip("rospy")
pytest.importorskip("fastapi", reason="the web demo's packages are not installed (make setup)")

from emoji_privacy import (
    EMOTIONS,  # noqa: E402
    processes,
)


def read_mjpeg_frames(port: int, n: int, timeout: float = 60.0) -> tuple[str, list[np.ndarray]]:
    """(content type, the first ``n`` JPEG parts decoded) of the MJPEG stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", "/api/ros/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    ctype = resp.getheader("Content-Type")
    frames = []
    while len(frames) < n:
        assert resp.readline().strip() == b"--frame"
        headers = {}
        while (line := resp.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        jpeg = resp.read(int(headers["content-length"]))
        resp.readline()
        frames.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    conn.close()
    return ctype, frames


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def test_faces_from_message_round_trip() -> None:
    pytest.importorskip("emoji_privacy.msg", reason="the catkin workspace is not sourced (make test)")
    from std_msgs.msg import Header

    from emoji_privacy.pipeline import FaceResult
    from emoji_privacy.ros.messages import faces_from_message, faces_to_message

    probs = np.array([0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05], np.float32)
    face = FaceResult(7, np.array([10, 20, 110, 140], np.float32), 0.9, probs, 3, 0.65, -4.5,
                      np.zeros((68, 2), np.float32), (60.0, 80.0), 90.0)
    back = faces_from_message(faces_to_message([face], Header(), with_landmarks=False))[0]
    assert (back.track_id, back.emotion, back.emotion_index) == (7, "happy", 3)
    assert np.allclose(back.box, face.box) and np.allclose(back.probabilities, probs)
    assert back.landmarks.shape == (0, 2) and abs(back.roll_deg + 4.5) < 1e-4 and abs(back.confidence - 0.65) < 1e-6


def test_mjpeg_view_of_the_ros_graph(launch, tmp_path) -> None:
    graph = launch("roslaunch", "emoji_privacy", "camera.launch", "source:=demo", "rate:=10")
    port = processes.free_port()
    web = launch("rosrun", "emoji_privacy", "web_demo", f"_port:={port}")
    base = f"http://127.0.0.1:{port}"
    wait_for_server(base, web.proc, web.log_path)
    deadline = time.time() + 120
    while not (status := get_json(base + "/api/ros/status"))["streaming"]:
        assert time.time() < deadline, f"no ROS frames: {status}\n{graph.output()[-2000:]}"
        time.sleep(0.5)
    assert status["image_topic"] == "/anonymized/image" and status["master_uri"]
    from ros_helpers import Collector
    from sensor_msgs.msg import Image

    from emoji_privacy.ros.messages import image_to_bgr

    raw, anonymized = Collector("/camera/image_raw", Image), Collector("/anonymized/image", Image)
    try:
        ctype, frames = read_mjpeg_frames(port, 4)
    finally:
        raw.close()
        anonymized.close()
    assert ctype == "multipart/x-mixed-replace; boundary=frame"
    raw_by, anon_by = raw.by_stamp(), anonymized.by_stamp()
    for frame in frames[2:]:  # the first parts may predate the collectors
        assert frame.shape == (480, 640, 3)
        diffs = {stamp: np.abs(image_to_bgr(m).astype(np.int16) - frame).mean() for stamp, m in anon_by.items()}
        stamp = min(diffs, key=diffs.get)
        assert diffs[stamp] < 2.5, "each MJPEG part is one /anonymized/image message (up to JPEG)"
        if stamp in raw_by:
            assert np.abs(image_to_bgr(raw_by[stamp]).astype(np.int16) - frame).mean() > 2 * diffs[stamp] + 2
    faces = get_json(base + "/api/ros/faces")
    assert len(faces["faces"]) == 3 and faces["stamp"] > 0, faces
    assert all(f["emotion"] in EMOTIONS and f["box"][2] > f["box"][0] for f in faces["faces"])
    cv2.imwrite(str(tmp_path / "mjpeg_frame.png"), frames[-1])
