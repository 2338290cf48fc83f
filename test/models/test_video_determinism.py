"""The video tool is deterministic: the same clip, config and models give the same output frames and faces JSON
on every run, while other processes keep every core busy (what made the two overlapping stages of
streaming.PipelinedAnonymizer finish in a different order from run to run, issue 35), and that output is the one
rule the docs give: frame by frame in one thread, ``finish(detect(frame, follow_lag=FOLLOW_LAG))``.

Checked against the defects it guards (by hand, then restored): ``Anonymizer.detect`` following the tracks as the
finishing stage has left them at that moment (the old race) failed it on 4 runs of 4, output frames differing from
frame 1 or 5 on; ``anonymize_video`` resetting without ``new_stream`` (track ids counting on from the first run)
failed it too."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from data_helpers import shared_path

from emoji_privacy.evaluation import crowd, synthetic
from emoji_privacy.files import faces_records, json_line
from emoji_privacy.files.video import anonymize_video, frame_to_bgr
from emoji_privacy.streaming import PipelinedAnonymizer

FRAMES = 30
"""Frames of the dark crowd clip: many small faces (the ones followed between frames), 1 s at 30 fps."""


@pytest.fixture(scope="module")
def crowd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    faces = synthetic.load_faces(root=shared_path("data", "landmarks", "helen_test").parent, max_width=256)
    scene = crowd.CrowdScene(faces, crowd.CrowdSpec(640, 360, 10, "dark", frames=FRAMES))
    return crowd.write_clip(scene, tmp_path_factory.mktemp("crowd") / "crowd.mp4")


@contextlib.contextmanager
def busy_cores() -> Iterator[None]:
    """A busy-loop process per core for the duration (the load under which the stages' order varies)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [frame_to_bgr(f) for f in c.decode(c.streams.video[0])]


def faces_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # 25 s measured (2-core machine shared with other work, --durations)
def test_the_video_tool_gives_the_same_output_every_run_under_load(tmp_path: Path, pipeline, crowd_clip) -> None:
    """Two runs of a dark 10-face crowd (faces 20-75 px, the small ones followed from frame to frame) through
    files.video.anonymize_video with the cores loaded: identical decoded frames and faces JSON, frame for frame
    (the same Anonymizer for both, as one `emoji-privacy anonymize` command uses for all its inputs: track ids
    start from 1 for each file); and the faces are those of the sequential loop the docs give."""
    anonymizer = pipeline.sharing_models()
    runs = []
    with busy_cores():
        for r in range(2):
            out, faces = tmp_path / f"run{r}.mp4", tmp_path / f"run{r}.jsonl"
            anonymize_video(crowd_clip, out, anonymizer, faces_json=faces)
            runs.append((decoded(out), faces_lines(faces)))
    (frames_a, json_a), (frames_b, json_b) = runs
    assert len(frames_a) == len(frames_b) == len(json_a) == len(json_b) == FRAMES
    assert sum(len(line["faces"]) for line in json_a) >= 5 * FRAMES, "a crowd of about 10 faces listed"
    differing = [i for i in range(FRAMES) if not np.array_equal(frames_a[i], frames_b[i])]
    assert differing == [], f"output frames differing between two runs: {differing}"
    other = [i for i in range(FRAMES) if json_a[i] != json_b[i]]
    assert other == [], f"faces JSON lines differing between two runs: {other}"

    # the same faces, one thread, no overlap: the rule the pipelined stages keep
    reference = pipeline.sharing_models()
    with av.open(str(crowd_clip)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            detected = reference.detect(frame_to_bgr(frame), follow_lag=PipelinedAnonymizer.FOLLOW_LAG)
            _, faces = reference.finish(detected, frame.time)
            want = faces_records(faces, reference.held)
            got = {k: json_a[i][k] for k in want}
            assert got == json.loads(json_line(want)), f"frame {i}: the video tool and the sequential loop differ"
