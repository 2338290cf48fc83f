"""The only ROS-aware code of the library, for the nodes in ``nodes/`` and the tools that read bags.
It sits above the pipeline (which knows nothing of ROS) and below the tools (``files``, ``evaluation``).

- ``messages``: the one module that builds or reads ROS messages (Image, CompressedImage, CameraInfo,
  FaceEmotionArray, /diagnostics);
- ``listener``: the emoji_anonymizer node's logic without rospy (``Listener``: the stages, counters,
  /diagnostics values and fail-closed), which ``nodes/emoji_anonymizer`` wires to topics;
- ``health``: ``StreamHealth``, the listener's /diagnostics level over a time window and its throttled log;
- ``bags``: open, inspect, read and write ROS 1 bags (imports rospy through rosbag: tools only);
- ``processes``: roscore on a free port, waiting for a graph's subscriptions, rosrun's arguments.

Importing this package imports nothing; each module loads ROS's Python packages when imported."""
