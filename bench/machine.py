"""The machine line every bench prints first: cores, CPU model, load, and extra versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine(*extras: str) -> str:
    """``# N cores, CPU, <extras>, python X, load avg a, b, c``."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    parts = [f"{cores} cores", model, *extras, f"python {platform.python_version()}", f"load avg {load}"]
    return "# " + ", ".join(parts)
