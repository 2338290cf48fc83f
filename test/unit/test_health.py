"""/diagnostics over a time window (emoji_privacy.ros.health): recent failures WARN, then OK again; a silent input
is STALE, not "anonymizing at 0 Hz"; the failure log says what was actually published, rate-limited."""

from emoji_privacy.fail_closed import fail_closed_plan
from emoji_privacy.ros.health import ERROR, OK, STALE, WARN, StreamHealth


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_bad_frame_warns_only_while_recent() -> None:
    clock = Clock()
    h = StreamHealth(failure_window=10, stale_after=5, log_period=5, clock=clock)
    assert h.status()[0] == OK  # just started
    for _ in range(5):
        clock.t += 0.1
        h.received()
        h.delivered()
    assert h.status()[:2] == (OK, "anonymizing")
    h.received()
    h.failed("ImageFormatError: bad step", "masked 640x480 frame published")
    level, summary, values = h.status()
    assert level == WARN and "1 of 6 frames" in summary and "bad step" in summary, summary
    for _ in range(110):  # 11 s of good frames: the failure leaves the window
        clock.t += 0.1
        h.received()
        h.delivered()
    level, summary, values = h.status()
    assert level == OK, summary
    assert values["last_error"] == "ImageFormatError: bad step" and float(values["last_error_age_s"]) > 10


def test_all_failing_is_error_and_silence_is_stale() -> None:
    clock = Clock()
    h = StreamHealth(failure_window=10, stale_after=5, log_period=5, clock=clock)
    clock.t += 6
    level, summary, _ = h.status()
    assert level == STALE and "no input frame yet" in summary
    h.received()
    h.failed("ModelError: x", "masked 8x8 frame published")
    assert h.status()[0] == ERROR
    clock.t += 5.5  # the camera went silent
    level, summary, values = h.status()
    assert level == STALE and "no input frame for 5.5 s" in summary and values["input_silent_s"] == "5.5"
    h.received()
    h.delivered()
    assert h.status()[0] == WARN  # input again; the failure is still in the window
    clock.t += 10.5
    h.received()
    h.delivered()
    assert h.status()[0] == OK


def test_failure_log_is_rate_limited_and_says_what_was_done() -> None:
    clock = Clock()
    h = StreamHealth(failure_window=10, stale_after=5, log_period=5, clock=clock)
    first = h.failed("ImageFormatError: empty image (0x0)", "nothing published: the frame is empty (0x0)")
    assert first == ("frame not anonymized (ImageFormatError: empty image (0x0)): nothing published: the frame "
                     "is empty (0x0)")
    clock.t += 1
    assert h.failed("E: a", "masked 4x4 frame published") is None
    assert h.failed("E: b", "masked 4x4 frame published") is None
    assert h.pending_log() is None  # still within the period
    clock.t += 4.5
    line = h.pending_log()
    assert line == "2 frames not anonymized in the last 5.5 s (E: b): masked 4x4 frame published (2x)"
    assert h.pending_log() is None


def test_fail_closed_plan_names_what_is_published() -> None:
    assert fail_closed_plan("mask", (480, 640), 10 ** 6) == (True, "masked 640x480 frame published")
    assert fail_closed_plan("drop", (480, 640), 10 ** 6)[0] is False
    assert fail_closed_plan("mask", (0, 0), 10 ** 6) == (False, "nothing published: the frame is empty (0x0)")
    mask, action = fail_closed_plan("mask", None, 10 ** 6)
    assert not mask and "compressed frame's size is unknown" in action
    mask, action = fail_closed_plan("mask", (20000, 20000), 10 ** 6)
    assert not mask and "more than ~output/max_pixels" in action
