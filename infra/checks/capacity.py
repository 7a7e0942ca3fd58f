"""The invariant that the processing stages' concurrency covers the design point, from the times
`make proof` measured (RELIABILITY.md)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from checks.template import Template, event_sources, function_setting, functions, props, resolve

# Capacity (docs/ARCHITECTURE.md, "Capacity"): a stage needs
#   rate x measured time per image x CPU share x headroom
# concurrent invocations at the design point (Little's law), where the time is the median
# Lambda time per image of the design mix (1280-2560 px originals) that `make proof` measured on
# one x86_64 core (RELIABILITY.md), and the CPU share scales it to the function's memory (Lambda
# gives one whole vCPU at 1769 MB, proportionally less below).
DESIGN_RATE = 100  # uploads per second
DESIGN_MIX_PX = (1280, 1920, 2560)
FULL_VCPU_MB = 1769
HEADROOM = 1.5
STAGE_FUNCTIONS = {"ThumbnailFunction": "thumbnail", "VariantFunction": "variant"}
RELIABILITY = Path(__file__).resolve().parents[2] / "RELIABILITY.md"


def measured_stage_ms(text: str) -> dict[str, float]:
    """The mean over the design mix of each stage's median Lambda time per image (ms), from the
    scale model's "Lambda time per image" figure; empty when the figure is missing."""
    row = next((line for line in text.splitlines() if "Lambda time per image" in line), "")
    per_class = {
        int(px): (float(thumb), float(variant))
        for px, thumb, variant in re.findall(r"(\d+) px: thumbnail (\d+(?:\.\d+)?) ms, variant (\d+(?:\.\d+)?) ms", row)
    }
    mix = [per_class[px] for px in DESIGN_MIX_PX if px in per_class]
    if len(mix) != len(DESIGN_MIX_PX):
        return {}
    return {
        "thumbnail": sum(m[0] for m in mix) / len(mix),
        "variant": sum(m[1] for m in mix) / len(mix),
    }


def needed_concurrency(stage_ms: float, memory_mb: int) -> int:
    cpu_share = min(1.0, memory_mb / FULL_VCPU_MB)
    return math.ceil(DESIGN_RATE * stage_ms / 1000 / cpu_share * HEADROOM)


def processor_concurrency_defaults_cover_the_design_point(t: Template, measured: str | None = None) -> list[str]:
    text = measured if measured is not None else (RELIABILITY.read_text() if RELIABILITY.exists() else "")
    times = measured_stage_ms(text)
    if not times:
        return ["RELIABILITY.md has no 'Lambda time per image' figure for 1280, 1920 and 2560 px (run `make proof`)"]
    out = []
    seen = set()
    for fn_name, kind, src, p in event_sources(t):
        stage = STAGE_FUNCTIONS.get(fn_name)
        if kind != "SQS" or stage is None:
            continue
        seen.add(fn_name)
        memory = int(function_setting(t, functions(t)[fn_name], "MemorySize", 128))
        cap = resolve(t, (p.get("ScalingConfig") or {}).get("MaximumConcurrency"))
        need = needed_concurrency(times[stage], memory)
        if not isinstance(cap, int) or cap < need:
            out.append(
                f"{fn_name}: MaximumConcurrency {cap} is below the {need} its stage needs at {DESIGN_RATE} uploads/s "
                f"({times[stage]:.0f} ms per image at {memory} MB)"
            )
        reserved = props(functions(t)[fn_name]).get("ReservedConcurrentExecutions")
        if isinstance(reserved, dict) and "Fn::If" in reserved:
            reserved = reserved["Fn::If"][1]
        reserved = resolve(t, reserved)
        if reserved is not None and reserved != cap:
            out.append(f"{fn_name}: reserved concurrency {reserved} differs from its source's MaximumConcurrency {cap}")
    for missing in sorted(set(STAGE_FUNCTIONS) - seen):
        out.append(f"{missing}: no SQS source found to check its capacity")
    return out
