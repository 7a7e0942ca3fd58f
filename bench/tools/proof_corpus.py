#!/usr/bin/env python3
"""Builds the photo corpus of `make proof` from Debian's mate-backgrounds (deterministic for a
given Pillow; nothing is committed).

- the package's real photographs (nature/*.jpg, 1280-2560 px) resized with Lanczos to a longest
  edge of 1280, 1920 and 2560 px (never upscaled), saved like a camera or phone export
  (JPEG q85, 4:2:0): `<photo>-<edge>.jpg`;
- four 4000x2250 crops of the package's 5640x3172 painting (9 MP, q90): `elephants<n>-4000.jpg`.

Usage: proof_corpus.py <mate backgrounds dir (…/usr/share/backgrounds/mate)> <corpus dir>
"""
import glob
import os
import sys

from PIL import Image

EDGES = (1280, 1920, 2560)


def save(img, path, quality):
    img.save(path, "JPEG", quality=quality, subsampling=2, progressive=False, optimize=False)


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for f in sorted(glob.glob(os.path.join(src, "nature", "*.jpg"))):
        name = os.path.splitext(os.path.basename(f))[0].lower()
        img = Image.open(f).convert("RGB")
        long_edge = max(img.size)
        for edge in EDGES:
            if edge > long_edge:
                continue
            path = os.path.join(out, f"{name}-{edge}.jpg")
            if os.path.exists(path):
                continue
            scale = edge / long_edge
            size = (round(img.width * scale), round(img.height * scale))
            save(img.resize(size, Image.Resampling.LANCZOS) if size != img.size else img, path, 85)
    big = os.path.join(src, "abstract", "Elephants_5640x3172.jpg")
    painting = Image.open(big).convert("RGB")
    for n, x in enumerate((0, 540, 1080, 1640)):
        path = os.path.join(out, f"elephants{n}-4000.jpg")
        if not os.path.exists(path):
            save(painting.crop((x, 0, x + 4000, 2250)), path, 90)


if __name__ == "__main__":
    main()
