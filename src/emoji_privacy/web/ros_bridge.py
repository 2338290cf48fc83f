"""The optional ROS view of the website: the newest /anonymized/image and /anonymized/faces of a
running ROS graph. rospy and the message classes are imported only when the view starts (in its
own thread), so the library and the website work without ROS; all message conversion goes
through ros_messages. Only the anonymizer's output topics are read: no raw camera image."""

from __future__ import annotations

import logging
import threading
import time

from ..pipeline import FaceResult

log = logging.getLogger(__name__)

START_HINT = "start one, e.g. `roslaunch emoji_privacy camera.launch source:=demo`; this view connects by itself"


class RosLiveView:
    """Subscribes (once a master answers) and keeps the newest anonymized frame and faces."""

    def __init__(self, image_topic: str, faces_topic: str, node_name: str = "emoji_privacy_web",
                 jpeg_quality: int = 80, poll_s: float = 2.0) -> None:
        self.image_topic, self.faces_topic = image_topic, faces_topic
        self.node_name, self.jpeg_quality, self.poll_s = node_name, jpeg_quality, poll_s
        self.master_uri = ""
        self.reason = "the ROS view is starting"
        self.subscribed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._image_msg: object | None = None
        self._faces_msg: object | None = None
        self._seq = 0
        self._last_frame_time = 0.0
        self._jpeg_cache: tuple[int, bytes, int, int] | None = None
        self._subs: list = []
        self._thread = threading.Thread(target=self._run, name="ros-live-view", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for sub in self._subs:
            sub.unregister()
        self._subs.clear()

    def _run(self) -> None:
        try:
            import rosgraph
        except ImportError:
            self.reason = "ROS 1 is not installed here (rosgraph cannot be imported)"
            return
        self.master_uri = rosgraph.get_master_uri()
        while not rosgraph.is_master_online(self.master_uri):
            self.reason = f"no ROS master at {self.master_uri}: {START_HINT}"
            if self._stop.wait(self.poll_s):
                return
        try:
            import rospy
            from sensor_msgs.msg import Image

            from emoji_privacy.msg import FaceEmotionArray
        except ImportError as e:
            self.reason = f"the ROS messages cannot be imported ({e}): source build/setup.bash first"
            return
        if not rospy.core.is_initialized():
            rospy.init_node(self.node_name, anonymous=self.node_name == "emoji_privacy_web", disable_signals=True)
        self._subs = [rospy.Subscriber(self.image_topic, Image, self._on_image, queue_size=1, buff_size=2 ** 26),
                      rospy.Subscriber(self.faces_topic, FaceEmotionArray, self._on_faces, queue_size=1)]
        self.subscribed = True
        self.reason = f"connected to {self.master_uri}; waiting for frames on {self.image_topic}"
        log.info("ROS view: subscribed to %s and %s", self.image_topic, self.faces_topic)

    def _on_image(self, msg: object) -> None:
        with self._lock:
            self._image_msg = msg
            self._seq += 1
            self._last_frame_time = time.monotonic()

    def _on_faces(self, msg: object) -> None:
        with self._lock:
            self._faces_msg = msg

    def status(self) -> dict[str, object]:
        with self._lock:
            frames, last = self._seq, self._last_frame_time
        age = time.monotonic() - last if frames else None
        streaming = self.subscribed and age is not None and age < 5.0
        reason = self.reason
        if self.subscribed and frames and not streaming:
            reason = f"no frame on {self.image_topic} for {age:.0f} s (is the anonymizer running?)"
        return {"streaming": streaming, "subscribed": self.subscribed, "master_uri": self.master_uri,
                "image_topic": self.image_topic, "faces_topic": self.faces_topic, "frames": frames,
                "last_frame_age_s": None if age is None else round(age, 2), "message": "streaming" if streaming
                else reason}

    def jpeg_after(self, seq: int) -> tuple[int, bytes, int, int] | None:
        """(seq, JPEG, width, height) of the newest frame if it is newer than ``seq``, else None."""
        from .. import image_io
        from ..ros.messages import image_to_bgr

        with self._lock:
            msg, newest, cached = self._image_msg, self._seq, self._jpeg_cache
        if msg is None or newest <= seq:
            return None
        if cached is None or cached[0] != newest:
            bgr = image_to_bgr(msg)
            cached = (newest, image_io.encode_jpeg(bgr, self.jpeg_quality), bgr.shape[1], bgr.shape[0])
            with self._lock:
                self._jpeg_cache = cached
        return cached

    def faces(self) -> tuple[float | None, list[FaceResult]]:
        """(header stamp in seconds, faces) of the newest /anonymized/faces message."""
        from ..ros.messages import faces_from_message

        with self._lock:
            msg = self._faces_msg
        if msg is None:
            return None, []
        return msg.header.stamp.to_sec(), faces_from_message(msg)
