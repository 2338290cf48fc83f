"""Fail-closed: what a frame that could not be anonymized becomes, for every writer of frames.

The listener, the video tool and the bag sanitizer all replace such a frame by the same striped mask
at the frame's size (``masked_frame``), or publish nothing when no size is safe (``fail_closed_plan``);
none of them ever falls back to the input frame. The stripes show that masking happened (a plain fill
could be mistaken for a dark scene). Plain numpy: it needs no model, so it works whatever else failed."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def mask_in_place(frame: np.ndarray) -> None:
    """Overwrite the whole ``frame`` with a gray diagonal stripe pattern in place."""
    frame[...] = 96
    try:
        h, w = frame.shape[:2]
        stripes = ((np.arange(h)[:, None] + np.arange(w)[None, :]) // 24) % 2 == 1
        frame[stripes] = 160
    except Exception:  # noqa: BLE001 - pattern is cosmetic; the frame is already overwritten
        log.exception("privacy stripe pattern failed; frame left plain gray")


def masked_frame(height: int, width: int) -> np.ndarray:
    """A new (height, width, 3) BGR frame holding only the mask: what replaces a frame that failed."""
    frame = np.empty((height, width, 3), np.uint8)
    mask_in_place(frame)
    return frame


def fail_closed_plan(on_error: str, size: tuple[int, int] | None, max_pixels: int) -> tuple[bool, str]:
    """What a failed frame becomes: (publish a masked frame of ``size``?, what was done, as it is logged).

    ``size`` is the (height, width) to mask at: the raw frame's own, or for a compressed frame the last
    decoded one (None before any decoded: unknown, so nothing can be published)."""
    if on_error != "mask":
        return False, "nothing published (~output/on_error is drop)"
    if size is None:
        return False, "nothing published: a compressed frame's size is unknown until one decodes"
    h, w = size
    if h * w <= 0:
        return False, f"nothing published: the frame is empty ({w}x{h})"
    if h * w > max_pixels:
        return False, f"nothing published: {w}x{h} is more than ~output/max_pixels ({max_pixels})"
    return True, f"masked {w}x{h} frame published"
