"""Versions of the packages that shape an artifact; recorded in every artifact's metadata."""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("trt_mass", "torch", "torchvision", "onnx", "onnxscript", "onnxsim", "onnxruntime", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
