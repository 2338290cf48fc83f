"""The web demo end to end: the real server (`python -m emoji_privacy.web`) in its own process and
Debian's chromium, headless, driven by selenium through Debian's chromedriver (no browser download).

Screenshots go to each test's output folder; with EMOJI_PRIVACY_UPDATE_DOCS=1 the upload test's
screenshot also replaces docs/web_demo.png (the README's picture).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import REPO
from video_helpers import moving, write_clip
from web_helpers import box_diff, decode_data_url, wait_for_server

from emoji_privacy import EMOTIONS, processes
from emoji_privacy.sources import DemoScene

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 120  # generous: the machine's 2 cores are shared with training jobs
BODY_TIMEOUT_S = 3

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make setup)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real command line, on a free port, with a short upload timeout for the slow-client test."""
    port = processes.free_port()
    log = tmp_path_factory.mktemp("web") / "server.log"
    proc = processes.start([sys.executable, "-m", "emoji_privacy.web", "--port", str(port), "--ros", "off",
                            "--body-timeout", str(BODY_TIMEOUT_S)], log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, proc, log)
        yield base
    finally:
        processes.stop(proc)


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    """A YUV4MPEG2 file: what chromium's fake webcam plays (--use-file-for-fake-video-capture)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


@pytest.fixture(scope="module")
def camera_frames() -> list[np.ndarray]:
    """What the fake webcam shows: the demo scene (three faces), back and forth."""
    scene = DemoScene(640, 480)
    frames = [scene.frame(t, 150) for t in range(40)]
    return frames + frames[::-1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, camera_frames: list[np.ndarray]):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make setup installs them)")
    camera = tmp_path_factory.mktemp("camera") / "demo_scene.y4m"
    write_y4m(camera, camera_frames)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}"):
        options.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never download anything
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def face_rows(driver, table: str) -> list[list[str]]:
    """The cells of the face rows of ``table``, read at once (the live tables change with every frame)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} tbody tr.face-row`))"
        ".map((r) => Array.from(r.cells).map((c) => c.textContent));", table)


def screenshot(driver, path: Path, docs_name: str | None = None) -> None:
    """Into the test's folder, and over docs/<docs_name> with EMOJI_PRIVACY_UPDATE_DOCS=1."""
    assert driver.save_screenshot(str(path)), "chromium took no screenshot"
    assert cv2.imread(str(path)) is not None
    if docs_name and os.environ.get("EMOJI_PRIVACY_UPDATE_DOCS") == "1":
        shutil.copyfile(path, REPO / "docs" / docs_name)


def shown_frame(browser, element_id: str, width: str, height: str) -> np.ndarray:
    """The pixels an <img> or <video> shows right now, drawn on a canvas and read back as BGR."""
    shown = browser.execute_script(f"""
        const e = document.getElementById('{element_id}');
        const c = document.createElement('canvas');
        c.width = e.{width}; c.height = e.{height};
        c.getContext('2d').drawImage(e, 0, 0);
        return c.toDataURL('image/png');""")
    return cv2.imdecode(np.frombuffer(base64.b64decode(shown.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_upload_in_browser(server: str, browser, astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    browser.get(server + "/")
    browser.find_element(By.ID, "upload-input").send_keys(str(photo))
    WebDriverWait(browser, WAIT_S).until(lambda d: face_rows(d, "faces"))
    rows = face_rows(browser, "faces")
    assert len(rows) == 1 and rows[0][1] in EMOTIONS, rows
    assert not browser.find_element(By.ID, "message").is_displayed()
    out = decode_data_url(browser.find_element(By.ID, "result-image").get_attribute("src"))
    box = [float(v) for v in rows[0][3].split(",")]
    inside, outside = box_diff(out, astronaut, box)
    assert inside > 40, f"the returned image hardly differs where the face was ({inside:.1f})"
    assert outside < 6, f"the returned image differs far from the face ({outside:.1f})"
    summary = browser.find_element(By.ID, "result-summary").text
    assert "1 face" in summary and "512x512" in summary
    screenshot(browser, tmp_path / "web_demo.png", "web_demo.png")


def test_errors_show_on_the_page(server: str, browser, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not a picture\n")
    browser.get(server + "/")
    browser.find_element(By.ID, "upload-input").send_keys(str(fake))
    message = browser.find_element(By.ID, "message")
    WebDriverWait(browser, WAIT_S).until(lambda d: message.is_displayed())
    assert "415" in message.text and "send a JPEG, PNG or WebP image" in message.text
    assert not browser.find_element(By.ID, "result").is_displayed(), "no image is shown for a refused upload"
    browser.find_element(By.ID, "url-input").send_keys("http://127.0.0.1:1/photo.jpg")
    browser.find_element(By.CSS_SELECTOR, "#url-form button").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: "403" in message.text)
    assert "loopback address" in message.text and "--allow-private-urls" in message.text
    screenshot(browser, tmp_path / "web_demo_error.png")


def test_webcam_in_browser(server: str, browser, camera_frames: list[np.ndarray], tmp_path: Path) -> None:
    """Chromium's fake webcam plays the demo scene (three faces) through getUserMedia and the WebSocket."""
    browser.get(server + "/")
    browser.find_element(By.ID, "live-start").click()
    # a new face shows "unknown" until its first emotion has held for tracking/switch_dwell_s (shown_emotion.md)
    WebDriverWait(browser, WAIT_S).until(lambda d: len(rows := face_rows(d, "live-faces")) == 3
                                         and all(r[1] in EMOTIONS for r in rows))
    frame = shown_frame(browser, "live-image", "naturalWidth", "naturalHeight")
    assert frame.shape == (480, 640, 3)
    cv2.imwrite(str(tmp_path / "live_frame.png"), frame)
    # The camera frame it came from is the closest one; every face of that frame must be covered.
    camera = min(camera_frames, key=lambda c: np.abs(c.astype(np.int16) - frame).mean())
    from emoji_privacy.detection import load_face_detector

    faces = load_face_detector("yunet").detect(camera).boxes
    assert len(faces) == 3
    for box in faces:
        assert box_diff(frame, camera, list(box))[0] > 40, f"the live view shows the face at {box}"
    browser.execute_script("document.getElementById('live-card').scrollIntoView()")
    screenshot(browser, tmp_path / "web_demo_live.png")
    browser.find_element(By.ID, "live-stop").click()
    assert "Stopped" in browser.find_element(By.ID, "live-status").text


def test_slow_upload_gets_408_and_server_keeps_serving(server: str, astronaut: np.ndarray) -> None:
    port = int(server.rsplit(":", 1)[1])
    # the socket's timeout bounds the wait: a server that keeps the slow client past it fails the recv
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 30) as s:
        s.sendall(b"POST /api/anonymize HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 100000\r\n\r\n\xff\xd8\xff")
        raw = b""
        while b"did not arrive" not in raw:  # headers and body may come in separate packets
            chunk = s.recv(4096)
            if not chunk:
                break
            raw += chunk
        answer = raw.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408"), answer
    assert f"did not arrive within {BODY_TIMEOUT_S} s" in answer
    with urllib.request.urlopen(server + "/api/demo/astronaut", timeout=WAIT_S) as r:
        assert len(r.read()) > 1000, "the server still serves after a slow client"


def test_video_clip_in_browser(server: str, browser, astronaut: np.ndarray, tmp_path: Path) -> None:
    """A clip (H.264 with a tone) uploaded on the page comes back anonymized and plays in the <video> element."""
    frames = moving(astronaut, 20, (320, 240))
    clip = write_clip(tmp_path / "astronaut clip.mp4", frames)
    browser.get(server + "/")
    browser.find_element(By.ID, "video-input").send_keys(str(clip))
    message = browser.find_element(By.ID, "video-message")
    ready = "return document.getElementById('video-player').readyState"
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(ready) >= 2 or message.is_displayed())
    assert not message.is_displayed(), message.text
    player = browser.execute_script("const v = document.getElementById('video-player'); "
                                    "return [v.readyState, v.videoWidth, v.videoHeight, v.duration, v.error];")
    assert player[0] >= 2 and player[1:3] == [320, 240] and abs(player[3] - 2.0) < 0.2 and player[4] is None, player
    summary = browser.find_element(By.ID, "video-summary").text
    assert "20 frames, 320x240" in summary and "with sound" in summary, summary
    tracks = browser.execute_script(
        "return Array.from(document.querySelectorAll('#video-tracks tbody tr.track-row'))"
        ".map((r) => Array.from(r.cells).map((c) => c.textContent));")
    assert tracks and all(t[3] in EMOTIONS for t in tracks), tracks
    # the result view spans the page: the clip large
    card = browser.execute_script("const c = document.getElementById('video-card'); "
                                  "return [c.classList.contains('has-result'), c.offsetWidth, "
                                  "document.querySelector('main').clientWidth];")
    assert card[0] and card[1] > 0.8 * card[2], card
    assert browser.find_element(By.ID, "video-download").get_attribute("href").endswith("/video.mp4?download=true")
    # The frame the player shows: the face of the first frame is covered, the rest as it was.
    frame = shown_frame(browser, "video-player", "videoWidth", "videoHeight")
    from emoji_privacy.detection import load_face_detector

    faces = load_face_detector("yunet").detect(frames[0]).boxes
    assert len(faces) == 1
    inside, outside = box_diff(frame, frames[0], list(faces[0]))
    assert inside > 40 and outside < 12, (inside, outside)
    browser.execute_script("document.getElementById('video-card').scrollIntoView()")
    screenshot(browser, tmp_path / "web_demo_video.png")
