"""Make TensorRT's real Python API readable on a machine without TensorRT: `python -m tests.tensorrt_api.build`.

Writes build/trt-stubs/ (git-ignored):

    site/   the real bindings (wheel tensorrt-cu13-bindings, PyPI) and the real `tensorrt` package
            (sdist tensorrt-cu13, PyPI: `from tensorrt_bindings import *`)
    lib/    stand-ins for libnvinfer / libnvonnxparser / libnvinfer_plugin (standin.c: nine entry points
            that return NULL), so that the bindings import; used only through LD_LIBRARY_PATH of a subprocess
    stubs/  .pyi stubs of the bindings (pybind11-stubgen), mechanically repaired, for mypy (mypy.ini)

Runs once per TensorRT version (build/trt-stubs/READY names it); needs pip's access to PyPI and a C
compiler.  `make test` runs it before type-checking the TensorRT layer against the stubs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

TENSORRT_VERSION = "11.4.0.106"
HERE = Path(__file__).resolve().parent
LIBRARIES = ("libnvinfer.so.11", "libnvonnxparser.so.11", "libnvinfer_plugin.so.11")
# Enums whose representation pybind11-stubgen cannot place by itself.
ENUMS = "DataType|EngineStat|Severity|PluginFieldType|ExecutionContextAllocationStrategy:tensorrt_bindings.tensorrt"
TENSORRT_STUB = ("from tensorrt_bindings import *\n"
                 "from tensorrt_bindings import __version__ as __version__\n"
                 "from tensorrt_bindings import nptype as nptype\n")


def environment(out: Path) -> dict[str, str]:
    """The environment of a process that imports the real bindings against the stand-in libraries."""
    library_path = os.pathsep.join(p for p in (str(out / "lib"), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    python_path = os.pathsep.join(p for p in (str(out / "site"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "LD_LIBRARY_PATH": library_path, "PYTHONPATH": python_path}


def ready(out: Path) -> bool:
    marker = out / "READY"
    return marker.is_file() and marker.read_text().strip() == TENSORRT_VERSION


def build(out: Path) -> None:
    if ready(out):
        return
    if out.exists():
        shutil.rmtree(out)
    downloads = out / "downloads"
    for package in ("tensorrt-cu13-bindings", "tensorrt-cu13"):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        f"{package}=={TENSORRT_VERSION}", "-d", str(downloads)], check=True)
    site = out / "site"
    (wheel,) = downloads.glob("tensorrt_cu13_bindings-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    (sdist,) = downloads.glob("tensorrt_cu13-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/tensorrt/" in m.name and m.isfile()]
        for member in members:
            member.name = member.name[member.name.index("/tensorrt/") + 1:]
        archive.extractall(site, members=members, filter="data")
    (out / "lib").mkdir()
    for library in LIBRARIES:
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out / "lib" / library), str(HERE / "standin.c")],
                       check=True)
    stubs = out / "stubs"
    subprocess.run([sys.executable, "-m", "pybind11_stubgen", "tensorrt_bindings", "-o", str(stubs),
                    "--ignore-all-errors", "--enum-class-locations", ENUMS], check=True, env=environment(out),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for path in stubs.rglob("*.pyi"):
        path.write_text(repair(path.read_text()))
    (stubs / "tensorrt").mkdir()
    (stubs / "tensorrt" / "__init__.pyi").write_text(TENSORRT_STUB)
    (out / "READY").write_text(TENSORRT_VERSION + "\n")


def repair(stub: str) -> str:
    """Make the generated stubs valid Python: what pybind11-stubgen writes wrongly for TensorRT 11.4.

    - parameters named `in` (a keyword) become `in_`;
    - a parameter without a default after ones with defaults gets `= ...` (C++ allows it, Python not).
    """
    lines = []
    for line in stub.splitlines():
        if line.lstrip().startswith("def "):
            line = re.sub(r"([(,]\s*)in:", r"\1in_:", line)
            line = _default_after_defaults(line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _default_after_defaults(line: str) -> str:
    head, _, rest = line.partition("(")
    parameters, close, tail = rest.rpartition(") ->")
    if not close:
        return line
    parts = _split_top_level(parameters)
    seen_default = False
    for index, part in enumerate(parts):
        name = part.strip()
        if name.startswith("*") or name in ("self", "/"):
            continue
        if "=" in name:
            seen_default = True
        elif seen_default:
            parts[index] = part + " = ..."
    return f"{head}({','.join(parts)}{close}{tail}"


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/trt-stubs"))
