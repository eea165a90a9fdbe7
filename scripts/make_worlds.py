#!/usr/bin/python3
"""Cuts public-domain / CC0 photos shipped with scikit-image into 32x32 RGB
"worlds" (the images the GTMSM agent walks over) and writes them as PNG under
data/worlds/{train,test}/, plus data/worlds/worlds.tsv (one row per world) and
data/worlds/LICENSES.md.

A one-off generator, not part of the build: the PNGs it makes are committed.
It needs Debian's python3-skimage (which brings numpy, Pillow and imageio) and
therefore the system interpreter, /usr/bin/python3, not a pyenv/venv one:

    apt-get install --no-install-recommends python3-skimage
    /usr/bin/python3 scripts/make_worlds.py            # from the repo root

How a world is made (the same arithmetic as image_resize_area in
core/img/image.c): for k in (2, 3), a square crop side c = min(H, W) // k is
laid on a grid of (H // c) x (W // c) cells centred on the photo; each cell is
area-averaged to 32x32 in exact integer arithmetic, rounded half up. Gray
photos are replicated to RGB. Cells that are nearly flat (spatial standard
deviation, averaged over R, G, B, below MIN_STD: a clear sky, the black
corners of the retina photo) are skipped: a uniform world gives a navigating
agent nothing to remember.

The split is by source photo, fixed in SOURCES below: a photo's worlds all go
to train or all to test. Output is deterministic: PNGs are written here with
zlib level 9 and a fixed filter search, with no time or text chunks; decoding
the three JPEG sources depends on the installed libjpeg, so a different libjpeg
may change a few of their pixels.

Every licence and source statement below is quoted verbatim from the
docstring of the named skimage.data function (skimage/data/_fetchers.py in
scikit-image 0.19.3); the script checks each quote against the installed
docstring and stops if one is missing, so LICENSES.md cannot drift from what
the package says.
"""
import inspect
import os
import re
import struct
import sys
import zlib

import numpy as np
import skimage
import skimage.data
import skimage.io

S = 32             # world side in pixels
KS = (2, 3)        # crop sides min(H, W) // k
MIN_STD = 12.0     # in 0..255 units, per channel over the 32x32 pixels

# name, skimage.data function, file in skimage/data, split, licence summary,
# [verbatim licence statements], [verbatim source statements]
SOURCES = [
    ("astronaut", "astronaut", "astronaut.png", "train", "public domain",
     ["No known copyright restrictions, released into the public domain."],
     ["This image was downloaded from the NASA Great Images database "
      "<https://flic.kr/p/r9qvLn>`__."]),
    ("coffee", "coffee", "coffee.png", "train", "CC0",
     ["No copyright restrictions. CC0 by the photographer (Rachel Michetti)."],
     ["This photograph is courtesy of Pikolo Espresso Bar."]),
    ("rocket", "rocket", "rocket.jpg", "train", "public domain",
     ["The image was captured by SpaceX and `released in the public domain "
      "<http://arstechnica.com/tech-policy/2015/03/"
      "elon-musk-puts-spacex-photos-into-the-public-domain/>`_."],
     ["This image was downloaded from `SpaceX Photos "
      "<https://www.flickr.com/photos/spacexphotos/16511594820/in/photostream/>`__."]),
    ("retina", "retina", "retina.jpg", "train", "CC0 1.0",
     ["This file is made available under the Creative Commons CC0 1.0 Universal "
      "Public Domain Dedication."],
     ["This image was downloaded from `wikimedia "
      "<https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg>`."]),
    ("camera", "camera", "camera.png", "train", "CC0",
     ["No copyright restrictions. CC0 by the photographer (Lav Varshney)."],
     []),
    ("brick", "brick", "brick.png", "train", "CC0",
     ["The original image was downloaded from `CC0Textures "
      "<https://cc0textures.com/view.php?tex=Bricks25>`_ and licensed under the "
      "Creative Commons CC0 License."],
     ["A perspective transform was then applied to the image, prior to rotating it "
      "by 90 degrees, cropping and scaling it to obtain the final image."]),
    ("gravel", "gravel", "gravel.png", "train", "CC0",
     ["The original image was downloaded from `CC0Textures "
      "<https://cc0textures.com/view.php?tex=Gravel04>`__ and licensed under the "
      "Creative Commons CC0 License."],
     ["The downloaded image was then rescaled to ``(1024, 1024)``, then the top left "
      "``(512, 512)`` pixel region was cropped prior to converting the image to "
      "grayscale and uint8 data type. The result was saved using the PNG format."]),
    ("chelsea", "chelsea", "chelsea.png", "test", "CC0",
     ["No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."],
     []),
    ("hubble", "hubble_deep_field", "hubble_deep_field.jpg", "test", "public domain",
     ["The image was captured by NASA and `may be freely used in the public domain "
      "<http://www.nasa.gov/audience/formedia/features/MP_Photo_Guidelines.html>`_."],
     ["This image was downloaded from `HubbleSite "
      "<http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/>`__."]),
    ("grass", "grass", "grass.png", "test", "CC0",
     ["The original image was downloaded from `DeviantArt "
      "<https://www.deviantart.com/linolafett/art/Grass-01-434853879>`__ and licensed "
      "under the Creative Commons CC0 License."],
     ["The downloaded image was cropped to include a region of ``(512, 512)`` pixels "
      "around the top left corner, converted to grayscale, then to uint8 prior to "
      "saving the result in PNG format."]),
]


def squash(s):
    return re.sub(r"\s+", " ", s).strip()


def check_quotes(func, quotes):
    doc = squash(inspect.getdoc(getattr(skimage.data, func)))
    for q in quotes:
        if squash(q) not in doc:
            sys.exit(f"make_worlds: licence/source text for skimage.data.{func}() not found "
                     f"verbatim in the installed docstring:\n  {q}")


def area_weights(n_out, n_in):
    """(n_out, n_in) integer overlaps; output k spans [k n_in, (k+1) n_in) in
    units where an input cell is n_out long, so each row sums to n_in."""
    w = np.zeros((n_out, n_in), dtype=np.int64)
    for k in range(n_out):
        lo, hi = k * n_in, (k + 1) * n_in
        for i in range(k * n_in // n_out, -(-(k + 1) * n_in // n_out)):
            a, b = max(i * n_out, lo), min((i + 1) * n_out, hi)
            if b > a:
                w[k, i] = b - a
    return w


def resize_area(img, oh, ow):
    """Exact area-averaging resize of uint8 (H, W, C), rounded half up."""
    h, w, c = img.shape
    wy, wx = area_weights(oh, h), area_weights(ow, w)
    x = img.astype(np.int64)
    acc = np.einsum("yi,ijc,xj->yxc", wy, x, wx)
    den = h * w
    return ((acc + den // 2) // den).astype(np.uint8)


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def png_filter_row(ft, row, prev, bpp):
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        cc = prev[i - bpp] if i >= bpp else 0
        if ft == 0:
            p = 0
        elif ft == 1:
            p = a
        elif ft == 2:
            p = b
        elif ft == 3:
            p = (a + b) // 2
        else:
            pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
        out[i] = (x - p) & 0xff
    return bytes([ft]) + bytes(out)


def png_encode(img):
    """Deterministic 8-bit RGB PNG: the smallest of the five fixed filters and
    the per-row minimum-sum-of-absolute-differences choice, zlib level 9."""
    h, w, c = img.shape
    assert c == 3 and img.dtype == np.uint8
    rows = [bytes(img[y].reshape(-1)) for y in range(h)]
    zero = bytes(w * c)
    candidates = []
    for ft in range(5):
        candidates.append(b"".join(png_filter_row(ft, r, rows[y - 1] if y else zero, c)
                                   for y, r in enumerate(rows)))
    adaptive = []
    for y, r in enumerate(rows):
        opts = [png_filter_row(ft, r, rows[y - 1] if y else zero, c) for ft in range(5)]
        adaptive.append(min(opts, key=lambda f: sum(v if v < 128 else 256 - v for v in f[1:])))
    candidates.append(b"".join(adaptive))
    idat = min((zlib.compress(raw, 9) for raw in candidates), key=len)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "data", "worlds")
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    for split in ("train", "test"):
        d = os.path.join(out_dir, split)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):  # a rerun replaces the previous set entirely
            if f.endswith(".png"):
                os.remove(os.path.join(d, f))

    rows = []
    stats = {}
    for name, func, fname, split, _, lic, src in SOURCES:
        check_quotes(func, lic + src)
        img = skimage.io.imread(os.path.join(data_dir, fname))
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
        H, W, _ = img.shape
        kept = dropped = 0
        for k in KS:
            c = min(H, W) // k
            gy, gx = H // c, W // c
            y0, x0 = (H - gy * c) // 2, (W - gx * c) // 2
            for r in range(gy):
                for q in range(gx):
                    y, x = y0 + r * c, x0 + q * c
                    world = resize_area(img[y:y + c, x:x + c], S, S)
                    std = float(world.astype(np.float64).std(axis=(0, 1)).mean())
                    if std < MIN_STD:
                        dropped += 1
                        continue
                    rel = f"{split}/{name}_k{k}_r{r}_c{q}.png"
                    with open(os.path.join(out_dir, rel), "wb") as f:
                        f.write(png_encode(world))
                    rows.append((rel, split, name, k, y, x, c, f"{std:.1f}"))
                    kept += 1
        stats[name] = (H, W, kept, dropped)
        print(f"{name:10s} {split:5s} {W}x{H}: {kept} worlds, {dropped} flat cells dropped")

    with open(os.path.join(out_dir, "worlds.tsv"), "w") as f:
        f.write("# One row per world: PNG path relative to data/worlds, split, source photo,\n"
                "# k, and the crop (row y, column x, side) in the source that was\n"
                "# area-averaged to 32x32; std is the world's spatial standard deviation\n"
                "# (0..255 units, mean over R, G, B).\n")
        f.write("path\tsplit\tsource\tk\ty\tx\tside\tstd\n")
        for r in rows:
            f.write("\t".join(str(v) for v in r) + "\n")

    with open(os.path.join(out_dir, "LICENSES.md"), "w") as f:
        f.write("# Licences of the bundled worlds\n\n"
                "Every world under `train/` and `test/` is an area-averaged crop of one of the\n"
                "photos below, which scikit-image ships in `skimage/data/` (Debian package\n"
                f"python3-skimage, scikit-image {skimage.__version__}). The statements are\n"
                "quoted verbatim (runs of white space collapsed) from the docstring of the named `skimage.data` function\n"
                "(`skimage/data/_fetchers.py`); `scripts/make_worlds.py` checks each quote\n"
                "against the installed package. The package's `README.txt` in `skimage/data/`\n"
                "states no licences, and Debian's `/usr/share/doc/python3-skimage/copyright`\n"
                "lists `Files: *` as BSD-3-Clause (the scikit-image team) without\n"
                "itemising the data files; only photos whose own docstring states public\n"
                "domain or CC0 were used (`motorcycle_left.png`, `ihc.png`, `coins.png` and\n"
                "others were left out because theirs does not; `clock_motion.png`, public\n"
                "domain, was left out because its motion blur leaves mostly flat worlds).\n\n"
                "| source file | skimage.data function | licence | split | worlds |\n"
                "| --- | --- | --- | --- | --- |\n")
        for name, func, fname, split, summary, _, _ in SOURCES:
            f.write(f"| `{fname}` | `{func}()` | {summary} | {split} | {stats[name][2]} |\n")
        f.write("\n## Statements as shipped\n")
        for name, func, fname, split, summary, lic, src in SOURCES:
            H, W, kept, _ = stats[name]
            f.write(f"\n### `{fname}` ({W}x{H}, {split})\n\n")
            for q in lic:
                f.write(f"- Licence: \"{q}\"\n")
            for q in src:
                f.write(f"- Source: \"{q}\"\n")
            if not src:
                f.write("- Source: the docstring states no origin beyond the photographer "
                        "named above.\n")
            f.write(f"- Shipped as: `skimage/data/{fname}`\n")
    n_train = sum(1 for r in rows if r[1] == "train")
    print(f"{n_train} train and {len(rows) - n_train} test worlds")


if __name__ == "__main__":
    main()
