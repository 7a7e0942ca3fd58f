#!/usr/bin/env python3
"""Builds the benchmark corpus from a Debian wallpaper package (deterministic for a given Pillow).

Source: mate-backgrounds' Elephants_5640x3172.jpg, a detailed 17.9 MP painting, resized with
Lanczos to 4, 12 and 24 MP and saved as baseline 4:2:0 JPEG q90; the 12 MP one also as PNG and
lossy WebP q90. Usage: make_corpus.py <source.jpg> <corpus_dir>
"""
import os
import sys

from PIL import Image

SIZES = {"4mp": (2667, 1500), "12mp": (4619, 2598), "24mp": (6532, 3674)}


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    original = Image.open(src).convert("RGB")
    for name, size in SIZES.items():
        path = os.path.join(out, f"{name}.jpg")
        if os.path.exists(path):
            continue
        img = original.resize(size, Image.Resampling.LANCZOS)
        img.save(path, "JPEG", quality=90, subsampling=2, progressive=False, optimize=False)
        if name == "12mp":
            img.save(os.path.join(out, "12mp.png"), "PNG", compress_level=6)
            img.save(os.path.join(out, "12mp.webp"), "WEBP", quality=90, method=4)


if __name__ == "__main__":
    main()
