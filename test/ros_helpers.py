"""Helpers of the tests that talk to a real ROS graph: collect a topic's messages, wait for a subscriber."""

from __future__ import annotations

import threading
import time


class Collector:
    """Keeps every message of a topic, keyed by header stamp."""

    def __init__(self, topic: str, msg_type: type) -> None:
        import rospy

        self.msgs: list = []
        self.lock = threading.Lock()
        self.sub = rospy.Subscriber(topic, msg_type, self._cb, queue_size=1000, buff_size=2 ** 27)

    def _cb(self, msg) -> None:
        with self.lock:
            self.msgs.append(msg)

    def by_stamp(self) -> dict:
        with self.lock:
            return {m.header.stamp.to_nsec(): m for m in self.msgs}

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.msgs) >= n:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.sub.unregister()


def wait_connected(pub, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while pub.get_num_connections() == 0:
        assert time.time() < deadline, f"nobody subscribed to {pub.resolved_name}"
        time.sleep(0.05)
