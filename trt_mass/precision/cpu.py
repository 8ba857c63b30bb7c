"""What this CPU's INT8 kernels can do: ONNX Runtime's x86 u8 x s8 path saturates without VNNI."""

from __future__ import annotations

from pathlib import Path

# VNNI's VPDPBUSD accumulates u8 x s8 products in int32; without it ONNX Runtime's AVX2 kernels use
# VPMADDUBSW, whose int16 pair sums saturate, so full-range int8 weights lose findings (ONNX Runtime's
# quantization guide: quantize with reduce_range, 7-bit weights, for such CPUs).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avx_vnni_int8"})


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """True or False on x86 Linux (the flags of /proc/cpuinfo); None where that cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(VNNI_FLAGS & set(line.partition(":")[2].split()))
    return None
