"""``python -m emoji_privacy.evaluation TOOL ...``: the evaluation tools without ROS's rosrun
(TOOL: video_to_bag, bag, emotion, landmarks; the same as the nodes video_to_bag, evaluate_bag,
evaluate_emotion, evaluate_landmarks; and crowd, which makes crowd clips with ground truth)."""

import sys

from .cli import crowd_main, evaluate_bag_main, evaluate_emotion_main, evaluate_landmarks_main, video_to_bag_main

TOOLS = {"video_to_bag": video_to_bag_main, "bag": evaluate_bag_main, "emotion": evaluate_emotion_main,
         "landmarks": evaluate_landmarks_main, "crowd": crowd_main}

if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
    print(f"usage: python -m emoji_privacy.evaluation {{{','.join(TOOLS)}}} [--help | ARGS...]", file=sys.stderr)
    sys.exit(2)
sys.exit(TOOLS[sys.argv[1]](sys.argv[2:]))
