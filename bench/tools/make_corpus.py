#!/usr/bin/env python3
"""Builds the benchmark corpus from a Debian wallpaper package (deterministic for a given Pillow).

Source: mate-backgrounds' Elephants_5640x3172.jpg, a detailed 17.9 MP painting, resized with
Lanczos to 4, 12 and 24 MP and saved as baseline 4:2:0 JPEG q90; the 12 MP one also as PNG and
lossy WebP q90, as AVIF (libavif/aom via Pillow, quality 75, 4:2:0) and as the same JPEG
tagged with a Display P3 profile (for the cost of colour conversion; the profile comes from the
test fixtures' generator). Usage: make_corpus.py <source.jpg> <corpus_dir>
"""
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests", "fixtures"))
from make_colour_fixtures import P3  # noqa: E402

SIZES = {"4mp": (2667, 1500), "12mp": (4619, 2598), "24mp": (6532, 3674)}


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    original = Image.open(src).convert("RGB")
    for name, size in SIZES.items():
        path = os.path.join(out, f"{name}.jpg")
        extra = ["12mp.png", "12mp.webp", "12mp.avif", "12mp-p3.jpg"] if name == "12mp" else []
        if os.path.exists(path) and all(os.path.exists(os.path.join(out, e)) for e in extra):
            continue
        img = original.resize(size, Image.Resampling.LANCZOS)
        img.save(path, "JPEG", quality=90, subsampling=2, progressive=False, optimize=False)
        if name == "12mp":
            img.save(os.path.join(out, "12mp.png"), "PNG", compress_level=6)
            img.save(os.path.join(out, "12mp.webp"), "WEBP", quality=90, method=4)
            img.save(os.path.join(out, "12mp.avif"), "AVIF", quality=75, subsampling="4:2:0")
            img.save(os.path.join(out, "12mp-p3.jpg"), "JPEG", quality=90, subsampling=2, icc_profile=P3)


if __name__ == "__main__":
    main()
