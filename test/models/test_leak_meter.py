"""The leak meter (emoji_privacy.evaluation.leaks): leak counting on synthetic frame sequences (runs per
person, id switches, hidden faces), and the meter firing when a face is left visible.

A test that asserts zero leaks is passed by a meter that never fires too. The firing tests run
the real detectors on real frames where faces are known to be visible: nothing covered, covers
shrunk below the face, and a bag evaluated with covering switched off; each beside the unmodified
pipeline on the same frames, so the pair shows the check tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from data_helpers import shared_path, video_frames

from emoji_privacy.emoji import EmojiRenderer
from emoji_privacy.evaluation.leaks import (
    HIDDEN_SHARE,
    PARTIAL_SHARE,
    FrameLeaks,
    LeakMeter,
    independent_backend,
    summarize_leaks,
    visible_share,
)
from emoji_privacy.pipeline import Anonymizer, FaceResult

SHRUNK = 0.3
"""Cover radius factor at which the meter must flag every face: about 60% of the face ellipse stays visible."""
BLIND_SPOT = 0.6
"""Cover radius factor where up to 17% of the face ellipse stays visible and the meter flags only some faces."""


# --- leak counting on synthetic frame sequences ------------------------------------------------------

BOX = np.array([[100, 60, 200, 180]], np.float32)


def frame(leaked: list[bool], ids: list[int], covered: list, visible: list[float] | None = None) -> FrameLeaks:
    n = len(ids)
    boxes = np.repeat(BOX, n, axis=0)
    return FrameLeaks(boxes, ids, leaked, covered, np.zeros((0, 4), np.float32),
                      visible if visible is not None else [0.5] * sum(leaked))


def test_longest_run_per_person_and_id_switches() -> None:
    seq = [
        frame([False, True], [1, 2], [7, None]),
        frame([True, True], [1, 2], [7, 9]),
        frame([True, False], [1, 2], [8, 9]),  # person 1 now covered by track 8: one switch
        frame([False, True], [1, 2], [8, 9]),
        frame([True, True], [1, 2], [8, 9], visible=[0.0, 0.3]),
        frame([True], [1], [8], visible=[0.01]),
        frame([True], [1], [8]),
    ]
    s = summarize_leaks(seq)
    assert s.face_frames == 12 and s.leaked == 9 and s.frames_with_leak == 7
    assert s.longest_run == {1: 3, 2: 2}, "person 1: frames 4-6; person 2: frames 0-1"
    assert s.frames_per_person == {1: 7, 2: 5}
    assert s.id_switches == 1 and s.uncovered == 1
    assert s.leaked_hidden == 2 and s.max_run == 3
    assert abs(s.rate - 9 / 12) < 1e-9


def test_a_gap_breaks_a_run() -> None:
    s = summarize_leaks([frame([True], [1], [3]), frame([], [], []), frame([True], [1], [3])])
    assert s.longest_run == {1: 1}


def test_visible_share(astronaut) -> None:
    box = np.array([175, 50, 275, 190], np.float32)
    assert visible_share(astronaut, astronaut, box) == 1.0
    covered = astronaut.copy()
    EmojiRenderer().cover(covered, (225, 120), 90, 0.0, 3)
    assert visible_share(astronaut, covered, box) < 0.02
    half = astronaut.copy()
    half[:, 225:] = 0
    assert 0.3 < visible_share(astronaut, half, box) < 0.7


def test_the_independent_detector_is_the_other_backend() -> None:
    assert independent_backend("yunet") == "centerface"
    assert independent_backend("centerface") == "yunet"


# --- the meter fires on real frames with faces left visible -----------------------------------------


@dataclass
class Checked:
    """One frame: what the pipeline found, and the meter's verdict on each way of covering it."""

    original: np.ndarray
    faces: list[FaceResult]
    truth: np.ndarray  # reference detections of the original frame
    nothing: FrameLeaks  # of (original, original)
    anonymized: FrameLeaks  # of the unmodified Anonymizer output
    shrunk: dict[float, FrameLeaks]  # radius factor -> the redrawn frame's
    shrunk_visible: dict[float, list[float]]  # radius factor -> visible share of every reference face


def redraw(anonymizer: Anonymizer, original: np.ndarray, faces: list[FaceResult], factor: float) -> np.ndarray:
    """The anonymized frame drawn again from the original with each face's own emoji at ``factor``
    times its radius (same centre, roll and emotion): the pipeline's cover, only too small."""
    out = original.copy()
    for f in faces:
        anonymizer.renderer.cover(out, f.center, factor * f.radius, f.roll_deg, f.emotion_index)
    return out


@pytest.fixture(scope="module")
def checked(astronaut: np.ndarray) -> list[Checked]:
    """Evenly spaced frames of both shared clips and the astronaut, each checked every way once
    (the reference boxes are found once per frame and reused, as the benchmarks do)."""
    frames = video_frames("fer_test.mp4", step=20, limit=6) + video_frames("fer_woman2.mp4", step=60, limit=7)
    frames.append(astronaut)
    anonymizer = Anonymizer()
    meter = LeakMeter(independent_backend(anonymizer.config.detector.backend))
    out = []
    for frame in frames:
        anonymizer.reset()  # each frame on its own: no held covers from the previous one
        anonymized, faces = anonymizer.process(frame)
        assert not anonymizer.held
        covered = [(f.track_id, f.box) for f in faces]
        truth = meter.reference.detect(frame).boxes
        shrunk, shares = {}, {}
        for factor in (SHRUNK, BLIND_SPOT):
            redrawn = redraw(anonymizer, frame, faces, factor)
            shrunk[factor] = meter.measure(frame, redrawn, covered, truth=truth)
            shares[factor] = [visible_share(frame, redrawn, b) for b in truth]
        out.append(Checked(frame, faces, truth, meter.measure(frame, frame, [], truth=truth),
                           meter.measure(frame, anonymized, covered, truth=truth), shrunk, shares))
    return out


def test_nothing_covered_leaks_every_face(checked: list[Checked]) -> None:
    """The original as its own 'anonymized' frame: every reference face leaked, all of it visible."""
    for c in checked:
        assert len(c.truth) >= 1, "the reference detector finds the face of every chosen frame"
        assert c.nothing.count == len(c.truth) and c.nothing.leaked == [True] * len(c.truth)
        assert c.nothing.visible == [1.0] * len(c.truth) and c.nothing.hidden == 0


def test_a_cover_too_small_leaks_and_the_real_cover_does_not(checked: list[Checked]) -> None:
    """The pipeline's own emoji at 0.3x their radius leave most of each face visible: the meter
    reports (nearly) every face, each with a visible share far above HIDDEN_SHARE; the unmodified
    output of the same frames (same reference boxes) reports none."""
    faces = sum(len(c.truth) for c in checked)
    leaked = sum(c.shrunk[SHRUNK].count for c in checked)
    visible = [v for c in checked for v in c.shrunk[SHRUNK].visible]
    assert all(len(c.faces) == len(c.truth) for c in checked), "the pipeline found the same faces"
    assert leaked >= 0.9 * faces, f"{leaked} of {faces} faces with a {SHRUNK}x cover reported"
    assert min(visible) > 20 * HIDDEN_SHARE and np.mean(visible) > 0.5, visible
    assert sum(c.anonymized.count for c in checked) == 0, "the unmodified covers leak nothing"


def test_a_cover_at_six_tenths_is_flagged(checked: list[Checked]) -> None:
    """A 0.6x cover hides the middle of the face but leaves some of it out: the probe detector often no
    longer recognises the face, so the meter must flag it by what is left visible."""
    faces = sum(len(c.truth) for c in checked)
    shares = [v for c in checked for v in c.shrunk_visible[BLIND_SPOT]]
    flagged = [leak for c in checked for leak in c.shrunk[BLIND_SPOT].leaked]
    partly = [leak for leak, v in zip(flagged, shares, strict=True) if v >= PARTIAL_SHARE]
    assert all(partly), "every face left partly visible is reported"
    assert sum(flagged) >= 0.5 * faces, f"{sum(flagged)} of {faces} faces with a {BLIND_SPOT}x cover reported: {shares}"


# --- a bag evaluated with covering off ------------------------------------------------------------


class NoCover(EmojiRenderer):
    """A renderer that draws nothing: the pipeline detects, tracks and classifies as usual, and
    every face goes out as it came in. Only the drawing is switched off."""

    def cover(self, frame: np.ndarray, center: tuple[float, float], radius: float, roll_deg: float,
              emotion_index: int) -> None:
        pass


@pytest.mark.slow  # 5.1 s measured (idle 2-core machine, --durations)
def test_a_bag_with_covering_off_leaks_every_face_frame(tmp_path: Path) -> None:
    """evaluate_bag with an Anonymizer that draws nothing reports every reference face-frame as
    leaked (the frames go out unchanged, and the probe's lower threshold finds a superset of the
    reference faces); the default pipeline on the same bag reports none."""
    pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
    from emoji_privacy.evaluation import bag as evaluate_bag
    from emoji_privacy.evaluation import video_to_bag

    bag = tmp_path / "fer_test.bag"
    assert video_to_bag.convert(str(shared_path("data", "videos", "fer_test.mp4")), bag, max_frames=30,
                                progress=False) == 30
    truth: dict[int, np.ndarray] = {}  # reference boxes depend only on the originals: found once
    off, _ = evaluate_bag.evaluate(bag, None, evaluate_bag.Options(
        anonymizer=Anonymizer(renderer=NoCover()), video=False, progress=False), truth)
    on, _ = evaluate_bag.evaluate(bag, None, evaluate_bag.Options(video=False, progress=False), truth)
    s_off, s_on = off.leak_summary(), on.leak_summary()
    assert off.frames == on.frames == 30 and off.faces_per_frame() >= 0.9, "faces found, only not covered"
    assert s_off.face_frames == s_on.face_frames >= 28
    assert s_off.leaked == s_off.face_frames and s_off.leaked_hidden == 0
    assert s_off.max_run >= 28 and s_off.uncovered == 0, "one person leaked all along, though tracked"
    assert s_on.leaked == 0 and s_on.max_run == 0
