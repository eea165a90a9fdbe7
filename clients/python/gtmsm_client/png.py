"""Just enough PNG for film strips, in pure Python (zlib + struct).

``decode`` reads the 8-bit, non-interlaced gray / RGB / gray+alpha / RGBA PNGs gtmsmd and
``gtmsm gen`` write (all five filter types); ``encode`` writes 8-bit PNGs. An ``Image`` is
``(width, height, channels, pixels)`` with ``pixels`` row-major interleaved bytes.
"""
from __future__ import annotations

import math
import struct
import zlib
from typing import List, NamedTuple, Optional, Sequence, Tuple

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}   # PNG colour type -> channels
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


class Image(NamedTuple):
    width: int
    height: int
    channels: int
    pixels: bytes


def size(png: bytes) -> Tuple[int, int]:
    """(width, height) from the header, without decoding."""
    if png[:8] != SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    w, h = struct.unpack(">II", png[16:24])
    return int(w), int(h)


def decode(png: bytes) -> Image:
    if png[:8] != SIGNATURE:
        raise ValueError("not a PNG (bad signature)")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + n]
        if len(data) != n:
            raise ValueError("truncated PNG chunk")
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if hdr is None:
        raise ValueError("PNG without IHDR")
    w, h, depth, ctype, _comp, _filt, interlace = hdr
    if depth != 8 or ctype not in _CHANNELS or interlace != 0:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {ctype}, "
                         f"interlace {interlace}); 8-bit non-interlaced gray/RGB/RGBA only")
    c = _CHANNELS[ctype]
    raw = zlib.decompress(b"".join(idat))
    stride = w * c
    if len(raw) < h * (stride + 1):
        raise ValueError("PNG image data too short")
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(c, stride):
                line[i] = (line[i] + line[i - c]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - c] if i >= c else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - c] if i >= c else 0
                b = prev[i]
                cc = prev[i - c] if i >= c else 0
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                line[i] = (line[i] + pred) & 255
        elif f != 0:
            raise ValueError(f"bad PNG filter type {f} on row {y}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return Image(w, h, c, bytes(out))


def encode(img: Image) -> bytes:
    """An 8-bit PNG (filter 0 on every row, zlib level 9)."""
    w, h, c, pix = img
    if c not in _COLOR_TYPE or len(pix) != w * h * c:
        raise ValueError("encode: bad image size or channels")
    stride = w * c
    raw = b"".join(b"\x00" + pix[y * stride:(y + 1) * stride] for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[c], 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def to_rgb(img: Image) -> Image:
    w, h, c, p = img
    if c == 3:
        return img
    n = w * h
    if c == 1:
        return Image(w, h, 3, bytes(v for v in p for _ in range(3)))
    if c == 2:
        return Image(w, h, 3, bytes(p[i * 2] for i in range(n) for _ in range(3)))
    out = bytearray(n * 3)
    out[0::3], out[1::3], out[2::3] = p[0::4], p[1::4], p[2::4]
    return Image(w, h, 3, bytes(out))


def scale(img: Image, k: int) -> Image:
    """Nearest-neighbour upscaling by an integer factor."""
    if k == 1:
        return img
    w, h, c, p = img
    rows = []
    for y in range(h):
        src = p[y * w * c:(y + 1) * w * c]
        row = b"".join(src[x * c:(x + 1) * c] * k for x in range(w))
        rows.extend([row] * k)
    return Image(w * k, h * k, c, b"".join(rows))


def split_strip(strip: Image, count: int) -> List[Image]:
    """The frames of a film strip (frames left to right, as gtmsmd's image/png predictions)."""
    w, h, c, p = strip
    if count <= 0 or w % count:
        raise ValueError(f"a strip {w} wide does not hold {count} frames")
    fw = w // count
    return [Image(fw, h, c, b"".join(p[(y * w + i * fw) * c:(y * w + (i + 1) * fw) * c]
                                     for y in range(h))) for i in range(count)]


def grid(rows: Sequence[Sequence[Optional[Image]]], k: int = 1, gap: int = 1,
         background: Tuple[int, int, int] = (255, 255, 255)) -> Image:
    """Frames laid out in rows (``None`` leaves a blank cell), scaled by ``k``, ``gap`` pixels
    apart, on a ``background`` colour; RGB output."""
    cells = [f for r in rows for f in r if f is not None]
    if not cells:
        raise ValueError("grid: no frames")
    fw, fh = cells[0].width * k, cells[0].height * k
    ncols = max(len(r) for r in rows)
    W = ncols * fw + (ncols + 1) * gap
    H = len(rows) * fh + (len(rows) + 1) * gap
    out = bytearray(bytes(background) * (W * H))
    for ry, r in enumerate(rows):
        for cx, f in enumerate(r):
            if f is None:
                continue
            f = scale(to_rgb(f), k)
            if (f.width, f.height) != (fw, fh):
                raise ValueError("grid: frames of different sizes")
            x0, y0 = gap + cx * (fw + gap), gap + ry * (fh + gap)
            for y in range(fh):
                o = ((y0 + y) * W + x0) * 3
                out[o:o + fw * 3] = f.pixels[y * fw * 3:(y + 1) * fw * 3]
    return Image(W, H, 3, bytes(out))


def psnr(a: Image, b: Image) -> float:
    """Peak signal-to-noise ratio in dB of two frames of the same shape (inf when equal)."""
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels):
        raise ValueError("psnr: frames of different shapes")
    se = sum((x - y) * (x - y) for x, y in zip(a.pixels, b.pixels))
    if se == 0:
        return math.inf
    mse = se / len(a.pixels)
    return 10.0 * math.log10(255.0 * 255.0 / mse)
