"""Sustained frame rate and latency through the real ROS graph: roscore, camera_talker on the
demo scene at 30 Hz, emoji_anonymizer; latency is from the image stamp (set by the talker at
capture) to receipt of /anonymized/image by a subscriber."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy.processes import start, start_roscore, stop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--source", default="demo")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_ros_"))
    os.environ.setdefault("ROS_HOME", str(tmp))
    try:
        roscore, _ = start_roscore(tmp / "roscore.log")
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    import rospy
    from sensor_msgs.msg import Image

    procs = [roscore]
    try:
        rospy.init_node("bench_ros_graph", anonymous=True, disable_signals=True)
        lock = threading.Lock()
        recv: list[tuple[float, float, int]] = []
        inputs: list[int] = []

        def on_out(msg: Image) -> None:
            now = rospy.Time.now()
            with lock:
                recv.append((now.to_sec(), (now - msg.header.stamp).to_sec() * 1e3, msg.header.seq))

        def on_in(msg: Image) -> None:
            with lock:
                inputs.append(msg.header.seq)

        rospy.Subscriber("/anonymized/image", Image, on_out, queue_size=100, buff_size=2 ** 26)
        rospy.Subscriber("/camera/image_raw", Image, on_in, queue_size=100, buff_size=2 ** 26)
        total = int(args.seconds * args.rate) + 60
        procs.append(start(["roslaunch", "emoji_privacy", "camera.launch", f"source:={args.source}",
                            f"rate:={args.rate}", f"max_frames:={total}"], tmp / "launch.log"))
        while True:  # wait for the first output, then measure a steady window
            with lock:
                if recv:
                    break
            time.sleep(0.1)
        time.sleep(2.0)
        with lock:
            recv.clear()
            inputs.clear()
        time.sleep(args.seconds)
        with lock:
            r, n_in = list(recv), len(inputs)
    finally:
        for p in reversed(procs):
            stop(p)
    if len(r) < 2:
        sys.exit(f"error: too few outputs; see {tmp}/launch.log")
    lat = np.array([x[1] for x in r])
    fps = (len(r) - 1) / (r[-1][0] - r[0][0])
    rows = [[args.source, f"{args.rate:g}", f"{n_in / args.seconds:.1f}", f"{fps:.1f}",
             f"{100 * (1 - len(r) / max(n_in, 1)):.1f}%", f"{np.percentile(lat, 50):.1f}",
             f"{np.percentile(lat, 99):.1f}", f"{lat.max():.1f}"]]
    notes = (f"Measured over {args.seconds:g} s after a 2 s warm-up, talker, listener and this subscriber on the same "
             "machine (they share its cores). Targets: >= 30 fps sustained, p99 latency <= 40 ms.")
    save("ros_graph", "Through the ROS graph", [table(
        ["source", "talker Hz", "input fps", "output fps", "dropped", "latency p50 ms", "latency p99 ms",
         "latency max ms"], rows), notes])


if __name__ == "__main__":
    main()
