"""emoji_privacy: see people without recording who they are.

A plain Python library (no rospy): detection, landmarks and alignment, emotion, emoji
rendering, tracking, and the `Anonymizer` pipeline that composes them. ROS nodes in
`nodes/` convert messages and call into it.
"""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 class order; every probability vector in the project uses it."""

__version__ = "0.1.0"
