"""The package facade and its imports: `from emoji_privacy import Anonymizer` works, the package stays lazy, and
its layers import downward only (ros never imports evaluation; only the bag reader pulls rospy in)."""

import subprocess
import sys

import pytest
from data_helpers import REPO

import emoji_privacy


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_facade_names_resolve_to_the_real_classes() -> None:
    from emoji_privacy.config import PipelineConfig
    from emoji_privacy.errors import ModelFileError
    from emoji_privacy.pipeline import Anonymizer, FaceResult

    assert emoji_privacy.Anonymizer is Anonymizer and emoji_privacy.FaceResult is FaceResult
    assert emoji_privacy.PipelineConfig is PipelineConfig and emoji_privacy.ModelFileError is ModelFileError
    assert set(emoji_privacy.__all__) <= set(dir(emoji_privacy))
    with pytest.raises(AttributeError, match="no attribute 'Anonymiser'"):
        emoji_privacy.Anonymiser  # noqa: B018


def test_importing_the_package_and_configs_loads_no_model_runtime() -> None:
    """Nodes that only need messages or configs must not pay for torch (seconds, hundreds of MB)."""
    res = _run("import sys, emoji_privacy, emoji_privacy.config, emoji_privacy.errors\n"
               "heavy = sorted(m for m in ('torch', 'onnxruntime', 'cv2.dnn') if m in sys.modules)\n"
               "assert not heavy, heavy\n"
               "from emoji_privacy import Anonymizer\n"
               "assert Anonymizer.__module__ == 'emoji_privacy.pipeline'\n"
               "assert 'torch' not in sys.modules  # only a model export the cache lacks needs it\n")
    assert res.returncode == 0, res.stderr


def test_the_laziness_check_can_fail() -> None:
    """The same check fires when the package imports torch eagerly."""
    res = _run("import sys, torch, emoji_privacy\n"
               "heavy = sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules)\n"
               "assert not heavy, heavy\n")
    assert res.returncode != 0 and "torch" in res.stderr


def test_ros_modules_do_not_import_evaluation() -> None:
    """ros sits below evaluation (evaluation reads bags through ros, never the reverse)."""
    pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
    code = ("import sys\nimport emoji_privacy.ros.messages, emoji_privacy.ros.bags, emoji_privacy.ros.processes\n"
            "assert not [m for m in sys.modules if m.startswith('emoji_privacy.evaluation')], 'evaluation imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr


def test_library_does_not_import_rospy() -> None:
    """Only bag_io (loaded by the tools' entry points) pulls rospy in, through rosbag."""
    pytest.importorskip("rosbag", reason="ROS 1 (rosbag) is not installed")
    modules = ["pipeline", "tracking", "evaluation.records", "evaluation.leaks", "evaluation.report",
               "evaluation.bag", "evaluation.video_to_bag", "ros.messages", "config", "sources"]
    code = ("import sys\n" + "".join(f"import emoji_privacy.{m}\n" for m in modules)
            + "assert 'rospy' not in sys.modules, 'rospy imported'\n"
            + "import emoji_privacy.ros.bags\nassert 'rospy' in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
