"""Hand-made image files for the tests: PNGs whose header says one size and whose data is tiny."""

from __future__ import annotations

import struct
import zlib


def png_file(width: int, height: int, idat: bytes) -> bytes:
    """A gray 8-bit PNG with the given header size and compressed pixel data."""
    out = b"\x89PNG\r\n\x1a\n"
    for chunk in (b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), b"IDAT" + idat, b"IEND"):
        out += struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return out


def png_bomb(side: int) -> bytes:
    """A real PNG of side x side zero pixels: a few hundred kB that decode to side**2 gray bytes."""
    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    return png_file(side, side, b"".join(z.compress(row) for _ in range(side)) + z.flush())
