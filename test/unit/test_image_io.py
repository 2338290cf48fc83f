"""Decoding every supported encoding, and clear errors for everything else."""

import cv2
import numpy as np
import pytest
from image_helpers import png_bomb, png_file

from emoji_privacy import image_io
from emoji_privacy.errors import ImageFormatError


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "8UC3"])
def test_color_round_trip(astronaut, encoding) -> None:
    data, h, w, step = image_io.encode_raw(astronaut, encoding)
    assert np.array_equal(image_io.decode_raw(data, h, w, encoding, step), astronaut)


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "8UC1", "16UC1"])
def test_mono_round_trip(astronaut, encoding) -> None:
    data, h, w, step = image_io.encode_raw(astronaut, encoding)
    out = image_io.decode_raw(data, h, w, encoding, step)
    assert out.shape == astronaut.shape and np.array_equal(out[..., 0], out[..., 2])


def test_padded_rows_and_big_endian() -> None:
    img = np.arange(2 * 3, dtype=np.uint16).reshape(2, 3) * 1000
    padded = np.zeros((2, 4), np.uint16)
    padded[:, :3] = img
    be = padded.astype(">u2").tobytes()
    out = image_io.decode_raw(be, 2, 3, "mono16", 8, is_bigendian=True)
    assert np.array_equal(out[..., 0], (img >> 8).astype(np.uint8))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"encoding": "32FC1"}, "unsupported image encoding '32FC1'"),
    ({"height": 0}, "empty image"),
    ({"step": 5}, "step 5 is smaller than one row"),
    ({"data": b""}, "data has 0 bytes"),
    ({"height": 5000, "width": 20000}, "exceeds the limit"),
])
def test_bad_images_say_what_is_wrong(kwargs, message) -> None:
    args = {"data": bytes(4 * 4 * 3), "height": 4, "width": 4, "encoding": "bgr8", "step": 12}
    args.update(kwargs)
    with pytest.raises(ImageFormatError, match=message):
        image_io.decode_raw(**args)


def test_compressed(astronaut) -> None:
    jpeg = image_io.encode_jpeg(astronaut, 90)
    assert np.abs(image_io.decode_compressed(jpeg).astype(int) - astronaut).mean() < 5
    with pytest.raises(ImageFormatError, match="not a decodable"):
        image_io.decode_compressed(b"not a jpeg")
    with pytest.raises(ImageFormatError, match="no data"):
        image_io.decode_compressed(b"")


# --- sizes from the header alone: decompression bombs are refused before decoding -------------------------


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (640, 480), (1001, 17)])
def test_header_size_agrees_with_pillow(size) -> None:
    import io

    import cv2
    from PIL import Image

    w, h = size
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    files = [cv2.imencode(ext, img, params)[1].tobytes() for ext, params in [
        (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])]]  # 101: lossless (VP8L)
    for fmt, options in [("WEBP", {"lossless": True}), ("JPEG", {"progressive": True}), ("PNG", {})]:
        out = io.BytesIO()
        Image.fromarray(img).save(out, fmt, exif=Image.Exif(), **options)
        files.append(out.getvalue())
    for data in files:
        assert image_io.header_size(data) == Image.open(io.BytesIO(data)).size == (w, h), data[:16]


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xd8\xff\xe0" + bytes(200), "JPEG header is damaged"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(9), "before the image data"),
    (b"\x89PNG\r\n\x1a\n" + bytes(8), "no IHDR"),
    (b"GIF89a" + bytes(20), "not a JPEG, PNG or WebP"),
])
def test_header_size_refuses_damaged_headers(data, message) -> None:
    with pytest.raises(ImageFormatError, match=message):
        image_io.header_size(data)


def test_compressed_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = png_bomb(9000)  # 81 megapixels (243 MB decoded) in a few hundred kB
    assert len(bomb) < 2 ** 20 and image_io.header_size(bomb) == (9000, 9000)

    def no_decoding(*args, **kwargs):
        pytest.fail("cv2.imdecode was called: the image was decoded before its size was checked")

    with monkeypatch.context() as m:
        m.setattr(cv2, "imdecode", no_decoding)
        with pytest.raises(image_io.ImageTooLargeError, match="image 9000x9000 exceeds the limit of 1000000 pixels"):
            image_io.decode_compressed(bomb, max_pixels=10 ** 6)
        with pytest.raises(pytest.fail.Exception, match="cv2.imdecode was called"):  # the stand-in is on the path
            image_io.decode_compressed(png_bomb(64))
    with pytest.raises(ImageFormatError, match="empty image"):
        image_io.decode_compressed(png_file(0, 5, b""))
    small = png_bomb(64)
    assert image_io.decode_compressed(small).shape == (64, 64, 3)
