"""The demo website: try the anonymizer from a browser on demo images, uploads, image URLs,
the browser's webcam and, when a ROS graph runs, the robot's own /anonymized/image.

`python -m emoji_privacy.web` (or `rosrun emoji_privacy web_demo`) serves it on
http://127.0.0.1:8080. Only anonymized images leave the server; originals stay in memory.
Nothing here imports rospy at import time: the ROS view is loaded lazily (ros_bridge).
"""

from .settings import WebSettings

__all__ = ["WebSettings"]
