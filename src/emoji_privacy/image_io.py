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


class ImageTooLargeError(ImageFormatError):
    """An image larger than the pixel limit (found from its header when it is compressed: nothing was decoded)."""


def check_size(height: int, width: int, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse empty and absurdly large frames before allocating anything."""
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ImageFormatError(f"empty image ({width}x{height}); the camera driver sent no pixels")
    if height * width > max_pixels:
        raise ImageTooLargeError(
            f"image {width}x{height} exceeds the limit of {max_pixels} pixels; "
            "lower the camera resolution or raise the listener's ~output/max_pixels")


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


HEADER_FORMATS = ("jpeg", "png", "webp")
"""Compressed formats whose size ``header_size`` reads from the header alone."""

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def sniff_format(data: bytes | bytearray | memoryview) -> str | None:
    """'jpeg', 'png' or 'webp' from the first bytes, or None for anything else."""
    head = bytes(data[:12])
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(data: bytes | bytearray | memoryview, fmt: str | None = None) -> tuple[int, int]:
    """(width, height) of a JPEG, PNG or WebP read from its header alone, without decoding any pixel: the
    check against decompression bombs (a few hundred kB that declare 20000x20000 pixels) before decoding.

    JPEG: the SOF segment, and every segment up to the scan must be present (a file cut inside its tables
    is refused here, as Pillow does). PNG: IHDR. WebP: the VP8X, VP8L or VP8 frame header. ImageFormatError
    when the header is missing, damaged or of another format.
    """
    b = bytes(data)
    fmt = fmt or sniff_format(b)
    if fmt not in HEADER_FORMATS or sniff_format(b) != fmt:
        name = fmt.upper() if fmt else "JPEG, PNG or WebP"
        raise ImageFormatError(f"not a {name} file (its first bytes do not match)")
    what = f"{fmt.upper()} header is damaged or truncated"
    if fmt == "png":
        if len(b) < 24 or b[12:16] != b"IHDR":
            raise ImageFormatError(f"{what} (no IHDR chunk)")
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if fmt == "webp":
        chunk = b[12:16]
        if chunk == b"VP8X" and len(b) >= 30:
            return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
        if chunk == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:
            bits = int.from_bytes(b[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":
            return int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
        raise ImageFormatError(f"{what} (no VP8X, VP8L or VP8 frame header)")
    pos, size = 2, None  # JPEG: walk the marker segments after SOI up to the first scan (SOS)
    while True:
        if pos >= len(b) or b[pos] != 0xFF:
            raise ImageFormatError(f"{what} (it ends or breaks before the image data)")
        while pos < len(b) and b[pos] == 0xFF:  # a marker, after any fill bytes
            pos += 1
        if pos >= len(b):
            raise ImageFormatError(f"{what} (it ends before the image data)")
        marker = b[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            continue
        if marker == 0xD9 or pos + 2 > len(b):
            raise ImageFormatError(f"{what} (it ends before the image data)")
        length = int.from_bytes(b[pos:pos + 2], "big")
        if length < 2 or pos + length > len(b):
            raise ImageFormatError(f"{what} (a segment of {length} bytes does not fit)")
        if marker in _JPEG_SOF:
            if length < 7:
                raise ImageFormatError(f"{what} (short SOF segment)")
            size = (int.from_bytes(b[pos + 5:pos + 7], "big"), int.from_bytes(b[pos + 3:pos + 5], "big"))
        if marker == 0xDA:
            if size is None:
                raise ImageFormatError(f"{what} (no SOF segment before the image data)")
            return size
        pos += length


def decode_compressed(data: bytes | bytearray | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG/WebP bytes (sensor_msgs/CompressedImage) -> BGR array.

    The size is read from the header and checked against ``max_pixels`` BEFORE decoding (ImageTooLargeError),
    so a small file declaring a huge image costs nothing; formats without a readable header are refused.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        raise ImageFormatError("compressed image has no data")
    fmt = sniff_format(buf[:12].tobytes())
    if fmt is None:
        raise ImageFormatError(f"compressed image ({buf.size} bytes) is not a decodable JPEG, PNG or WebP file "
                               "(its first bytes are none of theirs)")
    width, height = header_size(buf.tobytes() if fmt == "jpeg" else buf[:32].tobytes(), fmt)
    check_size(height, width, max_pixels)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageFormatError(f"compressed image ({buf.size} bytes) is not a decodable {fmt.upper()}")
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
