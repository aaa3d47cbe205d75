"""What the CPU can do, as far as int8 scores depend on it: recorded by every build, read by bench/cpu_consistency.py."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_flags() -> dict:
    """Model name and the instruction sets that change onnxruntime's int8 kernels (Linux /proc/cpuinfo)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return {"model": model or platform.processor(), "avx2": "avx2" in flags, "avx512_vnni": "avx512_vnni" in flags,
            "avx_vnni": "avx_vnni" in flags}
