#!/usr/bin/env python3
"""Pillow's side of the benchmark: pillow_run.py <job> <input> <iters> <out_dir>

Image.thumbnail() (draft-mode JPEG shrink, reducing_gap), EXIF transpose, one open per original:
for several outputs, draft for the largest once, then thumbnail() copies from largest to smallest.
"""
import io
import json
import os
import sys
import time

from PIL import Image, ImageOps


def outputs_for(job):
    if job == "thumbs":
        return [(str(e), e, "jpeg") for e in (600, 300, 150)]
    if job == "variants":
        return [(str(e), e, f) for e in (2048, 1280) for f in ("jpeg", "webp")]
    fmt, edge = job.split(":")
    return [(edge, int(edge), fmt)]


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


def main():
    job, inp, iters, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    buf = open(inp, "rb").read()
    outs = outputs_for(job)
    last = once(buf, outs)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        last = once(buf, outs)
        ms.append((time.perf_counter() - t) * 1e3)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for name, fmt, data, w, h in last:
        p = os.path.join(out_dir, f"{name}.{'webp' if fmt == 'webp' else 'jpg'}")
        open(p, "wb").write(data)
        files.append({"path": p, "bytes": len(data), "width": w, "height": h})
    print(json.dumps({"ms": ms, "outputs": files}))


if __name__ == "__main__":
    main()
