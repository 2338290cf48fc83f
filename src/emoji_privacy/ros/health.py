"""What a stream's /diagnostics status and its failure log say, decided over a time window.

Plain Python (no rospy): the listener feeds it what happened to each frame and publishes
``StreamHealth.status()``; tests drive it with their own clock. The rules:

- STALE when no input frame arrived for ``stale_after`` seconds (or none yet): a silent camera is
  not "anonymizing at 0 Hz";
- ERROR when frames failed within ``failure_window`` seconds and none was anonymized in it;
- WARN when some frames failed within the window; OK again once the window holds no failure;
- failures are logged as what was actually done (a masked frame published, or nothing and why),
  at most once per ``log_period`` seconds, with a count of the failures in between.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

OK, WARN, ERROR, STALE = 0, 1, 2, 3
"""diagnostic_msgs/DiagnosticStatus levels."""


class StreamHealth:
    def __init__(self, failure_window: float = 10.0, stale_after: float = 5.0, log_period: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_window, self.stale_after, self.log_period = failure_window, stale_after, log_period
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_input: float | None = None
        self._delivered: deque[float] = deque()  # times of anonymized frames within the window
        self._failed: deque[float] = deque()  # times of failed frames within the window
        self.last_error = ""
        self._last_error_at: float | None = None
        self._pending: Counter[str] = Counter()  # actions of failures not logged yet
        self._last_log: float | None = None

    def received(self) -> None:
        """An input frame arrived."""
        with self._lock:
            self._last_input = self._clock()

    def delivered(self) -> None:
        """A frame was anonymized and published."""
        with self._lock:
            self._delivered.append(self._clock())

    def failed(self, error: str, action: str) -> str | None:
        """A frame failed closed with ``error``; ``action`` says what was published instead. Returns the log
        line to write now (None while rate-limited: the failure is counted into the next line)."""
        with self._lock:
            now = self._clock()
            self._failed.append(now)
            self.last_error, self._last_error_at = error, now
            self._pending[action] += 1
            return self._log_line(now, force=False)

    def pending_log(self) -> str | None:
        """The line for failures held back by the rate limit, once ``log_period`` has passed (call periodically)."""
        with self._lock:
            return self._log_line(self._clock(), force=False) if self._pending else None

    def _log_line(self, now: float, force: bool) -> str | None:
        if not force and self._last_log is not None and now - self._last_log < self.log_period:
            return None
        n = sum(self._pending.values())
        if n == 0:
            return None
        done = "; ".join(f"{k} ({v}x)" if v > 1 else k for k, v in self._pending.items())
        since = now - (self._started if self._last_log is None else self._last_log)
        head = "frame not anonymized" if n == 1 else f"{n} frames not anonymized in the last {since:.1f} s"
        self._pending.clear()
        self._last_log = now
        return f"{head} ({self.last_error}): {done}"

    def status(self) -> tuple[int, str, dict[str, str]]:
        """(level, summary, values) for /diagnostics now."""
        with self._lock:
            now = self._clock()
            for q in (self._delivered, self._failed):
                while q and now - q[0] > self.failure_window:
                    q.popleft()
            failed, delivered = len(self._failed), len(self._delivered)
            silent = now - (self._last_input if self._last_input is not None else self._started)
            values = {"window_s": f"{self.failure_window:g}", "failed_in_window": str(failed),
                      "anonymized_in_window": str(delivered), "input_silent_s": f"{silent:.1f}",
                      "last_error": self.last_error,
                      "last_error_age_s": "" if self._last_error_at is None else f"{now - self._last_error_at:.1f}"}
            if silent > self.stale_after:
                if self._last_input is None:
                    return STALE, f"no input frame yet ({silent:.0f} s since start)", values
                return STALE, f"no input frame for {silent:.1f} s", values
            if failed and not delivered:
                return ERROR, f"all {failed} frames of the last {self.failure_window:g} s failed closed: " \
                              f"{self.last_error}", values
            if failed:
                return WARN, f"{failed} of {failed + delivered} frames of the last {self.failure_window:g} s " \
                             f"failed closed: {self.last_error}", values
            return OK, "anonymizing", values
