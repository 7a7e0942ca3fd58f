#!/usr/bin/env python3
"""pyvips' side of the benchmark: vips_run.py <job> <input> <iters> <out_dir>

thumbnail_buffer per output (libvips' recommended fast path: shrink-on-load, autorotate),
VIPS_CONCURRENCY=1 set by the caller, operation cache off. JPEG with optimize_coding like sharp.
"""
import json
import os
import sys
import time

import pyvips

pyvips.cache_set_max(0)


def outputs_for(job):
    if job == "thumbs":
        return [(str(e), e, "jpeg") for e in (150, 300, 600)]
    if job == "variants":
        return [(str(e), e, f) for e in (1280, 2048) for f in ("jpeg", "webp")]
    fmt, edge = job.split(":")
    return [(edge, int(edge), fmt)]


def once(buf, outs):
    res = []
    for name, edge, fmt in outs:
        img = pyvips.Image.thumbnail_buffer(buf, edge, height=edge, size="down")
        if fmt == "webp":
            data = img.webpsave_buffer(Q=80)
        else:
            data = img.jpegsave_buffer(Q=80, optimize_coding=True, strip=True)
        res.append((name, fmt, data, img.width, img.height))
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
