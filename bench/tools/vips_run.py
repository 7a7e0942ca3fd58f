#!/usr/bin/env python3
"""pyvips' side of the benchmark: vips_run.py <job> <input> <iters> <out_dir>

thumbnail_buffer per output (libvips' recommended fast path: shrink-on-load, autorotate),
VIPS_CONCURRENCY=1 set by the caller, operation cache off. JPEG with optimize_coding like sharp.
"""

import harness
import pyvips

pyvips.cache_set_max(0)


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


if __name__ == "__main__":
    harness.main(once)
