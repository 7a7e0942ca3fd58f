#!/usr/bin/env python3
"""Pillow's side of the benchmark: pillow_run.py <job> <input> <iters> <out_dir>

Image.thumbnail() (draft-mode JPEG shrink, reducing_gap), EXIF transpose, one open per original:
for several outputs, draft for the largest once, then thumbnail() copies from largest to smallest.
"""
import io

import harness
from PIL import Image, ImageOps


def once(buf, outs):
    im = Image.open(io.BytesIO(buf))
    # What thumbnail() does for one output (draft to reducing_gap=2 x the fitted size), done once
    # for the largest.
    largest = max(e for _, e, _ in outs)
    scale = min(1.0, largest / max(im.size))
    im.draft("RGB", (int(im.size[0] * scale * 2), int(im.size[1] * scale * 2)))
    im = ImageOps.exif_transpose(im).convert("RGB")
    res = []
    for name, edge, fmt in outs:
        t = im.copy()
        t.thumbnail((edge, edge))
        out = io.BytesIO()
        if fmt == "webp":
            t.save(out, "WEBP", quality=80, method=4)
        else:
            t.save(out, "JPEG", quality=80, optimize=True)
        res.append((name, fmt, out.getvalue(), t.width, t.height))
    return res


if __name__ == "__main__":
    harness.main(once, largest_first=True)
