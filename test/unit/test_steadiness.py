"""The steadiness figures of bench_emotion_timeline (evaluation.steadiness) on hand-made records."""

from __future__ import annotations

import numpy as np

from emoji_privacy import UNKNOWN_INDEX
from emoji_privacy.evaluation.records import FaceObservation, FrameRecord
from emoji_privacy.evaluation.steadiness import total, track_steadiness


def record(i: int, probs: np.ndarray, shown: int, fps: float = 10.0) -> FrameRecord:
    return FrameRecord(i, i / fps, [FaceObservation(1, np.zeros(4), 0.9, probs, shown, 0.5)])


def test_changes_count_known_emotions_and_agreement_uses_the_trailing_window() -> None:
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    # 10 fps: 10 happy frames, then 10 sad ones; shown: unknown once, happy, then sad from frame 15 on
    probs = [happy] * 10 + [sad] * 10
    shown = [UNKNOWN_INDEX] + [3] * 14 + [4] * 5
    st = track_steadiness([record(i, p, s) for i, (p, s) in enumerate(zip(probs, shown, strict=True))])[1]
    assert st.changes == 1 and st.unknown == 1 and st.frames == 19
    assert np.isclose(st.minutes, 1.9 / 60) and np.isclose(st.changes_per_minute, 60 / 1.9)
    # trailing 1 s majority: happy through frame 14 (5 happy vs 5 sad ties to the lower index: happy), sad from 15
    assert st.agree == 19 and st.majority_changes == 1
    centred = track_steadiness([record(i, p, s) for i, (p, s) in enumerate(zip(probs, shown, strict=True))],
                               centred=True)[1]
    assert centred.agree == 14  # the centred majority turns sad at frame 10: frames 10-14 disagree
    both = total([st, st])
    assert both.changes == 2 and np.isclose(both.changes_per_minute, st.changes_per_minute)
