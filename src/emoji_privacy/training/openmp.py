"""OpenMP's wait policy, for a process that does nothing but train.

Between two parallel regions torch's OpenMP workers either sleep (passive, the default) or spin
(active). When other processes shared the cores, passive barriers made a training step 10x slower
here (2.0 against 0.21 s per batch of 128 on 2 cores beside a niced busy loop). But a spinning
worker also spins while its process waits for anything else, and every child process inherits the
setting: set by the library at import, it made a federated simulation's server (evaluating once per
round, idle in between) burn a whole core for the entire run, and its robots got half the CPU. So
only the training command asks for it, for its own process, before torch is loaded.
"""

from __future__ import annotations

import os
import sys

__all__ = ["spin_openmp_workers"]


def spin_openmp_workers() -> bool:
    """Ask OpenMP to busy-wait in this process; False when torch is loaded already (too late to take effect)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    return True
