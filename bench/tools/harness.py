"""What the Python tools of the benchmark share (pillow_run.py, vips_run.py, run by bench/bench.py
as `<tool> <job> <input> <iters> <out_dir>`): the outputs a job asks for, the timed loop, the files
of the last run and the JSON line bench.py reads (`{"ms": [...], "outputs": [...]}`)."""
import json
import os
import sys
import time


def outputs_for(job, largest_first):
    """(name, long edge, format) of each output of `job`: `thumbs`, `variants` or `<fmt>:<edge>`."""
    if job in ("thumbs", "variants"):
        edges = sorted((600, 300, 150) if job == "thumbs" else (2048, 1280), reverse=largest_first)
        formats = ("jpeg",) if job == "thumbs" else ("jpeg", "webp")
        return [(str(e), e, f) for e in edges for f in formats]
    fmt, edge = job.split(":")
    return [(edge, int(edge), fmt)]


def main(once, largest_first=False):
    """Runs `once(original bytes, outputs)` -> [(name, format, bytes, width, height)] once to warm
    up and `iters` times timed, writes the last run's outputs and prints the report."""
    job, inp, iters, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    buf = open(inp, "rb").read()
    outs = outputs_for(job, largest_first)
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
