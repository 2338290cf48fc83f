"""The composed pipeline on real photos and video frames."""

import numpy as np
import pytest
from data_helpers import video_frames

from emoji_privacy import EMOTIONS
from emoji_privacy.landmarks.geometry import face_region


def _inside_circle(shape, center, radius) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xs - center[0]) ** 2 + (ys - center[1]) ** 2 <= radius**2


def _covered(original: np.ndarray, out: np.ndarray, face) -> None:
    """Every pixel of the face region (hull grown to forehead and chin) was replaced."""
    import cv2

    region = np.zeros(original.shape[:2], np.uint8)
    cv2.fillPoly(region, [np.round(face_region(face.landmarks)).astype(np.int32)], 1)
    inside = region.astype(bool) & _inside_circle(original.shape, face.center, face.radius)
    assert inside.sum() == region.sum(), "the emoji circle must contain the whole face region"
    changed = np.any(out != original, axis=2)
    # An emoji pixel can match the photo by chance; a face region left visible cannot.
    assert changed[region.astype(bool)].mean() > 0.97


def test_astronaut(pipeline, astronaut) -> None:
    pipeline.reset()
    out, faces = pipeline.process(astronaut, still=True)
    assert len(faces) == 1 and out.shape == astronaut.shape
    f = faces[0]
    x0, y0, x1, y1 = f.box
    lm = f.landmarks
    assert lm.shape == (68, 2)
    pad = 0.15 * (x1 - x0)
    assert (lm[:, 0] > x0 - pad).all() and (lm[:, 0] < x1 + pad).all()
    assert (lm[:, 1] > y0 - pad).all() and (lm[:, 1] < y1 + pad).all()
    assert abs(f.probabilities.sum() - 1) < 1e-5 and f.emotion in EMOTIONS
    assert f.emotion == "happy", "the astronaut smiles broadly"
    assert abs(f.roll_deg) < 10
    _covered(astronaut, out, f)


def test_video_frames_are_covered(pipeline) -> None:
    frames = video_frames("fer_woman2.mp4", step=30, limit=10)
    pipeline.reset()
    found = 0
    for frame in frames:
        out, faces = pipeline.process(frame)
        found += len(faces) > 0
        for f in faces:
            assert abs(f.probabilities.sum() - 1) < 1e-5
            _covered(frame, out, f)
    assert found >= len(frames) - 1


def test_held_face_stays_covered(pipeline, astronaut) -> None:
    """A face the detector loses for a frame is still covered where it was predicted."""
    pipeline.reset()
    _, faces = pipeline.process(astronaut)
    face_box = faces[0].box.astype(int)
    real_detect = pipeline.detector.detect
    try:
        pipeline.detector.detect = lambda img, *_, **__: type(real_detect(img[:1, :1])).empty()
        out, faces = pipeline.process(astronaut)
    finally:
        pipeline.detector.detect = real_detect
    assert faces == []
    x0, y0, x1, y1 = face_box
    assert np.any(out[y0:y1, x0:x1] != astronaut[y0:y1, x0:x1], axis=2).mean() > 0.97


def test_rejects_wrong_frame_type(pipeline) -> None:
    with pytest.raises(ValueError, match="uint8 BGR"):
        pipeline.process(np.zeros((10, 10), np.uint8))


def test_emotion_is_refreshed_every_refresh_frames(astronaut) -> None:
    """A new face gets the landmark model and is classified at once, then every emotion/refresh_frames frames
    (the stream's first track on frames where frame % 3 == 0: tracks take turns); in between it keeps the
    probabilities of its last classification and its landmarks move with its keypoints."""
    from emoji_privacy.config import PipelineConfig
    from emoji_privacy.pipeline import Anonymizer

    cfg = PipelineConfig()
    cfg.emotion.refresh_frames = 3
    anon = Anonymizer(cfg)
    real_predict, calls = anon.classifier.predict, []
    anon.classifier.predict = lambda crops: calls.append(len(crops)) or real_predict(crops)
    real_detect, mesh_calls = anon.landmarker.detect, []
    anon.landmarker.detect = lambda img, boxes, kps=None: mesh_calls.append(len(boxes)) or real_detect(img, boxes, kps)
    results = [anon.process(astronaut, i / 30)[1][0] for i in range(7)]
    seen = [f.probabilities for f in results]
    assert calls == [1, 1, 1], "frames 0 (new), 3 and 6"
    assert mesh_calls == [1, 1, 1], "the landmark model on the same frames"
    np.testing.assert_array_equal(seen[1], seen[0])
    np.testing.assert_array_equal(seen[2], seen[0])
    np.testing.assert_array_equal(seen[5], seen[4])
    # a still image: the carried landmarks stay where the model put them (within the detector's jitter)
    assert np.abs(results[1].landmarks - results[0].landmarks).max() < 3.0
    cfg.emotion.refresh_frames = 1
    every = Anonymizer(cfg, anon.detector, anon.landmarker, anon.classifier, anon.renderer)
    calls.clear()
    for i in range(3):
        every.process(astronaut, i / 30)
    assert calls == [1, 1, 1]


def test_warm_up_runs_every_stage_and_leaves_no_trace(pipeline) -> None:
    """After warm_up a stream starts as on a fresh Anonymizer (same covers, same track ids from 1, no stage
    times), and the warm-up itself reached the several-face tracking (three faces on its second frame)."""
    from emoji_privacy.pipeline import Anonymizer, StageTimes
    from emoji_privacy.sources import DemoScene

    scene = DemoScene(640, 480)
    frames = [scene.frame(t, 150) for t in (40, 41, 42)]

    def run(a: Anonymizer) -> list:
        return [a.process(f, i / 30) for i, f in enumerate(frames)]

    expected = run(pipeline.sharing_models())
    warmed = pipeline.sharing_models()
    assert warmed.warm_up() == 3
    assert warmed.tracker.tracks == [] and warmed.held == [] and warmed.times == StageTimes()
    got = run(warmed)
    assert [f.track_id for f in expected[0][1]] == [1, 2, 3]
    for (out_e, faces_e), (out_g, faces_g) in zip(expected, got, strict=True):
        assert np.array_equal(out_e, out_g)
        assert [(f.track_id, f.emotion) for f in faces_e] == [(f.track_id, f.emotion) for f in faces_g]
        assert all(np.allclose(a.box, b.box) for a, b in zip(faces_e, faces_g, strict=True))
