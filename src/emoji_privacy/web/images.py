"""Images that arrive over HTTP: recognise the format from the bytes, refuse decompression
bombs from the header before any pixel is decoded, decode in memory, encode the answer.

Nothing here writes to disk or logs image content. Decoding with OpenCV applies the JPEG
EXIF orientation, and re-encoding drops all metadata (GPS position, camera serial, ...).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .. import image_io
from ..errors import ImageFormatError
from ..image_io import as_bgr
from .settings import WebRequestError

FORMATS = ("jpeg", "png", "webp")
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def sniff_format(data: bytes) -> str:
    """'jpeg', 'png' or 'webp' from the first bytes; anything else is refused with 415."""
    if not data:
        raise WebRequestError(400, "the request carries no image: send a JPEG, PNG or WebP file")
    fmt = image_io.sniff_format(data)
    if fmt is not None:
        return fmt
    if data[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or data[:2] == b"BM":
        raise WebRequestError(415, "GIF, BMP and TIFF images are not taken: send a JPEG, PNG or WebP image")
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        raise WebRequestError(415, "HEIC/AVIF images are not taken: export the photo as JPEG first")
    what = "not an image" if b"\x00" in data[:512] else "text (a web page or a document?)"
    raise WebRequestError(415, f"this file is {what}: send a JPEG, PNG or WebP image")


BOMB_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""Pillow's decompression-bomb limit, which this check used to be: above it the answer names the bomb."""


def header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) read from the image header only (image_io.header_size: no pixel decoding)."""
    try:
        width, height = image_io.header_size(data, fmt)
    except ImageFormatError as e:
        raise WebRequestError(422, f"the {fmt.upper()} file is damaged or truncated (its header cannot be "
                                   "read)") from e
    if width * height > BOMB_PIXELS:
        raise WebRequestError(413, f"the {fmt.upper()} header declares a huge image (Image size ({width * height} "
                                   f"pixels) exceeds limit of {BOMB_PIXELS} pixels): refused as a possible "
                                   "decompression bomb")
    return width, height


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes of a JPEG/PNG/WebP -> BGR array, refusing images of more than ``max_pixels``."""
    fmt = sniff_format(data)
    width, height = header_size(data, fmt)
    if width * height > max_pixels:
        raise WebRequestError(413, f"the image is {width}x{height} ({width * height / 1e6:.1f} megapixels), more than "
                                   f"the limit of {max_pixels / 1e6:.1f}: scale it down first")
    if width < 1 or height < 1:
        raise WebRequestError(422, f"the {fmt.upper()} header declares an empty image ({width}x{height})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise WebRequestError(422, f"the {fmt.upper()} file is damaged or truncated: it cannot be decoded")
    return as_bgr(img)


def fit_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Scale down so that the longer side is at most ``max_side`` (never up): the size of an answer.

    Only for anonymized images (see engine.fit_result): an original scaled down before detection
    loses its small faces.
    """
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def encode_image(img: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """BGR array -> JPEG or PNG bytes, without any metadata."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", img, params)
    if not ok:
        raise WebRequestError(500, f"{fmt.upper()} encoding of the anonymized image failed")
    return buf.tobytes()
