"""The machine a benchmark ran on: CPU, cores, memory, GPUs and driver (nvidia-smi), load, Python and the
versions of the packages that matter.  Nothing here imports torch, tensorrt or onnxruntime.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from trt_mass.version import package_versions

VERSION_PACKAGES = ("trt_mass", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu13", "tensorrt-cu12",
                    "cuda-python", "torch", "torchvision", "onnx", "numpy", "pydicom", "pillow")


def _cpuinfo() -> tuple[str, int | None]:
    model, cores = platform.processor() or platform.machine(), set()
    try:
        physical = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model in ("", platform.processor(), platform.machine()):
                model = value
            elif key == "physical id":
                physical = value
            elif key == "core id":
                cores.add((physical, value))
    except OSError:
        pass
    return model, (len(cores) or None)


def _memory_total_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _nvidia_smi(*query: str) -> list[list[str]]:
    """Rows of `nvidia-smi --query-...=... --format=csv,noheader,nounits`; [] without a GPU or driver."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        result = subprocess.run([binary, *query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return [[cell.strip() for cell in line.split(",")] for line in result.stdout.splitlines() if line.strip()]


def gpu_facts() -> list[dict[str, Any]]:
    gpus = []
    for row in _nvidia_smi("--query-gpu=name,driver_version,memory.total,compute_cap"):
        if len(row) >= 4:
            gpus.append({"name": row[0], "driver": row[1], "memory_total_mib": _number(row[2]),
                         "compute_capability": row[3]})
    return gpus


def gpu_process_used_mib() -> float | None:
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory")
    used = [_number(row[1]) for row in rows if len(row) >= 2 and row[0] == str(os.getpid())]
    numbers = [u for u in used if u is not None]
    return sum(numbers) if numbers else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """CPU, cores, memory, GPUs and driver, load average now, Python, package versions."""
    cpu_model, physical = _cpuinfo()
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable,
        "memory_total_mib": _memory_total_mib(),
        "gpus": gpu_facts(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(VERSION_PACKAGES),
    }


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)
