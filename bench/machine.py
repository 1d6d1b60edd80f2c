"""The machine line every bench prints first: cores, CPU model, load, and extra versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path


# The instruction sets that decide int8 speed, best first. The int8 embedder's lead over torch
# differs by machine (2.1-2.7x idle on one 2-core AMD EPYC, 3.9-4.1x on another with VNNI:
# bench/README.md), so every bench names the best one present.
_ISA = ("amx_int8", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


def machine(*extras: str) -> str:
    """``# N cores, CPU (ISA), <extras>, python X, load avg a, b, c``."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = next((f for f in _ISA if f in flags), None)
    if isa:
        model += f" ({isa})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    parts = [f"{cores} cores", model, *extras, f"python {platform.python_version()}", f"load avg {load}"]
    return "# " + ", ".join(parts)
