"""docs/architecture.md matches the code: every module it lists exists, every module is listed."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"


def _modules_on_disk() -> set[str]:
    paths = {p.relative_to(REPO).as_posix() for p in (REPO / "trt_mass").rglob("*.py")}
    # A subpackage's __init__ only names its modules; the root's and cli's hold code and are listed.
    return {p for p in paths if not p.endswith("/__init__.py") or p in ("trt_mass/__init__.py",
                                                                          "trt_mass/cli/__init__.py")}


def test_every_module_is_in_the_map_and_every_listed_module_exists() -> None:
    listed = set(re.findall(r"`(trt_mass/[\w/]+\.py)`", DOC.read_text()))
    on_disk = _modules_on_disk()
    assert not on_disk - listed, f"modules missing from docs/architecture.md: {sorted(on_disk - listed)}"
    gone = sorted(p for p in listed if not (REPO / p).is_file())
    assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"


def test_docstrings_point_inside_the_repository() -> None:
    outside = [p.relative_to(REPO).as_posix() for p in (REPO / "trt_mass").rglob("*.py")
               if "DESIGN.md" in p.read_text()]
    assert not outside, f"docstrings cite a design note that is not in this repository: {outside}"
