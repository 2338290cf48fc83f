"""The one way this package opens an onnxruntime model (the detectors and the emotion networks).

Every stage of the robot's pipeline shares two cores with the others and with the camera driver, so
each session gets a fixed number of threads that sleep between frames instead of busy-waiting, and
runs on the CPU provider (the robot has no accelerator; a GPU build of onnxruntime must not change
what the tests measured).
"""

from __future__ import annotations

from typing import Any

__all__ = ["cpu_session"]


def cpu_session(model: bytes, threads: int) -> Any:
    """An onnxruntime CPU session of the serialized ``model`` on ``threads`` non-spinning threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
