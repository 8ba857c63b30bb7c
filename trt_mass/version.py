"""The version of trt_mass (pyproject.toml reads it from here) and of the packages that shape an artifact.

Every artifact's metadata records `package_versions()`; `bench` records a longer list.
"""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGES = ("trt_mass", "torch", "torchvision", "onnx", "onnxscript", "onnxsim", "onnxruntime", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """{package: installed version} read from package metadata (nothing is imported); absent = not installed."""
    from importlib import metadata  # here: `import trt_mass` (and `trtmass --help`) stays light

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
