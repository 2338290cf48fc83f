"""The two-stage stream (detection overlapping the rest) against the one-frame-at-a-time pipeline."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from data_helpers import video_frames

from emoji_privacy.pipeline import Anonymizer, FaceResult
from emoji_privacy.streaming import PipelinedAnonymizer, StreamFrame


def covers(faces: list[FaceResult]) -> list[tuple[int, float, float, float, int]]:
    return [(f.track_id, f.center[0], f.center[1], f.radius, f.emotion_index) for f in faces]


@pytest.mark.parametrize("video", ["fer_test.mp4", "fer_woman2.mp4"])
def test_pipelined_covers_equal_sequential(pipeline: Anonymizer, video: str) -> None:
    frames = video_frames(video, step=2, limit=40)
    pipeline.reset()
    sequential = []
    for i, f in enumerate(frames):
        img, faces = pipeline.process(f, i / 30)
        sequential.append((img, covers(faces)))
    pipeline.reset()
    delivered: list[tuple[np.ndarray, list]] = []
    stream = PipelinedAnonymizer(pipeline, lambda f: f, lambda item, img, faces: delivered.append((img, covers(faces))),
                                 lambda item, e: delivered.append((None, repr(e))))
    try:
        for i, f in enumerate(frames):
            stream.submit(f, i / 30, block=True)
        assert stream.drain()
        counters = stream.counters()
    finally:
        stream.close()
    assert counters.delivered == len(frames) and counters.replaced == 0 and counters.failed == 0
    assert sum(len(c) for _, c in sequential) >= len(frames) // 2, "the clip shows faces"
    first = [min(c[0] for _, cov in run for c in cov) for run in (sequential, delivered)]  # ids are never reused
    for (seq_img, seq_cov), (img, cov) in zip(sequential, delivered, strict=True):
        assert len(cov) == len(seq_cov)
        for a, b in zip(seq_cov, cov, strict=True):
            assert a[0] - first[0] == b[0] - first[1] and a[4] == b[4], "same track and shown emotion"
            np.testing.assert_allclose(a[1:4], b[1:4], atol=0.5)
        assert np.mean(np.abs(seq_img.astype(np.int16) - img)) < 0.5


def test_newest_frame_wins_and_drops_are_counted(astronaut: np.ndarray) -> None:
    """A slow consumer: frames arriving meanwhile replace each other in the mailbox, each one counted;
    what is delivered comes out in submission order."""
    anonymizer = Anonymizer()
    gate = threading.Event()
    delivered: list[int] = []
    replaced: list[int] = []

    def deliver(item: StreamFrame, img: np.ndarray, faces: list) -> None:
        gate.wait(10)
        delivered.append(item.payload[0])
        assert len(faces) == 1 and not np.array_equal(img, astronaut), "delivered frames are covered"

    stream = PipelinedAnonymizer(anonymizer, lambda p: p[1], deliver, lambda item, e: pytest.fail(repr(e)),
                                 lambda item: replaced.append(item.payload[0]))
    try:
        for i in range(12):
            stream.submit((i, astronaut), float(i))
            time.sleep(0.01)  # the scenario: frames arriving faster than the held stage takes them
        gate.set()
        assert stream.drain()
        c = stream.counters()
    finally:
        stream.close()
    assert c.submitted == 12 and c.delivered + c.replaced == 12 and c.replaced == len(replaced) >= 5
    assert delivered == sorted(delivered) and delivered[-1] == 11, "in order, and the newest frame is never lost"
    assert not set(delivered) & set(replaced)


def test_a_failing_frame_goes_to_fail_in_order(astronaut: np.ndarray) -> None:
    events: list[tuple[str, int]] = []

    def decode(p: tuple[int, np.ndarray | None]) -> np.ndarray:
        if p[1] is None:
            raise ValueError("undecodable")
        return p[1]

    stream = PipelinedAnonymizer(Anonymizer(), decode, lambda item, img, faces: events.append(("ok", item.payload[0])),
                                 lambda item, e: events.append(("failed", item.payload[0])))
    try:
        for i, frame in enumerate([astronaut, None, astronaut, np.zeros((4, 4), np.uint8), astronaut]):
            stream.submit((i, frame), float(i), block=True)
        assert stream.drain()
    finally:
        stream.close()
    assert events == [("ok", 0), ("failed", 1), ("ok", 2), ("failed", 3), ("ok", 4)]
