"""`emoji-privacy anonymize --ray` on a real two-node Ray cluster on loopback (test/ray_helpers.py).

Mixed inputs (videos, a folder of photos, a photo, a ROS 1 bag, a ROS 2 bag) come out frame for frame as the
serial tool writes them, with no face left (the leak meter); a node killed mid-job loses nothing (its file is
done again elsewhere); long recordings cut into segments on both workers and joined come out as the serial tool
cuts and joins them; the same command again does nothing, and after one output is deleted only that one is
done; a corrupt input is listed and the others are written. The cluster is stopped by the tests themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import REPO, shared_path
from ray_helpers import LocalCluster
from video_helpers import read_frames, write_clip

from emoji_privacy.evaluation.leaks import LeakMeter, independent_backend
from emoji_privacy.files.manifest import MANIFEST_NAME

pytestmark = pytest.mark.slow

START = 1000.0  # the bags' first stamp: fixed, so that two conversions are the same bag
SPLIT = ("--split-seconds", "2")


def make_inputs(folder: Path) -> list[Path]:
    """Six inputs of every kind, from the shared clips."""
    folder.mkdir(parents=True, exist_ok=True)
    video = shared_path("data", "videos", "fer_test.mp4")
    woman = shared_path("data", "videos", "fer_woman2.mp4")
    clip = folder / "clip.mp4"
    shutil.copy(video, clip)
    frames = read_frames(woman)
    write_clip(folder / "woman.mkv", frames[100:160], fps=25, tone=False)
    photos = folder / "photos"
    photos.mkdir()
    for i in (0, 40, 80):
        cv2.imwrite(str(photos / f"frame{i}.jpg"), frames[i])
    cv2.imwrite(str(folder / "still.png"), frames[200])
    from emoji_privacy.evaluation.video_to_bag import convert

    convert(str(video), str(folder / "cam.bag"), "/camera/image_raw", "bgr8", 0.0, 0, 0, START, "camera", 40, (),
            0, False)
    inputs = [clip, folder / "woman.mkv", photos, folder / "still.png", folder / "cam.bag"]
    try:
        from emoji_privacy.ros.ros2_bags import video_to_ros2_bag
    except ImportError:
        return inputs
    video_to_ros2_bag(woman, folder / "cam2", storage="mcap", max_frames=40)
    return inputs + [folder / "cam2"]


def cli(*args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "emoji-privacy"), "anonymize", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def outputs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and p.name != MANIFEST_NAME}


def frames_of(path: Path) -> list[np.ndarray]:
    """Every image an output holds, decoded: a video's frames, a bag's image messages, a folder's photos."""
    if path.is_dir() and (path / "metadata.yaml").is_file():
        from emoji_privacy.ros.ros2_bags import read_images

        return read_images(path)
    if path.is_dir():
        return [cv2.imread(str(p)) for p in sorted(path.iterdir())]
    if path.suffix == ".bag":
        from emoji_privacy.ros import bags
        from emoji_privacy.ros.messages import image_to_bgr

        with bags.open_bag(path) as bag:
            return [image_to_bgr(msg) for _, msg, _ in bags.read(bag, bags.image_topics(bags.topics(bag)))]
    if path.suffix in (".png", ".jpg"):
        return [cv2.imread(str(path))]
    return read_frames(path)


@pytest.fixture(scope="module")
def cluster() -> LocalCluster:
    if shutil.which("ray") is None and not (REPO / ".venv" / "bin" / "ray").exists():
        pytest.skip("Ray is not installed (make setup installs it)")
    os.environ["PATH"] = f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"
    c = LocalCluster().start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cluster: LocalCluster) -> dict:
    root = tmp_path_factory.mktemp("fleet")
    inputs = make_inputs(root / "in")
    # segments of 2 s: the clips and bags are cut (spread over both workers) and joined, serially the same way
    serial = cli(*inputs, "-o", root / "serial", "--faces-json", root / "serial.jsonl", "--quiet", *SPLIT)
    assert serial.returncode == 0, serial.stderr
    t0 = time.monotonic()
    ray = cli(*inputs, "-o", root / "ray", "--faces-json", root / "ray.jsonl", "--ray", cluster.address, *SPLIT)
    assert ray.returncode == 0, ray.stderr
    return {"root": root, "inputs": inputs, "ray": ray, "seconds": time.monotonic() - t0}


def test_the_cluster_writes_what_the_serial_tool_writes(runs: dict) -> None:
    serial, ray = outputs(runs["root"] / "serial"), outputs(runs["root"] / "ray")
    assert list(ray) == list(serial) and len(ray) == len(runs["inputs"])
    for name in serial:
        a, b = frames_of(serial[name]), frames_of(ray[name])
        assert len(a) == len(b) > 0, name
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert np.array_equal(x, y), f"{name}: frame {i} differs between the serial and the Ray run"
    assert (runs["root"] / "ray.jsonl").read_text() == (runs["root"] / "serial.jsonl").read_text()
    assert f"{len(runs['inputs'])}/{len(runs['inputs'])} files" in runs["ray"].stderr  # the job's one progress bar


def test_no_face_is_left_in_the_cluster_outputs(runs: dict) -> None:
    """The leak meter (CenterFace; the pipeline runs YuNet) on the videos: every face it finds in the input is
    gone from the Ray run's output, and it finds them in the input (it can fail)."""
    from emoji_privacy.config import PipelineConfig

    meter = LeakMeter(independent_backend(PipelineConfig().detector.backend))
    ray = outputs(runs["root"] / "ray")
    faces = leaked = 0
    for src, name in ((runs["inputs"][0], "clip_anonymized.mp4"), (runs["inputs"][1], "woman_anonymized.mkv")):
        meter.reset()
        for original, anonymized in zip(frames_of(src)[::3], frames_of(ray[name])[::3], strict=True):
            truth = meter.reference.detect(original).boxes
            faces += len(truth)
            leaked += meter.measure(original, anonymized, [], truth=truth).count
            assert meter.measure(original, original, [], truth=truth).count == len(truth)
    assert faces > 40 and leaked == 0, f"{leaked} of {faces} faces left"


def test_the_same_command_again_does_nothing_and_a_deleted_output_is_redone(runs: dict,
                                                                             cluster: LocalCluster) -> None:
    root, inputs = runs["root"], runs["inputs"]
    before = {n: p.stat().st_mtime_ns for n, p in outputs(root / "ray").items()}
    again = cli(*inputs, "-o", root / "ray", "--ray", cluster.address, *SPLIT)
    assert again.returncode == 0, again.stderr
    assert f"{len(inputs)} of {len(inputs)} inputs are done already" in again.stderr
    assert {n: p.stat().st_mtime_ns for n, p in outputs(root / "ray").items()} == before
    victim = root / "ray" / "woman_anonymized.mkv"
    victim.unlink()
    redo = cli(*inputs, "-o", root / "ray", "--ray", cluster.address, *SPLIT)
    assert redo.returncode == 0, redo.stderr
    assert f"{len(inputs) - 1} of {len(inputs)} inputs are done already" in redo.stderr
    after = {n: p.stat().st_mtime_ns for n, p in outputs(root / "ray").items()}
    assert [n for n in after if after[n] != before.get(n)] == ["woman_anonymized.mkv"]
    manifest = json.loads((root / "ray" / MANIFEST_NAME).read_text())
    assert len(manifest["inputs"]) == len(inputs)
    entry = manifest["inputs"][str(inputs[1].resolve())]
    assert entry["output"] == "woman_anonymized.mkv" and len(entry["input"]["sha256"]) == 64


def test_a_corrupt_input_is_listed_and_the_others_are_written(runs: dict, cluster: LocalCluster) -> None:
    root = runs["root"]
    junk = root / "in" / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    out = root / "corrupt"
    r = cli(runs["inputs"][3], junk, runs["inputs"][2], "-o", out, "--ray", cluster.address)
    assert r.returncode == 1, r.stderr
    assert "1 file could not be anonymized" in r.stderr and f"{junk}: cannot decode" in r.stderr, r.stderr
    assert sorted(outputs(out)) == ["photos_anonymized", "still_anonymized.png"]
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def test_a_node_killed_mid_job_loses_no_output(runs: dict, cluster: LocalCluster) -> None:
    """Last (it takes the second node away): both workers busy with a video each, the second node's processes
    killed; its video is done again by the head's worker, and every output is the serial run's."""
    root, inputs = runs["root"], runs["inputs"]
    out = root / "killed"
    jobs = [inputs[0], inputs[1]]
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "emoji-privacy"), "anonymize", *map(str, jobs), "-o",
                             str(out), "--ray", cluster.address, "--quiet", *SPLIT], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len([p for p in out.iterdir() if ".partial" in p.name]) >= 2:
            break  # both workers are writing
        time.sleep(0.1)
    assert proc.poll() is None, "the job ended before both workers were busy"
    assert cluster.kill_second_node() > 0
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "died" in err, err
    serial = outputs(root / "serial")
    for name, path in outputs(out).items():
        a, b = frames_of(serial[name]), frames_of(path)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name
    assert sorted(outputs(out)) == ["clip_anonymized.mp4", "woman_anonymized.mkv"]
    assert not [p for p in out.rglob("*") if ".partial" in p.name], "a dead worker's partial file was left"
