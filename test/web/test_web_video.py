"""Video clips in the website (routes_video, video_jobs) through FastAPI's test client, on real clips made
here with PyAV (H.264 with an AAC sine tone) and the real pipeline: upload, queue, progress, the anonymized
MP4 (frame count, size, fps, audio, H.264, no face left by an independent detector), Range requests, every
limit's refusal, the full queue, and the deletion of the private job folders."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import shared_path
from video_helpers import AUDIO_RATE, TONE_HZ, moving, write_clip

pytest.importorskip("fastapi", reason="the web demo's packages are not installed (make setup)")
av = pytest.importorskip("av", reason="PyAV is not installed (make setup)")
from fastapi.testclient import TestClient  # noqa: E402

from emoji_privacy.config import PipelineConfig  # noqa: E402
from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend  # noqa: E402
from emoji_privacy.web import WebSettings  # noqa: E402
from emoji_privacy.web.app import create_app  # noqa: E402
from emoji_privacy.web.video_jobs import VideoJobs  # noqa: E402

WAIT_S = 180  # the machine's 2 cores are shared with training jobs
METADATA = {"location": "+48.8577+002.2950/", "artist": "Jane Doe", "title": "at home"}


def read_clip(path: Path) -> tuple[list[np.ndarray], dict]:
    """Decoded frames (BGR) and what the container says."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"codec": v.codec_context.name, "width": v.codec_context.width, "height": v.codec_context.height,
                "fps": v.average_rate, "audio": [a.codec_context.name for a in c.streams.audio],
                "format": c.format.name, "metadata": dict(c.metadata)}
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    return frames, info


def audio_peak_hz(path: Path) -> float:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        rate = a.codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples[: rate]))
    return float(np.fft.rfftfreq(min(len(samples), rate), 1 / rate)[int(np.argmax(spectrum))])


def upload(client: TestClient, path: Path, name: str | None = None):
    return client.post(f"/api/video?name={name or path.name}", content=path.read_bytes(),
                       headers={"Content-Type": "video/mp4"})


def wait_done(client: TestClient, job_id: str, states: tuple[str, ...] = ("done", "failed")) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        s = client.get(f"/api/video/{job_id}")
        assert s.status_code == 200, s.text
        if s.json()["state"] in states:
            return s.json()
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states} within {WAIT_S} s: {s.json()}")


def jobs_of(client: TestClient) -> VideoJobs:
    return client.app.state.video_jobs


def leftover(client: TestClient) -> list[str]:
    """Everything under the server's private video folder."""
    root = jobs_of(client).root
    assert root is not None
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def astronaut_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """Panning over the astronaut, with a tone, and where it was filmed and by whom in the container's metadata."""
    return write_clip(tmp_path_factory.mktemp("clips") / "astronaut.mp4", moving(astronaut, 20, (320, 240)),
                      metadata=METADATA)


@pytest.fixture(scope="module")
def fer_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 24 frames of the shared fer_test.mp4 (real people, 596x336), with a tone added."""
    cap = cv2.VideoCapture(str(shared_path("data", "videos", "fer_test.mp4")))
    frames = []
    while len(frames) < 24:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return write_clip(tmp_path_factory.mktemp("clips") / "fer cut.mp4", frames, fps=25)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(WebSettings(ros="off"))) as c:
        yield c
    assert jobs_of(c).root is not None and not jobs_of(c).root.exists(), "stopping the server deletes every job"


@pytest.mark.slow  # 5 s measured (idle 2-core machine, --durations)
@pytest.mark.parametrize("which", ["astronaut_clip", "fer_clip"])
def test_clip_is_anonymized_with_its_audio(client: TestClient, which: str, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    clip: Path = request.getfixturevalue(which)
    original, src = read_clip(clip)
    r = upload(client, clip)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "processing") and job["clip"]["width"] == src["width"]
    assert job["clip"]["frames"] == len(original) and job["clip"]["audio"] is True
    seen = {job["state"]}
    deadline = time.monotonic() + WAIT_S
    while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/api/video/{job['id']}").json()
        seen.add(job["state"])
        if job["state"] == "processing":
            assert 0 <= job["frames_done"] <= job["frames_total"] == len(original)
    assert job["state"] == "done", job
    s = job["summary"]
    assert (s["frames"], s["width"], s["height"], s["audio"]) == (len(original), src["width"], src["height"], True)
    assert abs(s["fps"] - float(src["fps"])) < 1e-3 and s["failed_frames"] == 0
    assert job["tracks"] and all(t["emotion"] for t in job["tracks"]), job["tracks"]
    assert job["expires_in_s"] and job["expires_in_s"] > 500

    # Only the anonymized result is left in the private folder: the upload is gone.
    folder = jobs_of(client).get(job["id"]).folder
    assert folder is not None and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["anonymized.mp4", "faces.jsonl"]

    faces = client.get(job["faces_url"])
    assert faces.status_code == 200 and faces.headers["content-type"].startswith("application/x-ndjson")
    assert len(faces.text.splitlines()) == len(original)
    video = client.get(job["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    out_path = tmp_path / "anonymized.mp4"
    out_path.write_bytes(video.content)
    out, info = read_clip(out_path)
    assert info["codec"] == "h264" and info["format"].startswith("mov,mp4")
    assert (len(out), info["width"], info["height"]) == (len(original), src["width"], src["height"])
    assert info["fps"] == src["fps"], (info["fps"], src["fps"])
    assert info["audio"] == ["aac"] and abs(audio_peak_hz(out_path) - TONE_HZ) < 5
    if which == "astronaut_clip":
        assert METADATA.items() <= src["metadata"].items()
        assert not set(METADATA) & set(info["metadata"]), f"the upload's metadata came along: {info['metadata']}"

    # An independent detector finds the faces of the upload, and none left in the result.
    meter = LeakMeter(independent_backend(PipelineConfig().detector.backend))
    truth = [meter.measure(o, o, []) for o in original]
    assert sum(len(f.truth) for f in truth) >= len(original) // 2, "the meter sees the clip's faces"
    assert all(f.count == len(f.truth) for f in truth), "the meter fires on the original frames"
    meter.reset()
    leaks = [meter.measure(o, a, [], truth=t.truth) for o, a, t in zip(original, out, truth, strict=True)]
    assert sum(f.count for f in leaks) == 0, [f.count for f in leaks]


@pytest.mark.slow  # 3.6 s measured (idle 2-core machine, --durations)
def test_range_requests_and_fetched_retention(astronaut_clip: Path) -> None:
    """The <video> element's Range requests work; the result is deleted a grace period after the MP4 was
    sent in full (a partial range does not count), and the job then says so."""
    settings = WebSettings(ros="off", video_fetched_grace_s=1.0, video_result_timeout_s=60.0)
    with TestClient(create_app(settings)) as c:
        jobs_of(c).tick_s = 0.1
        job = wait_done(c, upload(c, astronaut_clip).json()["id"])
        url, size = job["video_url"], job["summary"]["bytes"]
        part = c.get(url, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-1099/{size}"
        assert len(part.content) == 1000
        assert c.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
        time.sleep(1.5)  # the scenario: longer than the 1.0 s grace after a fetch, so a part counted as one would show
        assert c.get(f"/api/video/{job['id']}").json()["expires_in_s"] > 50, "a part is not a fetch"
        head = c.get(url, headers={"Range": "bytes=0-99"})
        rest = c.get(url, headers={"Range": "bytes=1000-"})  # with the first two: every byte sent once
        assert head.status_code == rest.status_code == 206
        whole = head.content + part.content[-900:] + rest.content
        assert len(whole) == size and whole[4:8] == b"ftyp"
        assert c.get(f"/api/video/{job['id']}").json()["expires_in_s"] <= 1.0
        deadline = time.monotonic() + 10
        while c.get(f"/api/video/{job['id']}").json()["state"] != "expired" and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = c.get(f"/api/video/{job['id']}").json()
        assert gone["state"] == "expired" and "after it was fetched" in gone["message"], gone
        assert leftover(c) == [], "the job folder is deleted"
        r = c.get(url)
        assert r.status_code == 410 and "was deleted" in r.json()["detail"]


@pytest.mark.slow  # 5.6 s measured (idle 2-core machine, --durations)
def test_unfetched_result_times_out_and_delete_discards(astronaut_clip: Path) -> None:
    settings = WebSettings(ros="off", video_fetched_grace_s=1.0, video_result_timeout_s=1.5)
    with TestClient(create_app(settings)) as c:
        jobs_of(c).tick_s = 0.1
        first = wait_done(c, upload(c, astronaut_clip).json()["id"])
        deadline = time.monotonic() + 10
        while (gone := c.get(f"/api/video/{first['id']}").json())["state"] != "expired":
            assert time.monotonic() < deadline, f"the unfetched result did not expire within 10 s: {gone}"
            time.sleep(0.1)
        assert gone["state"] == "expired" and "1.5 s after it was ready" in gone["message"], gone
        assert leftover(c) == []
        second = wait_done(c, upload(c, astronaut_clip).json()["id"])
        assert len(leftover(c)) == 3  # its folder with the MP4 and the faces
        assert c.delete(f"/api/video/{second['id']}").status_code == 204
        assert leftover(c) == []
        for path in ("", "/video.mp4", "/faces.jsonl"):
            r = c.get(f"/api/video/{second['id']}{path}")
            assert r.status_code == 404 and "no video job" in r.json()["detail"]


def test_unknown_job_is_404(client: TestClient) -> None:
    for method, path in [("GET", ""), ("GET", "/video.mp4"), ("GET", "/faces.jsonl"), ("DELETE", "")]:
        r = client.request(method, f"/api/video/no-such-job{path}")
        assert r.status_code == 404 and r.json()["detail"].startswith("no video job 'no-such-job'"), r.text


@pytest.fixture(scope="module")
def small_limits() -> Iterator[TestClient]:
    settings = WebSettings(ros="off", max_video_bytes=200_000, max_video_seconds=3.0, max_video_pixels=100_000)
    with TestClient(create_app(settings)) as c:
        yield c


def test_each_limit_has_its_own_refusal(small_limits: TestClient, astronaut: np.ndarray, tmp_path: Path) -> None:
    c = small_limits
    info = c.get("/api/video/info").json()
    assert (info["max_video_bytes"], info["max_video_seconds"], info["max_video_pixels"]) == (200_000, 3.0, 100_000)

    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(300_000))
    r = upload(c, big)
    assert r.status_code == 413 and r.json()["detail"] == ("the clip (300,000 bytes) is larger than the limit of "
                                                           "200,000 bytes (0.190735 MB)")

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(30):
            yield b"\0" * 10_000

    r = c.post("/api/video", content=chunks(), headers={"Content-Type": "video/mp4"})
    assert r.status_code == 413 and r.json()["detail"].startswith("the clip is larger than the limit of 200,000")

    long = write_clip(tmp_path / "long.mp4", moving(astronaut, 40, (160, 120)))  # 4 s
    r = upload(c, long)
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "the clip lasts 4.0 s, longer than the limit of 3 s: cut it shorter first"

    wide = write_clip(tmp_path / "wide.mp4", moving(astronaut, 5, (480, 360)), tone=False)
    r = upload(c, wide)
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == ("the clip is 480x360 (0.2 megapixels per frame), more than the limit of 0.1: "
                                  "scale it down first")

    text = tmp_path / "notes.mp4"
    text.write_text("these are notes, not a clip\n")
    r = upload(c, text)
    assert r.status_code == 415 and "this file is text" in r.json()["detail"]
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.resize(astronaut, (128, 128)))
    r = upload(c, photo)
    assert r.status_code == 415 and r.json()["detail"].startswith("this file is a PNG image, not a video clip")

    r = c.post("/api/video", content=b"", headers={"Content-Type": "video/mp4"})
    assert r.status_code == 400 and "carries no clip" in r.json()["detail"]
    r = c.post("/api/video", files={"clip": ("a.mp4", long.read_bytes(), "video/mp4")})
    assert r.status_code == 415 and "not a form" in r.json()["detail"]

    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        af.sample_rate, af.pts = AUDIO_RATE, 0
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    r = upload(c, sound)
    assert r.status_code == 422 and r.json()["detail"] == "the clip holds no video track (only audio?)"

    assert leftover(c) == [], "a refused upload leaves nothing behind"
    ok = upload(c, write_clip(tmp_path / "ok.mp4", moving(astronaut, 20, (160, 120))))
    assert ok.status_code == 202, ok.text
    assert wait_done(c, ok.json()["id"])["state"] == "done"


@pytest.mark.slow  # 12 s measured (idle 2-core machine, --durations)
def test_full_queue_is_503_and_positions(astronaut: np.ndarray, tmp_path: Path) -> None:
    """One clip processed at a time, one more waiting (max_video_waiting=1); a third is refused."""
    long = write_clip(tmp_path / "long.mp4", moving(astronaut, 150, (320, 240)))
    short = write_clip(tmp_path / "short.mp4", moving(astronaut, 10, (160, 120)))
    with TestClient(create_app(WebSettings(ros="off", max_video_waiting=1))) as c:
        first = upload(c, long).json()
        wait_done(c, first["id"], ("processing",))
        second = upload(c, short)
        assert second.status_code == 202 and second.json()["state"] == "queued" and second.json()["position"] == 1
        third = upload(c, short)
        assert third.status_code == 503, third.text
        assert third.json()["detail"] == ("the video queue is full (1 clip being processed, 1 waiting): try again "
                                          "in a few minutes")
        assert c.get(f"/api/video/{first['id']}").json()["state"] == "processing", "the long clip is still going"
        r = c.get(f"/api/video/{second.json()['id']}/video.mp4")
        assert r.status_code == 409 and "not ready yet (queued, position 1 in the queue)" in r.json()["detail"]
        assert c.delete(f"/api/video/{second.json()['id']}").status_code == 204  # a place frees
        again = upload(c, short)
        assert again.status_code == 202 and again.json()["position"] == 1
        assert c.delete(f"/api/video/{first['id']}").status_code == 204  # stops at its next frame
        assert wait_done(c, again.json()["id"])["state"] == "done"
        assert c.get(f"/api/video/{first['id']}").status_code == 404
        assert len(leftover(c)) == 3, "only the finished clip's folder remains"


def test_a_failed_clip_says_why_and_keeps_nothing(astronaut_clip: Path) -> None:
    """The pipeline refuses frames larger than its output/max_pixels: the job fails with that message, and
    neither the upload nor a partial result remains."""
    config = PipelineConfig()
    config.output.max_pixels = 200 * 200
    with TestClient(create_app(WebSettings(ros="off"), config)) as c:
        job = wait_done(c, upload(c, astronaut_clip).json()["id"])
        assert job["state"] == "failed" and job["summary"] is None
        assert job["message"] == ("cannot anonymize the clip: image 320x240 exceeds the limit of 40000 pixels; lower "
                                  "the camera resolution or raise the listener's ~output/max_pixels"), job["message"]
        assert leftover(c) == []
        r = c.get(f"/api/video/{job['id']}/video.mp4")
        assert r.status_code == 409 and "this clip failed" in r.json()["detail"]


def test_a_clip_without_duration_is_stopped_at_the_limit(tmp_path: Path) -> None:
    """A Matroska file written live has no duration in its header: it is taken, and the worker stops it once
    it runs past the limit (frames counted at its frame rate), keeping nothing."""
    clip = tmp_path / "live.mkv"
    with av.open(str(clip), "w", format="matroska", options={"live": "1"}) as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        for i in range(25):
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), 10 * i, np.uint8), format="bgr24")))
        c.mux(v.encode(None))
    with TestClient(create_app(WebSettings(ros="off", max_video_seconds=1.0))) as c:
        r = c.post("/api/video?name=live.mkv", content=clip.read_bytes(), headers={"Content-Type": "video/x-matroska"})
        assert r.status_code == 202 and r.json()["clip"]["seconds"] is None, r.text
        job = wait_done(c, r.json()["id"])
        assert job["state"] == "failed" and job["message"] == (
            "the clip runs longer than the limit of 1 s (more than 11 frames; its header gave no duration): cut it "
            "shorter first"), job
        assert leftover(c) == []


def test_video_settings_are_validated() -> None:
    from emoji_privacy.errors import ConfigError
    from emoji_privacy.web.cli import build_parser

    for bad in ({"max_video_seconds": 0}, {"max_video_pixels": 10}, {"max_video_waiting": -1},
                {"video_fetched_grace_s": 700.0}, {"video_tmp_dir": "/no/such/folder"}):
        with pytest.raises(ConfigError):
            WebSettings(**bad).validate()
    args = build_parser().parse_args(["--max-video-mb", "50", "--max-video-seconds", "30",
                                      "--max-video-megapixels", "0.5", "--max-video-waiting", "2"])
    assert (args.max_video_mb, args.max_video_seconds, args.max_video_megapixels, args.max_video_waiting) == \
        (50, 30, 0.5, 2)


def test_fps_of_a_clip_survives(client: TestClient, astronaut: np.ndarray, tmp_path: Path) -> None:
    """An odd frame rate (fer_test.mp4's is 24.7) comes back unchanged."""
    clip = tmp_path / "odd.mp4"
    frames = moving(astronaut, 12, (160, 120))
    with av.open(str(clip), "w") as c:
        v = c.add_stream("libx264", rate=Fraction(1472000, 59591))
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        c.mux(v.encode(None))
    job = wait_done(client, upload(client, clip).json()["id"])
    assert job["state"] == "done" and job["summary"]["audio"] is False
    out = tmp_path / "out.mp4"
    out.write_bytes(client.get(job["video_url"]).content)
    _, src = read_clip(clip)
    frames_out, info = read_clip(out)
    assert len(frames_out) == 12 and abs(float(info["fps"]) - float(src["fps"])) < 0.01


def test_the_result_view_lists_the_longest_tracks_and_counts_the_rest() -> None:
    """75 tracks of a 9 s crowd clip, most of them 1-8 frames long, are not a table for a user: the longest are
    listed in order of appearance, the rest counted (routes_video puts the count in other_tracks)."""
    from emoji_privacy.web.video_jobs import TrackSpan, top_tracks

    spans = [TrackSpan(i, 0.1 * i, 0.1 * i + (8.0 if i % 5 == 0 else 0.2), 10, 0, "happy", {"happy": 10}, 0)
             for i in range(20)]
    shown, others = top_tracks(spans, top=3)
    assert [s.track_id for s in shown] == [0, 5, 10], "the three longest, in order of appearance"
    assert len(others) == 17 and {s.track_id for s in others}.isdisjoint({0, 5, 10})
    assert top_tracks(spans[:2], top=3) == (spans[:2], [])
