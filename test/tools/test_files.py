"""The command-line tool for files: real videos, images and folders through the real pipeline.

A video keeps its frames, frame times, size and audio, is H.264 and plays with OpenCV, and the leak meter finds
no face left in it (beside the same meter firing on the input); every error is one line, exit 2, and leaves no
partial file, Ctrl-C included.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from data_helpers import REPO, shared_path

from emoji_privacy.atomic import atomic_write, atomic_write_bytes
from emoji_privacy.config import PipelineConfig
from emoji_privacy.emoji import EmojiRenderer
from emoji_privacy.errors import SourceError
from emoji_privacy.evaluation.leaks import LeakMeter, box_iou
from emoji_privacy.files import OutputError
from emoji_privacy.files.cli import main
from emoji_privacy.files.video import JPEG_RANGE, anonymize_video, frame_to_bgr
from emoji_privacy.pipeline import Anonymizer

TONE_HZ = 440.0


def leftovers(folder: Path) -> list[str]:
    """Temporary files the tool writes beside an output (hidden, '.partial' in the name)."""
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, list[str]]:
    """main() in this process; its exit status and its stderr lines."""
    rc = main(["anonymize", *map(str, args)])
    return rc, capsys.readouterr().err.strip().splitlines()


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="bgr24"), float(f.time)) for f in c.decode(c.streams.video[0])]
    return [f for f, _ in frames], [t for _, t in frames]


def tone_clip(path: Path, audio_codec: str, seconds: float = 2.0, fps: int = 25) -> float:
    """A clip of real frames (the start of fer_test.mp4) with a sine tone; returns the audio's duration (s)."""
    src = shared_path("data", "videos", "fer_test.mp4")
    with av.open(str(src)) as inp:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(int(seconds * fps)), inp.decode(video=0),
                                                               strict=False)]
    rate = 44100
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = out.add_stream(audio_codec, rate=rate, layout="mono")
        fmt = a.codec_context.format.name
        n, chunk = int(seconds * rate), 1024
        t = np.arange(n) / rate
        wave = (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
        for img in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        for k in range(0, n, chunk):
            part = wave[k:k + chunk]
            samples = (part * 32767).astype(np.int16) if fmt.startswith("s16") else part
            frame = av.AudioFrame.from_ndarray(samples[None, :], format=fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, k
            out.mux(a.encode(frame))
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    return n / rate


def audio_of(path: Path) -> tuple[str, float, np.ndarray, int]:
    """(codec, duration in s, mono samples, sample rate) of the first audio track."""
    with av.open(str(path)) as c:
        assert c.streams.audio, f"{path} has no audio stream"
        s = c.streams.audio[0]
        chunks = [f.to_ndarray().astype(np.float32).reshape(f.to_ndarray().shape[0], -1).mean(0)
                  if f.format.is_planar else f.to_ndarray().astype(np.float32).reshape(-1)
                  for f in c.decode(s)]
        samples = np.concatenate(chunks)
        return s.codec_context.name, len(samples) / s.codec_context.sample_rate, samples, s.codec_context.sample_rate


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spec)])


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    return Anonymizer()


def styled(base: Anonymizer, style: str) -> Anonymizer:
    """The same loaded models with another cover style (what emoji.style in a config gives)."""
    config = PipelineConfig.from_dict({"emoji": {"style": style}})
    return Anonymizer(config, detector=base.detector, landmarker=base.landmarker, classifier=base.classifier)


# --- the wheel ------------------------------------------------------------------------------------------------

def test_pyav_wheel_has_the_h264_and_aac_encoders() -> None:
    assert "libx264" in av.codecs_available and av.codec.Codec("libx264", "w").type == "video"
    assert "aac" in av.codecs_available and av.codec.Codec("aac", "w").type == "audio"


def test_decoded_frames_match_ffmpegs_conversion_and_full_range_goes_to_ffmpeg() -> None:
    """The reader converts limited-range yuv420p with OpenCV; it must agree with FFmpeg's own conversion (up to
    chroma interpolation), and a full-range frame, which OpenCV's matrix would darken, must not take that path."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), np.uint8), (9, 9), 3)
    frame = av.VideoFrame.from_ndarray(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
    ours, ffmpeg = frame_to_bgr(frame).astype(int), frame.to_ndarray(format="bgr24").astype(int)
    assert ours.shape == ffmpeg.shape == img.shape
    assert np.abs(ours - ffmpeg).mean() < 2.0 and np.percentile(np.abs(ours - ffmpeg), 99) <= 6
    assert np.abs(ours - img.astype(int)).mean() < 2.0  # the writer's conversion back, as the tool pairs them
    frame.color_range = JPEG_RANGE
    assert np.array_equal(frame_to_bgr(frame), frame.to_ndarray(format="bgr24"))
    odd = av.VideoFrame.from_ndarray(img[:95, :127].copy(), format="bgr24").reformat(format="yuv420p")
    assert frame_to_bgr(odd).shape == (95, 127, 3)


# --- a shared video through the tool --------------------------------------------------------------------------

@pytest.mark.slow
def test_shared_video_keeps_frames_times_size_plays_and_leaks_no_face(tmp_path: Path, capsys) -> None:
    src = shared_path("data", "videos", "fer_test.mp4")
    dst, faces = tmp_path / "out.mp4", tmp_path / "faces.jsonl"
    rc, err = run_cli(capsys, src, "-o", dst, "--faces-json", faces, "--quiet")
    assert rc == 0, err
    assert dst.is_file() and faces.is_file() and not leftovers(tmp_path)
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        in_rate, in_size = s.guessed_rate, (s.codec_context.width, s.codec_context.height)
    with av.open(str(dst)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert s.guessed_rate == in_rate and (s.codec_context.width, s.codec_context.height) == in_size
        assert not c.streams.audio
    originals, t_in = decoded(src)
    covered, t_out = decoded(dst)
    assert len(originals) == len(covered) == 115
    assert np.allclose(t_in, t_out, atol=1e-6), "frame times changed"
    head = dst.read_bytes()[:4096]  # +faststart: the index (moov) before the data (mdat), for browsers
    assert b"moov" in head and (b"mdat" not in head or head.index(b"moov") < head.index(b"mdat"))
    # OpenCV plays it back: the same frame count, size and frame rate as the input
    cap_in, cap_out = cv2.VideoCapture(str(src)), cv2.VideoCapture(str(dst))
    played = 0
    while True:
        ok, frame = cap_out.read()
        if not ok:
            break
        assert frame.shape == (in_size[1], in_size[0], 3)
        played += 1
    assert played == 115
    assert math.isclose(cap_out.get(cv2.CAP_PROP_FPS), cap_in.get(cv2.CAP_PROP_FPS), rel_tol=0.02)
    # the faces JSON: a line per frame, with the tracker's ids
    import json

    lines = [json.loads(x) for x in faces.read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(115)) and {x["file"] for x in lines} == {"fer_test.mp4"}
    assert math.isclose(lines[-1]["time"], t_in[-1] - t_in[0], abs_tol=1e-3)
    found = [f for x in lines for f in x["faces"]]
    assert len(found) >= 100 and {"track_id", "box", "emotion", "confidence", "yaw", "pitch"} <= set(found[0])
    assert len({f["track_id"] for f in found}) <= 3, "the tracker should keep the few people's ids"
    # the leak meter: no face left in the output; the same meter on the input finds every face (it fires)
    meter, nothing = LeakMeter(), LeakMeter()
    leaked = fired = truth = 0
    for x, orig, anon in zip(lines, originals, covered, strict=True):
        boxes = [(f["track_id"], np.array(f["box"], np.float32)) for f in x["faces"] + x["held"]]
        r = meter.measure(orig, anon, boxes, dt=1 / 25)
        leaked, truth = leaked + r.count, truth + len(r.truth)
        fired += nothing.measure(orig, orig, [], dt=1 / 25).count
    assert truth >= 100, "the reference detector should see the faces of this clip"
    assert leaked == 0, f"{leaked} of {truth} face-frames leaked"
    assert fired == truth, "the leak meter must flag every face of the unanonymized input"


# --- audio ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "codec", "out_name", "want"), [
    ("tone.mp4", "aac", "tone_anonymized.mp4", "aac"),  # copied
    ("tone.mkv", "pcm_s16le", "tone_anonymized.mp4", "aac"),  # MP4 does not take PCM: re-encoded to AAC
    ("tone.mov", "aac", "tone_anonymized.mkv", "aac"),  # copied into Matroska
    ("tone.mp4", "aac", "tone_anonymized.avi", "aac"),  # AVI: a constant frame rate of its own
])
def test_audio_track_survives(tmp_path: Path, anonymizer: Anonymizer, name, codec, out_name, want) -> None:
    src = tmp_path / name
    seconds = tone_clip(src, codec)
    summary = anonymize_video(src, tmp_path / out_name, anonymizer)
    assert summary.audio and summary.frames == 50 and (summary.width, summary.height) == (596, 336)
    got, duration, samples, rate = audio_of(tmp_path / out_name)
    assert got == want
    assert abs(duration - seconds) < 0.1, f"audio lasts {duration:.3f} s, the input's {seconds:.3f} s"
    assert abs(dominant_hz(samples, rate) - TONE_HZ) < 5, "the tone should still be there"
    cap = cv2.VideoCapture(str(tmp_path / out_name))
    assert math.isclose(cap.get(cv2.CAP_PROP_FPS), 25, rel_tol=0.01)
    assert sum(1 for _ in iter(lambda: cap.read()[0], False)) == 50


@pytest.mark.parametrize(("preset", "crf", "subme"), [("ultrafast", 33, 0), ("veryfast", 18, 2)])
def test_the_video_encoder_takes_its_settings_from_the_config(tmp_path: Path, anonymizer: Anonymizer,
                                                              preset: str, crf: int, subme: int) -> None:
    """output.video_preset and output.video_crf reach x264: it writes the settings it ran with into the stream
    (subme, the sub-pixel motion search, is 0 in ultrafast and 2 in veryfast)."""
    src, dst = tmp_path / "tone.mp4", tmp_path / "out.mp4"
    tone_clip(src, "aac", seconds=0.4)
    config = PipelineConfig.from_dict({"output": {"video_preset": preset, "video_crf": crf}})
    chosen = Anonymizer(config, detector=anonymizer.detector, landmarker=anonymizer.landmarker,
                        classifier=anonymizer.classifier)
    assert anonymize_video(src, dst, chosen).frames == 10
    written = dst.read_bytes()
    assert f" crf={crf}.0 ".encode() in written and f" subme={subme} ".encode() in written


@pytest.mark.slow  # 3.5 s measured (idle 2-core machine, --durations)
def test_phone_rotation_is_applied_before_anonymizing(tmp_path: Path, anonymizer: Anonymizer) -> None:
    """A portrait phone clip stores its frames turned and says so in its display matrix: the faces must reach
    the detector upright, and the output is stored upright (OpenCV, applying the matrix itself, agrees)."""
    src = shared_path("data", "videos", "fer_test.mp4")
    with av.open(str(src)) as c:
        upright = [f.to_ndarray(format="bgr24") for _, f in zip(range(12), c.decode(video=0), strict=False)]
    turned = tmp_path / "phone.mp4"
    with av.open(str(turned), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 336, 596, "yuv420p"
        v.set_display_rotation(-90)  # shown turned 90 degrees clockwise, as a phone's 'rotate=90' tag
        for img in upright:
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(img, 1)), format="bgr24")))
        out.mux(v.encode(None))
    cap = cv2.VideoCapture(str(turned))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, shown = cap.read()
    assert ok and shown.shape == upright[0].shape and np.abs(shown.astype(int) - upright[0]).mean() < 5
    summary = anonymize_video(turned, tmp_path / "out.mp4", anonymizer)
    assert (summary.width, summary.height, summary.frames) == (596, 336, 12)
    covered, _ = decoded(tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0
    meter, nothing = LeakMeter(), LeakMeter()
    leaked = fired = 0
    for orig, anon in zip(upright, covered, strict=True):
        assert anon.shape == orig.shape
        # upright: close to the original (two lossy encodings apart), far from it turned upside down
        near, far = np.median(np.abs(anon.astype(int) - orig)), np.median(np.abs(anon.astype(int) - orig[::-1, ::-1]))
        assert near < 10 and near < far / 3, f"the output must be stored upright ({near} vs {far})"
        leaked += meter.measure(orig, anon, [], dt=1 / 25).count
        fired += nothing.measure(orig, orig, [], dt=1 / 25).count
    assert leaked == 0 and fired >= 12


# --- images and folders ---------------------------------------------------------------------------------------

def test_image_and_folder_have_no_face_left(tmp_path: Path, capsys, astronaut: np.ndarray) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), astronaut)
    cv2.imwrite(str(photos / "b.png"), cv2.flip(astronaut, 1))
    (photos / "notes.txt").write_text("not an image: left out of the folder")
    out = tmp_path / "out"
    rc, err = run_cli(capsys, photos / "a.jpg", photos, "-o", out, "--faces-json", tmp_path / "f.jsonl")
    assert rc == 0, err
    assert err[-2].startswith(f"wrote {out / 'photos_anonymized'}: 2 images")
    assert err[-1] == f"emoji-privacy: skipped {photos / 'notes.txt'}: not an image file (suffix '.txt')", "named"
    written = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert written == {"a_anonymized.jpg", "photos_anonymized", "photos_anonymized/a.jpg", "photos_anonymized/b.png",
                       "emoji_privacy_manifest.json", ".emoji_privacy_faces",
                       ".emoji_privacy_faces/a_anonymized.jpg.jsonl", ".emoji_privacy_faces/photos_anonymized.jsonl"}
    import json

    lines = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines] == ["a.jpg", "a.jpg", "b.png"]
    assert all(len(x["faces"]) == 1 for x in lines)
    # reset per image: the same photo twice is two scenes, so a new track (ids are not reused within an input);
    # each input numbers its tracks from 1, so its results do not depend on the inputs before it
    assert [x["faces"][0]["track_id"] for x in lines] == [1, 1, 2], "the tracker must be reset per image"
    meter = LeakMeter()
    pairs = [(astronaut, out / "a_anonymized.jpg"), (cv2.flip(astronaut, 1), out / "photos_anonymized/b.png")]
    for orig, path in pairs:
        anon = cv2.imread(str(path))
        assert anon.shape == orig.shape
        meter.reset()
        assert meter.measure(orig, anon, []).count == 0
        meter.reset()
        assert meter.measure(orig, orig, []).count == 1, "the meter must fire on the unanonymized photo"
    # beside the input by default
    rc, err = run_cli(capsys, photos / "b.png", "--quiet")
    assert rc == 0 and (photos / "b_anonymized.png").is_file() and not err


@pytest.mark.ros
def test_a_bag_input_goes_to_the_bag_anonymizer(tmp_path: Path, capsys) -> None:
    """`.bag` inputs are dispatched to emoji_privacy.files.bag (its own tests check the bag it writes)."""
    pytest.importorskip("rosbag", reason="rosbag (ROS 1) is not installed")
    pytest.importorskip("emoji_privacy.msg", reason="the catkin workspace is not sourced")
    bag = tmp_path / "clip.bag"
    r = subprocess.run([sys.executable, str(REPO / "nodes" / "video_to_bag"),
                        str(shared_path("data", "videos", "fer_test.mp4")), str(bag), "--max-frames", "8", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rc, err = run_cli(capsys, bag, "--faces-json", tmp_path / "faces.jsonl")
    assert rc == 0, err
    assert (tmp_path / "clip_anonymized.bag").is_file() and not leftovers(tmp_path)
    assert err[-1].startswith(f"wrote {tmp_path / 'clip_anonymized.bag'}: anonymized 8 frames")
    assert len((tmp_path / "faces.jsonl").read_text().splitlines()) == 8


# --- --replace --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["blur", "pixelate", "solid"])
def test_neutral_styles_replace_exactly_the_emoji_pixels(style: str) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (240, 320, 3), np.uint8)  # no replacement equals it by chance
    for center, radius, roll in [((160.4, 120.6), 50.3, 12.0), ((5.0, 230.0), 30.0, -40.0), ((160, 120), 400, 0)]:
        emoji, neutral = noise.copy(), noise.copy()
        EmojiRenderer().cover(emoji, center, radius, roll, 3)
        EmojiRenderer(style=style).cover(neutral, center, radius, roll, 3)
        e_changed, n_changed = (emoji != noise).any(2), (neutral != noise).any(2)
        yy, xx = np.mgrid[:240, :320]
        disk = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius ** 2
        assert n_changed[disk].all(), "every pixel of the face disk must be replaced"
        # the same warped alpha: the two differ only where it is faint (rounding on the anti-aliased rim)
        rim = cv2.dilate(e_changed.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert not (n_changed & ~rim).any(), "nothing outside the emoji's pixels may change"
        assert (e_changed ^ n_changed).sum() <= 0.02 * e_changed.sum()
        assert (neutral[disk] != emoji[disk]).any(1).mean() > 0.5, "it must not look like the emoji"


def test_replace_styles_hide_the_face_and_keep_the_emotion(anonymizer: Anonymizer, astronaut: np.ndarray,
                                                           tmp_path: Path, capsys) -> None:
    anonymizer.reset()
    emoji_out, emoji_faces = anonymizer.process(astronaut)
    meter = LeakMeter()
    for style in ("blur", "pixelate", "solid"):
        a = styled(anonymizer, style)
        out, faces = a.process(astronaut)
        assert [f.emotion for f in faces] == [f.emotion for f in emoji_faces], "the faces still carry the emotion"
        changed, emoji_changed = (out != astronaut).any(2), (emoji_out != astronaut).any(2)
        rim = cv2.dilate(emoji_changed.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert not (changed & ~rim).any() and changed.sum() > 0.95 * emoji_changed.sum()
        assert (out != emoji_out).any(2).sum() > 0.5 * emoji_changed.sum(), f"{style} looks like the emoji"
        meter.reset()
        r = meter.measure(astronaut, out, [(f.track_id, f.box) for f in faces])
        probe = meter.probe.detect(out).boxes
        assert not len(probe) or not (box_iou(r.truth, probe) >= meter.overlap).any(), f"{style}: face detected"
        if style != "pixelate":  # block means equal the smooth skin they replace: ~20 % 'unchanged' pixels
            assert r.count == 0, f"{style} leaked"
    # through the tool: --replace solid
    rc, err = run_cli(capsys, _write(tmp_path / "a.png", astronaut), "--replace", "solid", "--quiet")
    assert rc == 0, err
    out = cv2.imread(str(tmp_path / "a_anonymized.png"))
    assert (out == 128).all(2).sum() > 0.95 * (emoji_out != astronaut).any(2).sum()


def _write(path: Path, img: np.ndarray) -> Path:
    cv2.imwrite(str(path), img)
    return path


# --- errors -----------------------------------------------------------------------------------------------------

def test_errors_are_one_line_exit_2_and_leave_nothing(tmp_path: Path, capsys, astronaut: np.ndarray) -> None:
    video = shared_path("data", "videos", "fer_test.mp4")
    clip = tmp_path / "clip.mp4"
    shutil.copy(video, clip)
    photo = _write(tmp_path / "a.jpg", astronaut)
    junk = np.random.default_rng(0).bytes(4096)  # fixed: random bytes can look like an audio format to a prober
    (tmp_path / "junk.mp4").write_bytes(junk)
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0" + junk)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "junk.bag").write_bytes(junk)
    (tmp_path / "a_file").write_text("x")
    cases = [
        ([tmp_path / "missing.mp4"], "input .*missing.mp4 does not exist"),
        ([tmp_path / "notes.txt"], "unsupported suffix '.txt'"),
        ([clip, "-o", tmp_path / "out.gif"], "unsupported suffix '.gif' for a video"),
        ([clip, "-o", tmp_path / "out.webm"], "WebM cannot hold H.264"),
        ([clip, "-o", clip], "would overwrite the input"),
        ([clip, photo, "-o", tmp_path / "a_file"], "is a file"),
        ([clip, "-o", tmp_path / "no" / "such" / "out.mp4"], "no such folder"),
        ([clip, "-o", tmp_path / "a_file" / "out.mp4"], "no such folder"),
        ([clip, clip], "would both write"),
        ([clip, "--config", tmp_path / "none.yaml"], "cannot read config file"),
        ([tmp_path / "junk.mp4"], "cannot decode .*junk.mp4"),
        ([tmp_path / "junk.jpg"], "cannot decode .*junk.jpg"),
        ([clip, "--replace", "mosaic"], "invalid choice: 'mosaic'"),
        ([tmp_path / "junk.bag"], "junk.bag"),  # dispatched to emoji_privacy.files.bag, which refuses it
    ]
    import re

    before = sorted(p.name for p in tmp_path.iterdir())
    for args, pattern in cases:
        rc, err = run_cli(capsys, *args)
        assert rc == 2, (args, err)
        assert len(err) == 1 and re.search(pattern, err[0]) and err[0].startswith("emoji-privacy"), (args, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, f"{args} left files behind"


def test_ctrl_c_and_errors_mid_video_remove_the_partial_files(tmp_path: Path, anonymizer: Anonymizer) -> None:
    src = shared_path("data", "videos", "fer_test.mp4")
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 10:
            assert leftovers(tmp_path), "the partial files should exist while writing"
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        anonymize_video(src, tmp_path / "out.mp4", anonymizer, faces_json=tmp_path / "f.jsonl", progress=interrupt)
    assert seen == [(i, 115) for i in range(1, 11)]
    assert list(tmp_path.iterdir()) == [], "the partial video and faces JSON must be gone"

    def fail(done: int, total: int) -> None:
        if done == 5:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        anonymize_video(src, tmp_path / "out.mkv", anonymizer, progress=fail)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="it is the input"):
        anonymize_video(src, src, anonymizer)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match="cannot decode"):
        anonymize_video(tmp_path / "empty.mp4", tmp_path / "o.mp4", anonymizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_atomic_writes_leave_the_old_file_or_the_whole_new_one(tmp_path: Path) -> None:
    """emoji_privacy.atomic, which every writer of the project uses (checkpoints, caches, outputs)."""
    dst = tmp_path / "model.pt"
    assert atomic_write_bytes(dst, b"old") == dst and dst.read_bytes() == b"old"

    def fail(tmp: Path) -> None:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.") and tmp.name.endswith(".partial.pt")
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(dst, fail)
    assert dst.read_bytes() == b"old" and not leftovers(tmp_path)
    with pytest.raises(OutputError, match="check that .*missing exists"):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"")


@pytest.mark.slow
def test_sigint_stops_the_tool_and_removes_the_partial_file(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) to the running command: exit 130, one line, no file left."""
    src = shared_path("data", "videos", "fer_woman2.mp4")
    # as a terminal's foreground command gets it: a runner started in the background (nohup, `&`) passes
    # SIGINT on ignored, and Python then leaves it ignored
    proc = subprocess.Popen([sys.executable, "-m", "emoji_privacy", "anonymize", str(src), "-o",
                             str(tmp_path / "out.mp4"), "--quiet"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftovers(tmp_path), "the tool never started writing"
        time.sleep(1.0)  # the scenario: Ctrl-C a second into the writing, mid-video
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "emoji-privacy: interrupted; no partial output was left"
    assert list(tmp_path.iterdir()) == []


# --- entry points ---------------------------------------------------------------------------------------------

def test_python_m_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "emoji_privacy", "anonymize", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--replace" in r.stdout and "--faces-json" in r.stdout
    r = subprocess.run([sys.executable, "-m", "emoji_privacy", "anonymize", "/nonexistent.mp4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "emoji-privacy: error: input /nonexistent.mp4 does not exist"


def test_venv_launcher_and_rosrun(tmp_path: Path) -> None:
    launcher = REPO / ".venv" / "bin" / "emoji-privacy"
    if not launcher.is_file():
        pytest.skip(f"{launcher} is absent: run `make setup`")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS", "PYTHONPATH", "CMAKE"))}
    r = subprocess.run([str(launcher), "anonymize", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "--replace" in r.stdout, r.stderr
    # the launcher sources the workspace itself: the generated messages import without a sourced shell
    r = subprocess.run(["bash", "-c", f"source <(sed -n 4p {launcher}) && python3 -c 'import emoji_privacy.msg'"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    if shutil.which("rosrun") is None or not os.environ.get("ROS_PACKAGE_PATH"):
        pytest.skip("rosrun or the sourced catkin workspace is absent")
    r = subprocess.run(["rosrun", "emoji_privacy", "anonymize", "/nonexistent.mp4", "__name:=x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "emoji-privacy: error: input /nonexistent.mp4 does not exist"



# --- a batch: each input on its own -----------------------------------------------------------------------------

def _truncated(path: Path, img: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".jpg", img)
    path.write_bytes(buf.tobytes()[:2000])
    return path


def test_one_bad_file_does_not_sink_the_batch(tmp_path: Path, capsys, astronaut: np.ndarray) -> None:
    """A truncated JPEG among good photos, in a folder and given on its own: the others are written whole, the
    bad one is listed with its reason and has no output, the exit status is 1; a text file is named as skipped."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _write(photos / "a.jpg", astronaut)
    _write(photos / "b.png", cv2.flip(astronaut, 1))
    _truncated(photos / "broken.jpg", astronaut)
    (photos / "notes.txt").write_text("x")
    rc, err = run_cli(capsys, photos)
    assert rc == 1, err
    assert sorted(p.name for p in (tmp_path / "photos_anonymized").iterdir()) == ["a.jpg", "b.png"]
    assert f"emoji-privacy: skipped {photos / 'notes.txt'}: not an image file (suffix '.txt')" in err
    assert err[-2].startswith("emoji-privacy: 1 file could not be anonymized") and "broken.jpg" in err[-1], err

    good, bad = _write(tmp_path / "good.jpg", astronaut), _truncated(tmp_path / "corrupt.jpg", astronaut)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, good, bad, "-o", out)
    assert rc == 1 and f"  {bad}: cannot decode {bad}" in err[-1], err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["emoji_privacy_manifest.json",
                                                                                   "good_anonymized.jpg"]
    # --fail-fast: today's stop at the first error, one line, exit 2
    rc, err = run_cli(capsys, bad, good, "-o", tmp_path / "fast", "--fail-fast")
    assert rc == 2 and len(err) == 1 and err[0].startswith("emoji-privacy: error: cannot decode"), err
    assert not (tmp_path / "fast" / "good_anonymized.jpg").exists(), "stopped before the good one"
    assert not leftovers(tmp_path)


def test_the_same_command_again_does_only_what_is_missing(tmp_path: Path, capsys, astronaut: np.ndarray) -> None:
    a, b = _write(tmp_path / "a.jpg", astronaut), _write(tmp_path / "b.png", cv2.flip(astronaut, 1))
    out = tmp_path / "out"
    assert run_cli(capsys, a, b, "-o", out, "--faces-json", tmp_path / "f.jsonl")[0] == 0
    faces = (tmp_path / "f.jsonl").read_text()
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc, err = run_cli(capsys, a, b, "-o", out, "--faces-json", tmp_path / "f.jsonl")
    assert rc == 0 and "2 of 2 inputs are done already" in err[0], err
    assert (out / "a_anonymized.jpg").stat().st_mtime_ns == stamp["a_anonymized.jpg"], "not written again"
    assert (tmp_path / "f.jsonl").read_text() == faces, "the faces of the inputs done before are kept"
    (out / "b_anonymized.png").unlink()
    rc, err = run_cli(capsys, a, b, "-o", out)
    assert rc == 0 and "1 of 2 inputs are done already" in err[0] and "b_anonymized.png" in err[1], err
    assert (out / "a_anonymized.jpg").stat().st_mtime_ns == stamp["a_anonymized.jpg"]
    _write(a, cv2.flip(astronaut, 0))  # a changed input, and a changed config: done again
    rc, err = run_cli(capsys, a, b, "-o", out)
    assert rc == 0 and "1 of 2 inputs are done already" in err[0], err
    rc, err = run_cli(capsys, a, b, "-o", out, "--replace", "blur")
    assert rc == 0 and "done already" not in " ".join(err), err
    rc, err = run_cli(capsys, a, b, "-o", out, "--replace", "blur", "--force")
    assert rc == 0 and "done already" not in " ".join(err), err


def test_the_plain_tool_never_imports_ray(tmp_path: Path, astronaut: np.ndarray) -> None:
    """Ray is for --ray alone (files/fleet.py): a batch without it runs with no Ray module loaded."""
    photo = _write(tmp_path / "a.jpg", astronaut)
    code = ("import sys; from emoji_privacy.files.cli import main; "
            f"rc = main(['anonymize', {str(photo)!r}, {str(tmp_path / 'b.jpg')!r}, '-o', {str(tmp_path / 'out')!r}, "
            "'--quiet']); print(rc, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    _write(tmp_path / "b.jpg", astronaut)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split("\n")[0] == "0 []", r.stdout + r.stderr
