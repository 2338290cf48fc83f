"""Decoding every supported encoding, and clear errors for everything else."""

import numpy as np
import pytest

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
