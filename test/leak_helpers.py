"""The leak check of the bag tests (ROS 1 and ROS 2): the leak meter over every decodable frame of a bag."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emoji_privacy.config import PipelineConfig
from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend


def bag_leaks(written: dict[str, list[np.ndarray | None]], out: dict[str, list[Any]],
              to_bgr: Callable[[str, Any], np.ndarray]) -> tuple[int, int, int]:
    """(faces, leaked, leaked in the input): the faces the leak meter's reference detector (CenterFace; the
    pipeline runs YuNet) finds in the input frames ``written`` (None: an undecodable frame, skipped), how many
    of them the output frames ``out`` (per topic, in the same order, made BGR by ``to_bgr(topic, item)``) leave
    visible, and how many the same check finds visible in the input itself (the check's companion)."""
    meter = LeakMeter(independent_backend(PipelineConfig().detector.backend))
    faces = leaked = leaked_in_input = 0
    for topic, frames in written.items():
        meter.reset()
        for original, item in zip(frames, out[topic], strict=True):
            if original is None:
                continue
            anonymized = to_bgr(topic, item)
            truth = meter.reference.detect(original).boxes
            faces += len(truth)
            leaked += meter.measure(original, anonymized, [], truth=truth).count
            leaked_in_input += meter.measure(original, original, [], truth=truth).count
    return faces, leaked, leaked_in_input
