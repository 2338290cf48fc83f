"""Settings of the demo website: where it listens and the limits it enforces on requests."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ..errors import ConfigError, EmojiPrivacyError


class WebRequestError(EmojiPrivacyError):
    """A request the website refuses or cannot serve: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(what: str, size: int | None, limit: int) -> WebRequestError:
    """413 saying how large ``what`` is (when known) against the limit, in bytes and MB (2**20 bytes)."""
    actual = f" ({size:,} bytes)" if size is not None else ""
    return WebRequestError(413, f"{what}{actual} is larger than the limit of {limit:,} bytes ({limit / 2 ** 20:g} MB)")


@dataclass
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 10 * 1024 * 1024  # uploads, fetched URLs and webcam frames
    max_pixels: int = 40_000_000  # refused from the header before decoding; the bound on work (full-size detection)
    max_side: int = 1600  # the returned size: anonymized images are scaled down to this longer side (after detection)
    body_timeout_s: float = 30.0  # an upload must arrive within this time (slow clients get 408)
    url_timeout_s: float = 10.0  # total time to fetch an image URL, redirects included
    url_max_redirects: int = 3
    allow_private_urls: bool = False  # fetch loopback, private and link-local addresses too
    url_allow_networks: tuple[str, ...] = ()  # networks exempt from the private-address refusal
    max_pending: int = 8  # requests waiting for the pipeline before new ones get 503
    max_live_sessions: int = 4  # concurrent webcam WebSockets
    live_idle_timeout_s: float = 60.0  # a webcam WebSocket that sends nothing for this long is closed
    jpeg_quality: int = 90  # of the returned images
    ros: str = "auto"  # auto: show /anonymized/image when a ROS master runs; off: never touch ROS
    ros_image_topic: str = "/anonymized/image"
    ros_faces_topic: str = "/anonymized/faces"
    ros_node_name: str = "emoji_privacy_web"
    # Video clips (routes_video, video_jobs): refused from the body's size and the container header before queuing.
    max_video_bytes: int = 100 * 1024 * 1024
    max_video_seconds: float = 60.0
    max_video_pixels: int = 1920 * 1080  # per frame: 1080p (Full HD)
    max_video_waiting: int = 3  # clips waiting behind the one being processed before new ones get 503
    video_body_timeout_s: float = 300.0  # a clip upload must arrive within this time
    video_fetched_grace_s: float = 120.0  # a result is deleted this long after its MP4 was first sent in full
    video_result_timeout_s: float = 600.0  # ... and at the latest this long after processing ended
    video_tmp_dir: str = ""  # where the private job folders go ("": the system's temporary folder)

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that makes no sense."""
        checks = [
            (1 <= self.port <= 65535, "port must be in 1..65535"),
            (self.max_upload_bytes >= 1024, "max_upload_bytes must be >= 1024"),
            (self.max_pixels >= 64 * 64, "max_pixels must be >= 4096"),
            (self.max_side >= 64, "max_side must be >= 64"),
            (self.body_timeout_s > 0 and self.url_timeout_s > 0, "timeouts must be > 0"),
            (self.live_idle_timeout_s > 0, "live_idle_timeout_s must be > 0"),
            (self.url_max_redirects >= 0, "url_max_redirects must be >= 0"),
            (self.max_pending >= 1 and self.max_live_sessions >= 0, "max_pending must be >= 1, max_live_sessions >= 0"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
            (self.ros in ("auto", "off"), "ros must be 'auto' or 'off'"),
            (self.max_video_bytes >= 1024, "max_video_bytes must be >= 1024"),
            (self.max_video_seconds > 0, "max_video_seconds must be > 0"),
            (self.max_video_pixels >= 64 * 64, "max_video_pixels must be >= 4096"),
            (self.max_video_waiting >= 0, "max_video_waiting must be >= 0"),
            (self.video_body_timeout_s > 0, "video_body_timeout_s must be > 0"),
            (0 < self.video_fetched_grace_s <= self.video_result_timeout_s,
             "video_fetched_grace_s must be > 0 and <= video_result_timeout_s"),
            (not self.video_tmp_dir or os.path.isdir(self.video_tmp_dir), "video_tmp_dir must be an existing folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"web setting: {message}")
        self.allowed_networks()

    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [ipaddress.ip_network(n, strict=False) for n in self.url_allow_networks]
        except ValueError as e:
            raise ConfigError(f"web setting url_allow_networks: {e} (give networks such as 10.0.0.0/8)") from e
