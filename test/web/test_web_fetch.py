"""Image URLs fetched server-side: a real HTTP server started here, with the private-address guard
relaxed for 127.0.0.1 only (this test's settings), and the refusals that protect everything else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from web_helpers import box_diff, decode_data_url

pytest.importorskip("fastapi", reason="the web demo's packages are not installed (make setup)")
from fastapi.testclient import TestClient  # noqa: E402

from emoji_privacy.web import WebSettings  # noqa: E402
from emoji_privacy.web.app import create_app  # noqa: E402
from emoji_privacy.web.fetch import UrlPolicy, checked_addresses, fetch_image_bytes  # noqa: E402
from emoji_privacy.web.settings import WebRequestError  # noqa: E402

LIMIT = 512 * 1024


class ImageSite(BaseHTTPRequestHandler):
    """A small web site with one photo and every way a URL can go wrong."""

    jpeg = b""

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def send(self, status: int, body: bytes, ctype: str, length: bool = True, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        routes = {
            "/photo.jpg": lambda: self.send(200, self.jpeg, "image/jpeg"),
            "/no-type": lambda: self.send(200, self.jpeg, "application/octet-stream"),
            "/page.html": lambda: self.send(200, b"<html><img src='/photo.jpg'></html>", "text/html; charset=utf-8"),
            "/big.jpg": lambda: self.send(200, b"\xff\xd8\xff" + bytes(2 * LIMIT), "image/jpeg"),
            "/big-unsized.jpg": lambda: self.send(200, b"\xff\xd8\xff" + bytes(2 * LIMIT), "image/jpeg", length=False),
            "/redirect": lambda: self.send(302, b"", "text/plain", Location="/photo.jpg"),
            "/redirect-private": lambda: self.send(302, b"", "text/plain",
                                                   Location=f"http://127.0.0.2:{port}/photo.jpg"),
            "/loop": lambda: self.send(302, b"", "text/plain", Location="/loop"),
            "/slow.jpg": self.slow,
            "/trickle.jpg": self.trickle,
        }
        routes.get(self.path, lambda: self.send(404, b"not here", "text/plain"))()

    def slow(self) -> None:
        time.sleep(3)
        self.send(200, self.jpeg, "image/jpeg")

    def trickle(self) -> None:
        """Headers at once, then a byte every 0.2 s: each read is quick, the whole is too slow."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        try:
            for b in self.jpeg[:40]:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


@pytest.fixture(scope="module")
def site(astronaut: np.ndarray) -> Iterator[str]:
    ImageSite.jpeg = cv2.imencode(".jpg", astronaut)[1].tobytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageSite)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The guard relaxed for 127.0.0.1/32 only, as a lab would for one intranet server."""
    settings = WebSettings(ros="off", url_allow_networks=("127.0.0.1/32",), url_timeout_s=1.5,
                           max_upload_bytes=LIMIT)
    with TestClient(create_app(settings)) as c:
        yield c


def fetch(client: TestClient, url: str) -> tuple[int, dict]:
    r = client.post("/api/anonymize-url", json={"url": url})
    return r.status_code, r.json()


def test_fetch_and_anonymize(client: TestClient, site: str, astronaut: np.ndarray) -> None:
    for path in ("/photo.jpg", "/redirect", "/no-type"):
        status, result = fetch(client, site + path)
        assert status == 200, result
        assert result["source"] == "url" and len(result["faces"]) == 1
        out = decode_data_url(result["image_data_url"])
        assert box_diff(out, astronaut, result["faces"][0]["box"])[0] > 40


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/page.html", 415, "web page, not an image"),
    ("/big.jpg", 413, "(1,048,579 bytes) is larger than the limit of 524,288 bytes"),
    ("/big-unsized.jpg", 413, "larger than the limit of 524,288 bytes"),
    ("/missing.jpg", 502, "answered 404"),
    ("/loop", 502, "more than 3 redirects"),
    ("/slow.jpg", 504, "did not deliver the image within 1.5 s"),
    ("/trickle.jpg", 504, "did not deliver the image within 1.5 s"),
    ("/redirect-private", 403, "redirect to http://127.0.0.2:"),
])
def test_fetch_problems(client: TestClient, site: str, path: str, status: int, words: str) -> None:
    got, body = fetch(client, site + path)
    assert (got, words in body["detail"]) == (status, True), body
    # no clock needed for the deadline: without one, /slow.jpg would come back whole after 3 s (200) and
    # /trickle.jpg cut after its 40 bytes (422, truncated); a 504 says the fetch stopped at its 1.5 s


@pytest.mark.parametrize(("url", "status", "words"), [
    ("ftp://example.org/a.jpg", 400, "only http:// and https://"),
    ("file:///etc/passwd", 400, "only http:// and https://"),
    ("example.org/a.jpg", 400, "no scheme"),
    ("http:///a.jpg", 400, "no host name"),
    ("http://example.org:99999/a.jpg", 400, "invalid port"),
    ("http://127.0.0.2/a.jpg", 403, "127.0.0.2 is a loopback address"),
    ("http://[::1]:8080/a.jpg", 403, "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/a.jpg", 403, "loopback"),
    ("http://10.1.2.3/a.jpg", 403, "10.1.2.3 is a private network address"),
    ("http://192.168.1.10/a.jpg", 403, "private network address"),
    ("http://169.254.169.254/latest/meta-data", 403, "link-local address"),
    ("http://[fe80::1]/a.jpg", 403, "link-local address"),
    ("http://0.0.0.0/a.jpg", 403, "unspecified address"),
    ("http://224.0.0.1/a.jpg", 403, "multicast address"),
    ("http://100.64.0.1/a.jpg", 403, "non-public address"),
    ("http://no-such-host.invalid/a.jpg", 400, "cannot resolve host 'no-such-host.invalid'"),
])
def test_refused_urls(client: TestClient, url: str, status: int, words: str) -> None:
    got, body = fetch(client, url)
    assert got == status and words in body["detail"], body
    if status == 403:
        assert "--allow-private-urls" in body["detail"], "the refusal says how to allow it"


def test_default_policy_refuses_this_machine(site: str) -> None:
    """Without the test's relaxation the same local server is refused, by address and by name."""
    with pytest.raises(WebRequestError) as e:
        fetch_image_bytes(site + "/photo.jpg", UrlPolicy())
    assert e.value.status == 403 and "127.0.0.1 is a loopback address" in e.value.message
    with pytest.raises(WebRequestError) as e:
        checked_addresses("localhost", 80, UrlPolicy(), 5.0)
    assert "localhost resolves to 127.0.0.1, which is a loopback address" in e.value.message
    assert len(fetch_image_bytes(site + "/photo.jpg", UrlPolicy(allow_private=True))) == len(ImageSite.jpeg)
