"""The README's commands, run as a user types them: every line of its "Without ROS" and "On a robot"
blocks is listed here with the check that runs it (a README line without one fails the first test), on
small inputs made in a temporary folder."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import REPO
from video_helpers import read_frames, write_clip
from wait_helpers import wait_for


def readme_commands(heading: str) -> list[str]:
    """The command lines (comments stripped) of the bash blocks under the README's ``## heading``."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        lines += [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]
    return lines


def bash(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def demo_clip(path: Path, frames: int = 20) -> None:
    from emoji_privacy.sources import DemoScene

    scene = DemoScene(640, 480)
    write_clip(path, [scene.frame(t, 150) for t in range(frames)], fps=30, tone=False)


@functools.cache
def opencv_yunet() -> cv2.FaceDetectorYN:
    from emoji_privacy.model_files import find_model_file

    return cv2.FaceDetectorYN.create(str(find_model_file("yunet")), "", (320, 320), 0.7)


def faces_left(image: np.ndarray) -> int:
    """Faces OpenCV's own YuNet finds (an independent check of the covers; emoji score below 0.7)."""
    detector = opencv_yunet()
    detector.setInputSize((image.shape[1], image.shape[0]))
    found = detector.detect(image)[1]
    return 0 if found is None else len(found)


# --- Without ROS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """clip.mp4, clip.mov, photo.jpg, photos/, recording.bag, rosbag2_run/ (a ROS 2 bag) and recordings/, as the
    README names them."""
    d = tmp_path_factory.mktemp("readme")
    demo_clip(d / "clip.mp4")
    demo_clip(d / "clip.mov")
    cv2.imwrite(str(d / "photo.jpg"), astronaut)
    (d / "photos").mkdir()
    cv2.imwrite(str(d / "photos" / "a.jpg"), astronaut)
    cv2.imwrite(str(d / "photos" / "b.png"), cv2.flip(astronaut, 1))
    pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
    from emoji_privacy.evaluation.video_to_bag import convert

    convert(str(d / "clip.mp4"), d / "recording.bag")
    from emoji_privacy.ros.ros2_bags import video_to_ros2_bag

    video_to_ros2_bag(d / "clip.mp4", d / "rosbag2_run", "sqlite3")
    (d / "recordings").mkdir()
    for name in ("robot1.mp4", "robot2.mp4"):
        demo_clip(d / "recordings" / name)
    return d


def check_video(d: Path) -> None:
    frames = read_frames(d / "clip_anonymized.mp4")
    assert len(frames) == 20 and frames[0].shape == (480, 640, 3)
    assert faces_left(read_frames(d / "clip.mp4")[0]) > 0 and sum(map(faces_left, frames)) == 0


def check_images(d: Path) -> None:
    outputs = sorted(p for p in (d / "out").rglob("*") if p.suffix in (".jpg", ".png"))  # not the manifest
    assert len(outputs) == 3, outputs
    for p in outputs:
        assert faces_left(cv2.imread(str(p))) == 0, p


def check_blur_and_faces_json(d: Path) -> None:
    frames = read_frames(d / "clip_anonymized.mov")
    assert len(frames) == 20 and sum(map(faces_left, frames)) == 0
    records = [json.loads(line) for line in (d / "faces.jsonl").read_text().splitlines()]
    assert len(records) == 20 and all(len(r["faces"]) == 3 for r in records), records[:2]


def check_bag(d: Path) -> None:
    import rosbag

    from emoji_privacy.ros.messages import image_to_bgr

    with rosbag.Bag(str(d / "shared.bag")) as bag:
        images = [image_to_bgr(m) for _, m, _ in bag.read_messages(topics=["/camera/image_raw"])]
        faces = [m for _, m, _ in bag.read_messages(topics=["/camera/image_raw/faces"])]
    assert len(images) == len(faces) == 20 and sum(map(faces_left, images)) == 0


def check_ros2_bag(d: Path) -> None:
    from emoji_privacy.ros.ros2_bags import read_images

    images = read_images(d / "out" / "rosbag2_run_anonymized")
    assert len(images) == 20 and sum(map(faces_left, images)) == 0


def check_ray(d: Path) -> None:
    for name in ("robot1", "robot2"):
        frames = read_frames(d / "anonymized" / f"{name}_anonymized.mp4")
        assert len(frames) == 20 and sum(map(faces_left, frames)) == 0, name
    assert (d / "anonymized" / "emoji_privacy_manifest.json").is_file()


WITHOUT_ROS: dict[str, Callable[[Path], None]] = {
    "emoji-privacy anonymize clip.mp4": check_video,
    "emoji-privacy anonymize photo.jpg photos/ -o out/": check_images,
    "emoji-privacy anonymize clip.mov --replace blur --faces-json faces.jsonl": check_blur_and_faces_json,
    "emoji-privacy anonymize recording.bag -o shared.bag": check_bag,
    "emoji-privacy anonymize rosbag2_run/ -o out/": check_ros2_bag,
    "emoji-privacy anonymize recordings/* -o anonymized/ --ray": check_ray,
}


def test_every_readme_command_has_a_check() -> None:
    assert readme_commands("Without ROS") == list(WITHOUT_ROS)
    assert readme_commands("On a robot") == list(ON_A_ROBOT)


@pytest.mark.parametrize("command", list(WITHOUT_ROS))
def test_without_ros(command: str, inputs: Path) -> None:
    if command.endswith("-o out/"):
        (inputs / "out").mkdir(exist_ok=True)
    r = bash(command, inputs)
    assert r.returncode == 0, r.stderr[-3000:]
    WITHOUT_ROS[command](inputs)


# --- On a robot ----------------------------------------------------------------------------------------------

ON_A_ROBOT: dict[str, str] = {  # each line, and the test below that runs it
    "source build/setup.bash": "every test here: `make test` runs them in that shell",
    "roslaunch emoji_privacy camera.launch": "test_camera_launch_without_a_camera",
    "roslaunch emoji_privacy camera.launch source:=/dev/video2 rviz:=true": "test_camera_launch_without_a_camera",
    "roslaunch emoji_privacy camera.launch source:=clip.mp4 loop:=true": "test_camera_launch_clip_and_echo",
    "roslaunch emoji_privacy camera.launch source:=rtsp://robot-cam/stream config:=my.yaml":
        "test_camera_launch_stream_and_config",
    "rostopic echo /anonymized/faces": "test_camera_launch_clip_and_echo",
    "rosrun emoji_privacy emoji_anonymizer camera/image_raw:=/usb_cam/image_raw": "test_listener_remapped",
    "roslaunch emoji_privacy replay.launch bag:=/tmp/in.bag record:=/tmp/out.bag": "test_replay_and_evaluate",
    "rosrun emoji_privacy evaluate_bag /tmp/out.bag --out /tmp/out_report": "test_replay_and_evaluate",
}


def robot_command(line: str, tmp_path: Path) -> list[str]:
    """A README line as arguments, its /tmp/ files put in this test's folder."""
    assert line in ON_A_ROBOT
    return shlex.split(line.replace("/tmp/", f"{tmp_path}/"))


@pytest.fixture
def clean_params(roscore: str):
    """camera.launch leaves its nodes' parameters on the master: remove them after each launch."""
    import rospy

    yield
    for ns in ("/emoji_anonymizer", "/camera_talker"):
        if rospy.has_param(ns):
            rospy.delete_param(ns)


@pytest.mark.parametrize("line", ["roslaunch emoji_privacy camera.launch",
                                  "roslaunch emoji_privacy camera.launch source:=/dev/video2 rviz:=true"])
def test_camera_launch_without_a_camera(launch, clean_params, tmp_path: Path, line: str) -> None:
    """No camera here: the talker ends with one line naming the source, the listener keeps running."""
    import shutil

    if "rviz:=true" in line and shutil.which("rviz") is None:
        pytest.skip("rviz is not installed (WITH_RVIZ=1 make setup); test_rviz.py runs rviz:=true on the demo")
    proc = launch(*robot_command(line, tmp_path))
    source = "/dev/video2" if "video2" in line else "camera 0"
    wait_for(lambda: "models loaded" in proc.output() and "camera_talker" in proc.output()
             and "exit code 1" in proc.output(), 120, "the talker to fail and the listener to start")
    out = proc.output()
    assert f"cannot open {source}" in out or f"{source}" in out.split("exit code 1")[0], out[-3000:]
    assert proc.proc.poll() is None, "the listener (required) keeps the launch running"


def test_camera_launch_clip_and_echo(launch, clean_params, tmp_path: Path) -> None:
    demo_clip(tmp_path / "clip.mp4", frames=30)
    line = "roslaunch emoji_privacy camera.launch source:=clip.mp4 loop:=true"
    proc = launch(*robot_command(line, tmp_path), cwd=tmp_path)  # typed in the clip's folder
    # rostopic echo, as typed, in the launch's folder: three FaceEmotion entries per message
    echo = ["rostopic", "echo", "-n", "3", "/anonymized/faces"]
    assert robot_command("rostopic echo /anonymized/faces", tmp_path) == [*echo[:2], echo[-1]]
    r = subprocess.run(echo, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr + proc.output()[-3000:]
    messages = [m for m in r.stdout.split("---") if "faces:" in m]
    assert len(messages) == 3 and all(m.count("track_id:") == 3 for m in messages), r.stdout[:2000]
    assert proc.proc.poll() is None


def test_camera_launch_stream_and_config(launch, clean_params, tmp_path: Path) -> None:
    """An unreachable stream is a clear line from the talker; config:=my.yaml reaches the listener."""
    (tmp_path / "my.yaml").write_text("output:\n  jpeg_quality: 55\n")
    line = "roslaunch emoji_privacy camera.launch source:=rtsp://robot-cam/stream config:=my.yaml"
    args = robot_command(line, tmp_path)
    proc = launch(*[a.replace("config:=my.yaml", f"config:={tmp_path / 'my.yaml'}") for a in args])
    wait_for(lambda: "models loaded" in proc.output(), 120, "the listener to start")
    import rospy

    assert rospy.get_param("/emoji_anonymizer/output/jpeg_quality") == 55
    wait_for(lambda: "rtsp://robot-cam/stream" in proc.output(), 60, "the talker to say it cannot open the stream")


def test_listener_remapped(launch, clean_params, tmp_path: Path, astronaut: np.ndarray) -> None:
    import rospy
    from sensor_msgs.msg import Image

    from emoji_privacy.ros.messages import bgr_to_image, image_to_bgr

    received: list[Image] = []
    sub = rospy.Subscriber("/anonymized/image", Image, received.append, queue_size=10, buff_size=2 ** 26)
    pub = rospy.Publisher("/usb_cam/image_raw", Image, queue_size=1)
    line = "rosrun emoji_privacy emoji_anonymizer camera/image_raw:=/usb_cam/image_raw"
    launch(*robot_command(line, tmp_path), f"__name:=readme_listener_{os.getpid()}")
    try:
        wait_for(lambda: pub.get_num_connections() > 0, 120, "the listener to subscribe /usb_cam/image_raw")
        deadline = time.time() + 60
        while not received and time.time() < deadline:
            pub.publish(bgr_to_image(astronaut, rospy.Header(stamp=rospy.Time.now())))
            time.sleep(0.5)
    finally:
        sub.unregister()
        pub.unregister()
    assert received, "nothing on /anonymized/image"
    out = image_to_bgr(received[0])
    assert out.shape == astronaut.shape and faces_left(astronaut) > 0 and faces_left(out) == 0


def test_replay_and_evaluate(launch, clean_params, tmp_path: Path) -> None:
    from emoji_privacy.evaluation.video_to_bag import convert

    demo_clip(tmp_path / "clip.mp4", frames=30)
    convert(str(tmp_path / "clip.mp4"), tmp_path / "in.bag")
    proc = launch(*robot_command("roslaunch emoji_privacy replay.launch bag:=/tmp/in.bag record:=/tmp/out.bag",
                                 tmp_path))
    wait_for(lambda: proc.proc.poll() is not None, 240, "replay.launch to end")
    assert (tmp_path / "out.bag").is_file(), proc.output()[-3000:]
    r = subprocess.run(robot_command("rosrun emoji_privacy evaluate_bag /tmp/out.bag --out /tmp/out_report",
                                     tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "out_report").is_dir() and any((tmp_path / "out_report").iterdir())
