"""One version: the package metadata pyproject.toml derives from trt_mass.version, and the versions recorded."""

from __future__ import annotations

from importlib import metadata

import trt_mass
from trt_mass.version import __version__, package_versions


def test_installed_version_is_the_code_s_version() -> None:
    assert metadata.version("trt_mass") == __version__ == trt_mass.__version__


def test_package_versions_list_what_is_installed_and_skip_what_is_not() -> None:
    found = package_versions(("numpy", "trt_mass", "no-such-package-anywhere"))
    assert set(found) == {"numpy", "trt_mass"} and found["trt_mass"] == __version__
