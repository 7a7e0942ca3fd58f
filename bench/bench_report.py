"""BENCHMARKS.md from the figures bench/bench.py measured: the goals checked, the tables (ratios to
sharp with their range over the rounds), the headroom sweep's choice, quality and size."""
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
PY = os.path.join(ROOT, ".venv", "bin", "python")


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - a version string is best effort
        return "?"


def fmt_ratio(x):
    return f"{x:.2f}x"


def goals(rows_a, rows_b, floor, rss, q, tp):
    """The issues' acceptance goals, checked against this run."""
    out = ["## Goals (issues 4 and 12), checked against this run\n", "| goal | measured | met |", "|---|---|---|"]

    def line(goal, value, ok):
        out.append(f"| {goal} | {value} | {'yes' if ok else '**no**'} |")

    t = "safelight"
    b1 = {i: m for i, j, m, _ in rows_b if j == "thumbs" and t in m}
    b2 = {i: m for i, j, m, _ in rows_b if j == "variants" and t in m}
    if "12mp.jpg" in b1:
        r = b1["12mp.jpg"][t] / b1["12mp.jpg"]["sharp"]
        line("b1 (12 MP JPEG -> thumbnails) <= 0.35x sharp", fmt_ratio(r), r <= 0.35)
        f = b1["12mp.jpg"][t] / floor["12mp.jpg"]
        line("b1 within 1.6x of the 1/8-scale decode floor", fmt_ratio(f), f <= 1.6)
    if b2:
        worst_b2 = max((m[t] / m["sharp"], i) for i, m in b2.items())
        line("b2 (variants) <= 0.7x sharp, every input", f"worst {fmt_ratio(worst_b2[0])} ({worst_b2[1]})", worst_b2[0] <= 0.7)
    jpeg_cells = [(m[t] / m["sharp"], f"{i} {j}") for i, j, m, _ in rows_a if j.startswith("jpeg") and t in m]
    if jpeg_cells:
        worst = max(jpeg_cells)
        met = sum(r <= 0.85 for r, _ in jpeg_cells)
        line("every single-output JPEG cell <= 0.85x sharp", f"worst {fmt_ratio(worst[0])} ({worst[1]}); {met}/{len(jpeg_cells)} met", worst[0] <= 0.85)
    if "12 MP -> 800 JPEG" in tp:
        m = tp["12 MP -> 800 JPEG"]
        r = m[t] / m["sharp"]
        line("2-worker throughput, 12 MP -> 800 JPEG >= 1.3x sharp", fmt_ratio(r), r >= 1.3)
    worst_rss = max(m[t] / m["sharp"] for m in rss.values())
    line("peak RSS <= 0.5x sharp", f"worst {fmt_ratio(worst_rss)}", worst_rss <= 0.5)
    worse = [k for k, m in q.items() if t in m and m[t][0] > m["sharp"][0] * 1.02]
    detail = f"{len(q) - len(worse)}/{len(q)} outputs as good or better" + (f"; worse: {', '.join(worse)}" if worse else "")
    line("quality (DSSIM) not worse than sharp's (2% tolerance)", detail, not worse)
    out.append("")
    return out


def table(columns, rows):
    """A Markdown table: the header, its rule, a line per row of cells."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + ["| " + " | ".join(r) + " |" for r in rows]


def engine_headroom():
    """The engine's default headroom, as its source (shared/engine/src) states it."""
    src = "".join(p.read_text() for p in sorted(Path(ROOT, "shared", "engine", "src").rglob("*.rs")))
    found = [re.search(rf"pub const {name}: f32 = ([0-9.]+);", src) for name in ("HEADROOM", "HALF_SCALE_HEADROOM", "EIGHTH_SCALE_HEADROOM")]
    return "/".join(m.group(1) for m in found) if all(found) else "?"


def headroom_section(sweep, q):
    """The sweep's table and the rule it picks."""
    if not sweep:
        return []
    L = ["\n## Shrink-on-load rule (decode headroom), chosen by measurement\n",
         "Safelight on the JPEG originals under each rule. A rule `h` decodes the JPEG at the smallest DCT scale whose longest edge is at least h x the largest output's, "
         "and resamples a smaller output from a larger one when that one has h over it; `h/half` asks `half` instead at the 1/2 scale, `h/half/eighth` also `eighth` at the 1/8 scale. "
         "Chroma is upsampled by repetition merged with the colour conversion (the engine's default when every output is a downscale) except in the rule marked `fancy` (libjpeg-turbo's triangular filter). "
         "ms per job summed over the 4, 12 and 24 MP originals, and how many outputs have a DSSIM as good as sharp's (2% tolerance) in this run's quality table.\n"]
    jobs = sorted({k.split(" ", 1)[1] for k in next(iter(sweep.values())).keys()}, key=lambda j: (j in ("thumbs", "variants"), j.split(":")[0], int(j.split(":")[1]) if ":" in j else 0))
    L.append("| headroom | " + " | ".join(jobs) + " | total ms | DSSIM cells as good as sharp | worse than sharp |")
    L.append("|---|" + "---|" * (len(jobs) + 3))
    ok_rules = []
    for h, per_cell in sweep.items():
        good = total = 0
        worse = []
        for _, (_, scores) in per_cell.items():
            for key, score in scores.items():
                sharp = q.get(key, {}).get("sharp")
                if sharp:
                    total += 1
                    if score <= sharp[0] * 1.02:
                        good += 1
                    else:
                        worse.append(key.replace(".jpg", ""))
        per_job = {j: sum(v[0] for k, v in per_cell.items() if k.split(" ", 1)[1] == j) for j in jobs}
        ms_total = sum(per_job.values())
        if good == total:
            ok_rules.append((ms_total, h))
        L.append(f"| {h} | " + " | ".join(f"{per_job[j]:.1f}" for j in jobs) + f" | {ms_total:.1f} | {good}/{total} | {', '.join(worse) or '-'} |")
    if ok_rules:
        best = min(ok_rules)[1]
        L.append(f"\nFastest rule with every cell as good as sharp's in this run: **headroom {best}** (the engine's default, `HEADROOM`/`HALF_SCALE_HEADROOM`/`EIGHTH_SCALE_HEADROOM` in `shared/engine/src`, is {engine_headroom()}).")
    else:
        fewest = min(sweep, key=lambda h: (sum(1 for _, (_, sc) in sweep[h].items() for k, v in sc.items() if q.get(k, {}).get("sharp") and v > q[k]["sharp"][0] * 1.02), sum(v[0] for v in sweep[h].values())))
        L.append(f"\nNo rule keeps every cell as good as sharp's in this run; the fewest worse cells, then the fastest: **headroom {fewest}** (the engine's default, `HEADROOM`/`HALF_SCALE_HEADROOM`/`EIGHTH_SCALE_HEADROOM` in `shared/engine/src`, is {engine_headroom()}).")
    return L


def write_report(a, tools, rows_a, rows_b, floor, rss, tp, q, rows_c, avif_out, sweep, spread):
    """BENCHMARKS.md (at `a.out`) from the run's figures; `spread` is the ratios' range over the
    rounds per (input, job) and tool."""
    def cell(med, t, key=None):
        """`ms (ratio to sharp)`, plus the ratio's range over the rounds when known."""
        if t not in med:
            return "-"
        if "sharp" not in med:
            return f"{med[t]:.1f}"
        text = f"{med[t]:.1f} ({fmt_ratio(med[t] / med['sharp'])}"
        lo_hi = spread.get(key, {}).get(t) if key else None
        if lo_hi and t != "sharp":
            text += f", {lo_hi[0]:.2f}-{lo_hi[1]:.2f}"
        return text + ")"

    def set_table(rows):  # the default sets of one original: b1 thumbnails, b2 variants
        return table(["input", "job", *tools], ([inp, "b1 thumbnails" if job == "thumbs" else "b2 variants",
                                                 *(cell(med, t, (inp, job)) for t in tools)] for inp, job, med, _ in rows))

    L = []
    cpu = version(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])
    L.append("# Benchmarks: Safelight's image engine side by side\n")
    L.append("Regenerated by `make bench` (`bench/run.sh`); do not edit by hand. Machine noise is real here:")
    L.append("read the **ratios to sharp** (same run, tools interleaved), not the milliseconds.\n")
    L.append(f"- Machine: {os.cpu_count()} vCPU, {cpu.strip()}, {platform.system()} {platform.release()}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    sharp_pkg = os.path.join(BENCH, "node_modules", "sharp", "package.json")
    sharp_v = version(["node", "-p", f"require('{sharp_pkg}').version"])
    vips_v = version([PY, "-c", "import pyvips; print(pyvips.__version__, 'with libvips', '.'.join(str(pyvips.version(i)) for i in range(3)))"])
    pil_v = version([PY, "-c", "import PIL; print(PIL.__version__)"])
    L.append(f"- Tools: Safelight (`safelight`: libjpeg-turbo + libwebp; `safelight-pure`: jpeg-decoder/jpeg-encoder, lossless WebP), "
             f"sharp {sharp_v}, pyvips {vips_v}, Pillow {pil_v}")
    L.append("- Corpus: mate-backgrounds' `Elephants_5640x3172.jpg` (Debian) resized to 4, 12 and 24 MP, baseline 4:2:0 JPEG q90; 12 MP also as PNG and WebP q90 (`bench/tools/make_corpus.py`).")
    L.append(f"- Latency: median of {a.rounds} interleaved rounds x {a.iters} timed runs (after one warm-up) per tool and cell, each process pinned to one core (`taskset -c 0`) at the highest CPU weight (`nice -n -20`: the machine is shared), libvips at one thread. "
             "Outputs: JPEG q80 (4:2:0, optimised Huffman), WebP q80; longest edge as given; EXIF autorotate on.")
    L.append("- Several outputs: sharp `clone()`s one input pipeline; pyvips calls `thumbnail_buffer` per output; Pillow opens once, drafts for the largest and `thumbnail()`s copies; Safelight decodes once in `render`.\n")

    L.extend(goals(rows_a, rows_b, floor, rss, q, tp))
    L.append("Where the time goes in the cells that miss (perf profiles, by hand): [bench/PROFILE.md](bench/PROFILE.md).\n")
    L.append("## (a) One output: ms (ratio to sharp, and its range over the rounds)\n")
    L.extend(table(["input", "job", *tools], ([inp, f"{job} q80", *(cell(med, t, (inp, job)) for t in tools)]
                                            for inp, job, med, _ in rows_a)))

    L.append("\n## (b) One original -> a default set: ms (ratio to sharp, and its range over the rounds)\n")
    L.append("b1 = thumbnails 150/300/600 JPEG; b2 = variants 1280/2048 as JPEG and WebP.\n")
    L.extend(set_table(rows_b))

    L.append("\n## (c) New formats and colour\n")
    L.append("AVIF originals (`12mp.avif`: the 12 MP picture, libavif/aom q75 4:2:0) and a Display P3-tagged JPEG (`12mp-p3.jpg`: the same JPEG plus the profile) "
             "through the default sets; a tool that cannot read the input shows `-`; the AVIF rows compare Safelight with sharp only, at half the timed runs (the others take seconds per AVIF decode). Safelight converts the P3 outputs to sRGB (moxcms); sharp does too (lcms2).\n")
    L.extend(set_table(rows_c))
    cost = []
    for job in ("thumbs", "variants"):
        plain = next((m for i, j, m, _ in rows_b if i == "12mp.jpg" and j == job), None)
        p3 = next((m for i, j, m, _ in rows_c if i == "12mp-p3.jpg" and j == job), None)
        if plain and p3 and "safelight" in plain and "safelight" in p3:
            cost.append(f"{job}: {p3['safelight'] - plain['safelight']:+.1f} ms ({p3['safelight'] / plain['safelight'] - 1:+.0%})")
    if cost:
        L.append("\nCost of the ICC conversion for Safelight (P3 row minus the untagged 12mp.jpg row of (b), same run): " + "; ".join(cost) + ".\n")
    L.append("AVIF output from the 12 MP JPEG: Safelight (ravif/rav1e, speed 8, quality 80 = the spec default) against sharp (libheif/aom, effort 4 = its default; "
             "its default quality 50, and for 1280 px also higher qualities, to compare at matched quality). "
             "ms (ratio to sharp), DSSIM against the float reference (lower is better) and bytes.\n")
    L.append("| job | sharp quality | " + " | ".join(f"{t} ms | {t} DSSIM (bytes)" for t in ("safelight", "sharp")) + " |")
    L.append("|---|---|" + "---|---|" * 2)
    for job, sq, med, scores in avif_out:
        cells = []
        for t in ("safelight", "sharp"):
            cells.append(cell(med, t, ("12mp.jpg", job) if sq == "50" else None))
            cells.append(f"{scores[t][0]:.5f} ({scores[t][1]:,})" if t in scores else "-")
        L.append(f"| {job} | {sq} | " + " | ".join(cells) + " |")
    matched = [(abs(sc["sharp"][0] - sc["safelight"][0]), j, sq, m, sc) for j, sq, m, sc in avif_out
               if j == "avif:1280" and "sharp" in sc and "safelight" in sc]
    if matched:
        _, j, sq, m, sc = min(matched)
        L.append(f"\nMatched quality (the sharp row whose DSSIM is closest to Safelight's at 1280 px): sharp q{sq}; Safelight takes "
                 f"{fmt_ratio(m['safelight'] / m['sharp'])} sharp's time and {sc['safelight'][1] / sc['sharp'][1]:.2f}x its bytes "
                 f"(DSSIM {sc['safelight'][0]:.5f} vs {sc['sharp'][0]:.5f}).")
    L.append("\nHEIC/HEIF originals: Safelight refuses them as `unsupported` (no licence-clean HEVC decoder for a static Lambda build; see the README), so there is no HEIC row.")

    L.append("\n## The entropy-decode floor\n")
    L.append("libjpeg-turbo decoding the file at 1/8 scale and nothing else (`safelight-bench floor`), against Safelight's whole b1 job.\n")
    L.append("| input | floor ms | Safelight b1 ms | b1 / floor |")
    L.append("|---|---|---|---|")
    for inp, f in floor.items():
        b1 = next((m for i, j, m, _ in rows_b if i == inp and j == "thumbs"), None)
        if b1 and "safelight" in b1:
            L.append(f"| {inp} | {f:.1f} | {b1['safelight']:.1f} | {b1['safelight'] / f:.2f}x |")

    L.append("\n## Peak RSS of one process (MB, ratio to sharp)\n")
    L.append("Whole-process maximum resident set (`wait4`), so each runtime's own baseline (Node.js, CPython + libvips) is included.\n")
    L.extend(table(["render", *tools], ([label, *(f"{m[t]:.0f} ({fmt_ratio(m[t] / m['sharp'])})" for t in tools)]
                                        for label, m in rss.items())))

    L.append("\n## Throughput with 2 workers (images/s, ratio to sharp; higher is better)\n")
    L.append("Two worker processes of the tool at once, one thread each, unpinned.\n")
    L.extend(table(["job", *tools], ([label, *(f"{m[t]:.1f} ({fmt_ratio(m[t] / m['sharp'])})" for t in tools)]
                                     for label, m in tp.items())))

    L.extend(headroom_section(sweep, q))

    L.append("\n## Quality and size (JPEG originals)\n")
    L.append("DSSIM of each output against a float reference (the original decoded, resized in linear light with f32 Lanczos3); 0 is identical, **lower is better**. Bytes in parentheses. "
             "A Safelight figure in bold is more than 2% worse than sharp's.\n")

    def q_cell(m, t):
        if t not in m:
            return "-"
        text = f"{m[t][0]:.5f} ({m[t][1]:,})"
        worse = t == "safelight" and "sharp" in m and m[t][0] > m["sharp"][0] * 1.02
        return f"**{text}**" if worse else text
    L.extend(table(["input", "output", *tools], ([*key.split(" ", 1), *(q_cell(m, t) for t in tools)] for key, m in q.items())))
    L.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
