"""The same clip gives bit-identical landmarks and anonymized frames in every process, whatever the thread counts.

Each run is a separate interpreter (the landmark refiner's gradient magnitude once came from OpenCV's IPP
path, whose bits depended on the output buffer's address, so a per-process heap layout moved the landmarks;
refiner.gradient_channels). One run has every thread pool at 1, the other at 2 and its heap shifted by
held blocks of varying sizes, so buffers land at other addresses than in the first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from data_helpers import shared_path

N_FRAMES = 30

CHILD = r"""
import hashlib, json, sys
import cv2, numpy as np
from emoji_privacy.pipeline import Anonymizer

video, n, threads, shift = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cv2.setNumThreads(threads)
cap = cv2.VideoCapture(video)
fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
anonymizer = Anonymizer()
keys = ("landmarks", "yaw", "roll", "radius", "probabilities", "frames")
h = {k: hashlib.sha256() for k in keys}
held, faces_seen = [], 0
for i in range(n):
    ok, frame = cap.read()
    if not ok:
        break
    if shift:  # hold a small and a crop-sized block of varying sizes: later buffers land elsewhere
        held += [np.empty(16 * (i % 5) + 8, np.uint8), np.empty(shift + 16 * (i % 3), np.uint8)]
    out, faces = anonymizer.process(frame, i / fps)
    h["frames"].update(out.tobytes())
    for f in faces:
        faces_seen += 1
        h["landmarks"].update(np.asarray(f.landmarks).tobytes())
        h["probabilities"].update(np.asarray(f.probabilities).tobytes())
        for k in ("yaw", "roll", "radius"):
            h[k].update(np.float64(getattr(f, k if k == "radius" else k + "_deg")).tobytes())
print(json.dumps({"faces": faces_seen, **{k: v.hexdigest() for k, v in h.items()}}))
"""


def _run(video: str, threads: int, shift: int) -> dict[str, object]:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    p = subprocess.run([sys.executable, "-c", CHILD, video, str(N_FRAMES), str(threads), str(shift)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_clip_is_bit_identical_across_processes_and_thread_counts() -> None:
    """fer_test.mp4's first frames: landmarks, head pose, emotion and output frames hash the same in a run with
    one thread everywhere and in one with two threads and a shifted heap."""
    video = str(shared_path("data", "videos", "fer_test.mp4"))
    one = _run(video, threads=1, shift=0)
    two = _run(video, threads=2, shift=96 * 96 * 4)
    assert one["faces"] >= N_FRAMES // 2, f"only {one['faces']} faces in {N_FRAMES} frames"
    differ = [k for k in one if one[k] != two[k]]
    assert not differ, f"differ between the processes: {differ}"
