"""Command line of the demo website: `python -m emoji_privacy.web [options]` or
`rosrun emoji_privacy web_demo [options]` (there `_port:=9000` works as `--port 9000`)."""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import PipelineConfig
from ..errors import ConfigError
from .settings import WebSettings

DEFAULTS = WebSettings()


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    ap = argparse.ArgumentParser(prog="python -m emoji_privacy.web", description=(
        "Serve the emoji_privacy demo website: demo images, uploads, image URLs, video clips, the browser's webcam "
        "and, when a ROS master runs, the robot's /anonymized/image. Only anonymized images leave the server."))
    ap.add_argument("--host", default=d.host, help="address to listen on (0.0.0.0: every interface; "
                                                   "the webcam needs localhost or HTTPS in the browser)")
    ap.add_argument("--port", type=int, default=d.port, help="TCP port")
    ap.add_argument("--config", default="", help="pipeline YAML such as config/default.yaml (default: built-in "
                                                  "defaults, the same values)")
    ap.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2 ** 20,
                    help="largest upload, fetched image or webcam frame in MiB")
    ap.add_argument("--max-megapixels", type=float, default=d.max_pixels / 1e6,
                    help="larger images are refused from their header, before decoding (decompression bombs)")
    ap.add_argument("--max-side", type=int, default=d.max_side,
                    help="the returned size: anonymized images are scaled down to this longer side (faces are "
                         "found and covered at full resolution first)")
    ap.add_argument("--body-timeout", type=float, default=d.body_timeout_s,
                    help="seconds an upload may take to arrive (slower clients get 408)")
    ap.add_argument("--url-timeout", type=float, default=d.url_timeout_s, help="seconds to fetch an image URL")
    ap.add_argument("--allow-private-urls", action="store_true",
                    help="also fetch URLs on loopback, private and link-local addresses (off: refused)")
    ap.add_argument("--url-allow-network", action="append", default=[], metavar="CIDR",
                    help="a network exempt from that refusal, e.g. 10.1.0.0/16 (repeatable)")
    ap.add_argument("--max-live-sessions", type=int, default=d.max_live_sessions,
                    help="concurrent webcam connections")
    ap.add_argument("--max-video-mb", type=float, default=d.max_video_bytes / 2 ** 20,
                    help="largest video clip upload in MiB")
    ap.add_argument("--max-video-seconds", type=float, default=d.max_video_seconds,
                    help="longest video clip (from its container header when the upload arrives; frames are "
                         "counted while processing too)")
    ap.add_argument("--max-video-megapixels", type=float, default=d.max_video_pixels / 1e6,
                    help="largest video frame size (from the container header, before the clip is decoded)")
    ap.add_argument("--max-video-waiting", type=int, default=d.max_video_waiting,
                    help="clips waiting behind the one being processed (one at a time) before new ones get 503")
    ap.add_argument("--video-body-timeout", type=float, default=d.video_body_timeout_s,
                    help="seconds a clip upload may take to arrive")
    ap.add_argument("--video-keep-fetched", type=float, default=d.video_fetched_grace_s,
                    help="seconds an anonymized clip is kept after its MP4 was first sent in full")
    ap.add_argument("--video-keep", type=float, default=d.video_result_timeout_s,
                    help="seconds an anonymized clip is kept at most after processing ended")
    ap.add_argument("--video-tmp-dir", default=d.video_tmp_dir,
                    help="folder for the private job folders of clips (default: the system's temporary folder)")
    ap.add_argument("--ros", choices=("auto", "off"), default=d.ros,
                    help="auto: show the ROS graph's anonymized image whenever a master runs")
    ap.add_argument("--ros-image-topic", default=d.ros_image_topic, help="sensor_msgs/Image topic to show")
    ap.add_argument("--ros-faces-topic", default=d.ros_faces_topic, help="FaceEmotionArray topic to show")
    ap.add_argument("--ssl-certfile", default="", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--ssl-keyfile", default="", help="private key of --ssl-certfile")
    return ap


class QuietPolling(logging.Filter):
    """Keep the page's once-a-second ROS status polls out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "/api/ros/status" not in message and "/api/ros/faces" not in message


def ros_style_args(argv: list[str]) -> list[str]:
    """rosrun/roslaunch arguments: `_name:=value` -> `--name value`; `__name:=...` and topic remappings
    (`from:=to`) are left to rospy, which reads them from sys.argv itself."""
    out = []
    for a in argv:
        if ":=" not in a:
            out.append(a)
        elif a.startswith("_") and not a.startswith("__"):
            key, value = a[1:].split(":=", 1)
            out += [f"--{key.replace('_', '-')}", value]
    return out


def main(argv: list[str] | None = None, node_name: str = "emoji_privacy_web") -> int:
    args = build_parser().parse_args(ros_style_args(sys.argv[1:] if argv is None else argv))
    settings = WebSettings(
        host=args.host, port=args.port, max_upload_bytes=int(args.max_upload_mb * 2 ** 20),
        max_pixels=int(args.max_megapixels * 1e6), max_side=args.max_side, body_timeout_s=args.body_timeout,
        url_timeout_s=args.url_timeout, allow_private_urls=args.allow_private_urls,
        url_allow_networks=tuple(args.url_allow_network), max_live_sessions=args.max_live_sessions, ros=args.ros,
        ros_image_topic=args.ros_image_topic, ros_faces_topic=args.ros_faces_topic, ros_node_name=node_name,
        max_video_bytes=int(args.max_video_mb * 2 ** 20), max_video_seconds=args.max_video_seconds,
        max_video_pixels=int(args.max_video_megapixels * 1e6), max_video_waiting=args.max_video_waiting,
        video_body_timeout_s=args.video_body_timeout, video_fetched_grace_s=args.video_keep_fetched,
        video_result_timeout_s=args.video_keep, video_tmp_dir=args.video_tmp_dir)
    try:
        settings.validate()
        config = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("error: --ssl-certfile and --ssl-keyfile go together", file=sys.stderr)
        return 2
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(QuietPolling())
    scheme = "https" if args.ssl_certfile else "http"
    print(f"emoji_privacy web demo: {scheme}://{settings.host}:{settings.port}/ (API: /docs)", flush=True)
    uvicorn.run(create_app(settings, config), host=settings.host, port=settings.port,
                ws_max_size=settings.max_upload_bytes + 4096, timeout_keep_alive=5, timeout_graceful_shutdown=3,
                limit_concurrency=64, ssl_certfile=args.ssl_certfile or None, ssl_keyfile=args.ssl_keyfile or None)
    return 0
