#!/usr/bin/python3
"""Cuts public-domain / CC0 photos shipped with scikit-image into the small
texture set under data/textures/: 64x64 RGB PNGs that `gtmsm gen --env maze3d
--textures data/textures` (and maze3d_texture_set_load) puts on the walls,
floors and ceilings of the 3-D maze, and data/textures/LICENSES.md.

A one-off generator, not part of the build: the PNGs it makes are committed.
Like scripts/make_worlds.py (whose resize and PNG encoder it reuses, so the
arithmetic is the same as image_resize_area in core/img/image.c), it needs
Debian's python3-skimage and the system interpreter:

    apt-get install --no-install-recommends python3-skimage
    /usr/bin/python3 scripts/make_textures.py          # from the repo root

Each texture is one square crop (row y, column x, side) of one photo, rotated
by a multiple of 90 degrees where the photo's pattern runs the wrong way for a
wall (the brick photo's courses are vertical), area-averaged to 64x64 in exact
integer arithmetic rounded half up; gray photos are replicated to RGB. The maze
resizes them again to its texture size (32) when loading, an exact 2x2 mean.

Every licence and author statement below is quoted verbatim from the docstring
of the named skimage.data function (skimage/data/_fetchers.py in scikit-image
0.19.3); the script stops if a quote is not found in the installed docstring,
so LICENSES.md cannot drift from what the package says. Output is
deterministic; only the two JPEG sources (hubble_deep_field.jpg, retina.jpg)
depend on the installed libjpeg.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import skimage
import skimage.io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_worlds import check_quotes, png_encode, resize_area  # noqa: E402

S = 64  # texture side in pixels

# output name, skimage.data function, file in skimage/data, crop (y, x, side),
# quarter turns (numpy rot90, counter-clockwise), what it shows, licence
# summary, author as the docstring states it, [verbatim licence / author
# statements]
TEXTURES = [
    ("astronaut_flag", "astronaut", "astronaut.png", (170, 0, 64), 0,
     "red and white stripes of the flag behind the astronaut", "public domain",
     "not named; from the NASA Great Images database",
     ["No known copyright restrictions, released into the public domain.",
      "This image was downloaded from the NASA Great Images database"]),
    ("astronaut_suit", "astronaut", "astronaut.png", (380, 30, 96), 0,
     "folds of the orange flight suit", "public domain",
     "not named; from the NASA Great Images database",
     ["No known copyright restrictions, released into the public domain.",
      "This image was downloaded from the NASA Great Images database"]),
    ("brick_large", "brick", "brick.png", (300, 200, 192), 1,
     "brick wall, courses turned horizontal", "CC0",
     "not named; downloaded from CC0Textures (Bricks25)",
     ["The original image was downloaded from `CC0Textures "
      "<https://cc0textures.com/view.php?tex=Bricks25>`_ and licensed under the "
      "Creative Commons CC0 License."]),
    ("brick_small", "brick", "brick.png", (64, 64, 128), 1,
     "brick wall, courses turned horizontal, smaller bricks", "CC0",
     "not named; downloaded from CC0Textures (Bricks25)",
     ["The original image was downloaded from `CC0Textures "
      "<https://cc0textures.com/view.php?tex=Bricks25>`_ and licensed under the "
      "Creative Commons CC0 License."]),
    ("chelsea_fur", "chelsea", "chelsea.png", (0, 200, 64), 0,
     "striped fur on the cat's forehead", "CC0", "Stefan van der Walt",
     ["No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."]),
    ("coffee_wood", "coffee", "coffee.png", (300, 500, 100), 0,
     "wood grain of the table under the cup", "CC0", "Rachel Michetti",
     ["No copyright restrictions. CC0 by the photographer (Rachel Michetti)."]),
    ("grass", "grass", "grass.png", (0, 0, 160), 0,
     "grass (gray)", "CC0", "not named; downloaded from DeviantArt (linolafett, Grass-01)",
     ["The original image was downloaded from `DeviantArt "
      "<https://www.deviantart.com/linolafett/art/Grass-01-434853879>`__ and licensed "
      "under the Creative Commons CC0 License."]),
    ("gravel", "gravel", "gravel.png", (0, 0, 128), 0,
     "gravel (gray)", "CC0", "not named; downloaded from CC0Textures (Gravel04)",
     ["The original image was downloaded from `CC0Textures "
      "<https://cc0textures.com/view.php?tex=Gravel04>`__ and licensed under the "
      "Creative Commons CC0 License."]),
    ("hubble_field", "hubble_deep_field", "hubble_deep_field.jpg", (300, 300, 200), 0,
     "galaxies on black", "public domain", "NASA (HubbleSite)",
     ["The image was captured by NASA and `may be freely used in the public domain "
      "<http://www.nasa.gov/audience/formedia/features/MP_Photo_Guidelines.html>`_."]),
    ("retina_vessels", "retina", "retina.jpg", (300, 850, 256), 0,
     "blood vessels on the orange retina", "CC0 1.0",
     "not named as such; the docstring cites Häggström, Mikael (2014)",
     ["This file is made available under the Creative Commons CC0 1.0 Universal "
      "Public Domain Dedication.",
      "Häggström, Mikael (2014). \"Medical gallery of Mikael Häggström 2014\"."]),
]


def debian_version(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "data", "textures")
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):  # a rerun replaces the previous set entirely
        if f.endswith(".png"):
            os.remove(os.path.join(out_dir, f))
    names = [t[0] for t in TEXTURES]
    assert names == sorted(names) and len(set(names)) == len(names)

    digests = {}
    for name, func, fname, (y, x, side), turns, what, _, _, quotes in TEXTURES:
        check_quotes(func, quotes)
        path = os.path.join(data_dir, fname)
        with open(path, "rb") as f:
            digests[fname] = hashlib.sha256(f.read()).hexdigest()
        img = skimage.io.imread(path)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
        H, W, _ = img.shape
        assert y + side <= H and x + side <= W, f"{name}: crop outside the {W}x{H} photo"
        crop = np.ascontiguousarray(np.rot90(img[y:y + side, x:x + side], turns))
        tex = resize_area(crop, S, S)
        with open(os.path.join(out_dir, name + ".png"), "wb") as f:
            f.write(png_encode(tex))
        print(f"{name:15s} from {fname} ({W}x{H}) crop y={y} x={x} side={side} turns={turns}")

    ver = debian_version("python3-skimage")
    with open(os.path.join(out_dir, "LICENSES.md"), "w") as f:
        f.write("# Licences of the bundled textures\n\n"
                f"{len(TEXTURES)} textures of {S} x {S} pixels, 8-bit RGB PNG, for the 3-D maze\n"
                "(`gtmsm gen --env maze3d --textures data/textures`: each room's wall, floor and\n"
                "ceiling are drawn from them by the seed; training keeps the procedural textures,\n"
                "so these are looks a model has not seen). Each is one square crop of a photo\n"
                "that scikit-image ships in `skimage/data/` (Debian package python3-skimage\n"
                f"{ver}, scikit-image {skimage.__version__}, installed under\n"
                "`/usr/lib/python3/dist-packages/skimage/data/`), turned by quarter turns where\n"
                "noted and area-averaged to 64 x 64; gray photos are replicated to RGB.\n"
                "`scripts/make_textures.py` made them and this file, and reproduces both.\n\n"
                "The licence and author statements are quoted verbatim (runs of white space\n"
                "collapsed) from the docstring of the named `skimage.data` function\n"
                "(`skimage/data/_fetchers.py`); the script checks each quote against the\n"
                "installed package. Debian's `/usr/share/doc/python3-skimage/copyright` lists\n"
                "`Files: *` as BSD-3-Clause (the scikit-image team) without itemising the data\n"
                "files; only photos whose own docstring states public domain or CC0 were used.\n"
                "Public domain and CC0 allow copying, modifying and redistributing without\n"
                "asking permission; no attribution is required, but it is given here.\n\n"
                "| file | source file (python3-skimage) | crop y, x, side | turns | shows | licence | author |\n"
                "| --- | --- | --- | --- | --- | --- | --- |\n")
        for name, func, fname, (y, x, side), turns, what, lic, author, _ in TEXTURES:
            f.write(f"| `{name}.png` | `skimage/data/{fname}` (`{func}()`) | {y}, {x}, {side} | "
                    f"{turns} | {what} | {lic} | {author} |\n")
        f.write("\n`turns`: counter-clockwise quarter turns applied to the crop (numpy `rot90`).\n")
        f.write("\n## Statements as shipped\n")
        seen = set()
        for name, func, fname, _, _, _, _, _, quotes in TEXTURES:
            if fname in seen:
                continue
            seen.add(fname)
            users = ", ".join(f"`{t[0]}.png`" for t in TEXTURES if t[2] == fname)
            f.write(f"\n### `{fname}` (used by {users})\n\n")
            for q in quotes:
                f.write(f"- \"{q}\"\n")
            f.write(f"- Shipped as `skimage/data/{fname}`, sha256 `{digests[fname]}`\n")


if __name__ == "__main__":
    main()
