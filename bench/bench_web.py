"""The web demo's speed as a client sees it: round trips of the HTTP API and frames per second of the
webcam WebSocket, against the real server (`python -m emoji_privacy.web`) on this machine."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, table  # noqa: E402

from emoji_privacy import processes  # noqa: E402
from emoji_privacy.sources import DemoScene  # noqa: E402


def post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, body, {"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def time_http(url: str, body: bytes, n: int) -> tuple[list[float], list[float], int]:
    """(round trip ms, server pipeline ms, faces) of ``n`` requests after two warm-ups."""
    for _ in range(2):
        post(url, body)
    trips, pipeline, faces = [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = post(url, body)
        trips.append((time.perf_counter() - t0) * 1e3)
        pipeline.append(r["processing_ms"])
        faces = len(r["faces"])
    return trips, pipeline, faces


def time_websocket(url: str, frames: list[bytes]) -> tuple[list[float], list[float], int]:
    """Frame by frame as the page does it: send one, wait for its answer, send the next."""
    from websockets.sync.client import connect

    trips, pipeline, faces = [], [], 0
    with connect(url, max_size=2 ** 24) as ws:
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            ws.send(frame)
            meta = json.loads(ws.recv())
            assert "error" not in meta, meta
            ws.recv()
            if i >= 2:  # warm-up
                trips.append((time.perf_counter() - t0) * 1e3)
                pipeline.append(meta["processing_ms"])
                faces = len(meta["faces"])
    return trips, pipeline, faces


def row(case: str, size: str, trips: list[float], pipeline: list[float], faces: int) -> list[object]:
    return [case, size, faces, f"{np.mean(trips):.1f}", f"{np.percentile(trips, 95):.1f}", f"{np.mean(pipeline):.1f}",
            f"{np.mean(trips) - np.mean(pipeline):.1f}", f"{1000 / np.mean(trips):.1f}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=30, help="timed requests per HTTP case")
    ap.add_argument("--frames", type=int, default=60, help="timed webcam frames")
    args = ap.parse_args()
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    jpeg = cv2.imencode(".jpg", astronaut)[1].tobytes()
    big = cv2.imencode(".jpg", cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_CUBIC))[1].tobytes()
    scene = DemoScene(640, 480)
    webcam = [cv2.imencode(".jpg", scene.frame(t, 150), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
              for t in range(args.frames + 2)]
    group = cv2.imencode(".jpg", scene.frame(0, 150))[1].tobytes()

    load_before = Path("/proc/loadavg").read_text().split()[0]
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        proc = processes.start([sys.executable, "-m", "emoji_privacy.web", "--port", str(port), "--ros", "off"], log)
        try:
            deadline = time.time() + 180
            while True:
                try:
                    urllib.request.urlopen(base + "/api/info", timeout=2).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        print(log.read_text()[-2000:], file=sys.stderr)
                        return 1
                    time.sleep(0.3)
            rows = [
                row("upload", "512x512 JPEG", *time_http(base + "/api/anonymize", jpeg, args.requests)),
                row("upload", "640x480 JPEG", *time_http(base + "/api/anonymize", group, args.requests)),
                row("upload, scaled to 1600", "3000x3000 JPEG", *time_http(base + "/api/anonymize", big,
                                                                          max(args.requests // 3, 3))),
                row("webcam WebSocket", "640x480 JPEG", *time_websocket(f"ws://127.0.0.1:{port}/ws/live", webcam)),
            ]
        finally:
            processes.stop(proc)
    load_after = Path("/proc/loadavg").read_text().split()[0]
    headers = ["case", "input", "faces", "round trip ms", "p95 ms", "pipeline ms (server)", "other ms",
               "requests/s (one client)"]
    note = ("One client on the same machine, requests one after another (the page does the same: the next webcam "
            "frame is sent when the previous answer has arrived). `pipeline ms` is `Anonymizer.process()` as the "
            "server measured it; `other ms` is the rest: upload, decoding, scaling, JPEG encoding of the answer, "
            "base64 and JSON, HTTP or WebSocket. Default settings (JPEG quality 90, --max-side 1600). "
            f"System load average (1 min) before / after: {load_before} / {load_after} "
            "(above 2 on this 2-core machine, other processes took part of the CPU).")
    save("web", "Web demo speed (HTTP API and webcam WebSocket)", [table(headers, rows), note])
    return 0


if __name__ == "__main__":
    sys.exit(main())
