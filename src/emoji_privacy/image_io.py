"""Decode raw image buffers (as carried by sensor_msgs/Image) into BGR arrays, and back.

This is the project's own narrow conversion layer (no cv_bridge needed in the library) so
that every encoding a camera driver may publish is checked the same way: the size, step
and data length are validated before any pixel is touched, and anything unexpected is an
ImageFormatError that says what is wrong.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import ImageFormatError

# encoding -> (channels, numpy dtype)
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "bgr8": (3, np.dtype(np.uint8)),
    "rgb8": (3, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
"""Image files every tool reads (folders, datasets, annotations): what OpenCV decodes, most common first."""

MAX_PIXELS = 8192 * 8192
"""Frames larger than this are refused rather than risking memory exhaustion."""

MIN_SIDE = 1


def check_size(height: int, width: int, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse empty and absurdly large frames before allocating anything."""
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ImageFormatError(f"empty image ({width}x{height}); the camera driver sent no pixels")
    if height * width > max_pixels:
        raise ImageFormatError(
            f"image {width}x{height} exceeds the limit of {max_pixels} pixels; "
            "lower the camera resolution or raise ~max_pixels")


def decode_raw(data: bytes | bytearray | memoryview | np.ndarray, height: int, width: int, encoding: str,
               step: int, is_bigendian: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Turn a raw image buffer into a contiguous BGR uint8 array (H, W, 3)."""
    if encoding not in ENCODINGS:
        raise ImageFormatError(
            f"unsupported image encoding '{encoding}'; publish one of {', '.join(ENCODINGS)} "
            "(e.g. with image_proc or a driver setting)")
    check_size(height, width, max_pixels)
    channels, dtype = ENCODINGS[encoding]
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f"{encoding} image {width}x{height}: step {step} is smaller than one row ({row_bytes} bytes)")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    need = step * (height - 1) + row_bytes
    if buf.size < need:
        raise ImageFormatError(
            f"{encoding} image {width}x{height} step {step}: data has {buf.size} bytes, needs {need}")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    img = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    if dtype.itemsize > 1:
        if bool(is_bigendian) == np.little_endian:  # data order differs from this machine's
            img = img.byteswap()
        img = (img >> 8).astype(np.uint8)  # keep the 8 most significant bits
    return to_bgr(img, encoding)


def to_bgr(img: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an (H, W, C) uint8 image of a known encoding to BGR."""
    if img.ndim == 2:
        img = img[:, :, None]
    c = img.shape[2]
    if c == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if encoding == "rgb8":
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if encoding == "rgba8":
        return cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
    if encoding == "bgra8":
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def as_bgr(img: np.ndarray) -> np.ndarray:
    """Gray or BGRA arrays -> BGR; BGR passes through (for callers that accept any of them)."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def encode_raw(img_bgr: np.ndarray, encoding: str = "bgr8") -> tuple[bytes, int, int, int]:
    """BGR array -> (data, height, width, step) in ``encoding`` (used by tests and tools)."""
    if encoding not in ENCODINGS:
        raise ImageFormatError(f"unsupported image encoding '{encoding}'")
    channels, dtype = ENCODINGS[encoding]
    conv = {
        "rgb8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_BGR2RGBA, "bgra8": cv2.COLOR_BGR2BGRA,
        "mono8": cv2.COLOR_BGR2GRAY, "8UC1": cv2.COLOR_BGR2GRAY, "mono16": cv2.COLOR_BGR2GRAY,
        "16UC1": cv2.COLOR_BGR2GRAY,
    }
    out = cv2.cvtColor(img_bgr, conv[encoding]) if encoding in conv else img_bgr
    if dtype.itemsize == 2:
        out = out.astype(np.uint16) * 257
    out = np.ascontiguousarray(out)
    h, w = out.shape[:2]
    return out.tobytes(), h, w, w * channels * dtype.itemsize


def decode_compressed(data: bytes | bytearray | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG bytes (sensor_msgs/CompressedImage) -> BGR array."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        raise ImageFormatError("compressed image has no data")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageFormatError(f"compressed image ({buf.size} bytes) is not a decodable JPEG or PNG")
    check_size(img.shape[0], img.shape[1], max_pixels)
    return img


def encode_png(img_bgr: np.ndarray) -> bytes:
    """BGR array -> PNG bytes (lossless CompressedImage, used by the bag tools)."""
    ok, buf = cv2.imencode(".png", img_bgr)
    if not ok:
        raise ImageFormatError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(img_bgr: np.ndarray, quality: int = 85) -> bytes:
    """BGR array -> JPEG bytes for /anonymized/image/compressed."""
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageFormatError("JPEG encoding failed")
    return buf.tobytes()
