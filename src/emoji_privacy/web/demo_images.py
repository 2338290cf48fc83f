"""Demo images the website offers: public-domain / CC0 photos that ship with scikit-image,
and a group scene generated from one of them. Nothing is downloaded."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DemoImage:
    name: str
    title: str
    credit: str
    make: Callable[[], np.ndarray]


def _astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _cameraman() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)


def _group() -> np.ndarray:
    from ..sources import DemoScene

    return DemoScene(640, 480).frame(0, 150)


def _cat() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)


DEMO_IMAGES: dict[str, DemoImage] = {d.name: d for d in (
    DemoImage("astronaut", "Astronaut (one face)", "Eileen Collins, NASA; public domain (scikit-image data)",
              _astronaut),
    DemoImage("cameraman", "Cameraman (one face, gray)", "Lav Varshney; CC0 (scikit-image data)", _cameraman),
    DemoImage("group", "Group scene (three faces)", "generated from the astronaut photo (the package's demo scene)",
              _group),
    DemoImage("cat", "Chelsea the cat (no human face)", "Stefan van der Walt; CC0 (scikit-image data)", _cat),
)}


@functools.lru_cache(maxsize=len(DEMO_IMAGES))
def demo_image(name: str) -> np.ndarray:
    """The BGR pixels of demo image ``name`` (KeyError for an unknown name). Callers must not modify it."""
    img = DEMO_IMAGES[name].make()
    img.flags.writeable = False
    return img
