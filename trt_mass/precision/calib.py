"""Calibration sets: which images calibrate an INT8 variant, how they were chosen, and their content hash.

A manifest (calib/NAME.toml) lists image files with their SHA-256.  Its content hash covers every
listed path and file hash, so a changed, added or removed image changes it, and an INT8 model's
metadata can name exactly the set it was calibrated on.  The images are read through the inference
path (loader -> canvas) by `CanvasReader`, so the ranges are those of what the engine graph sees.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from trt_mass.atomic import refuse_overwriting, write_text_atomic
from trt_mass.errors import ConfigError, InputError
from trt_mass.metadata import file_sha256
from trt_mass.progress import ProgressLine
from trt_mass.version import __version__

MANIFEST_FORMAT = 1
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CalibImage:
    """One listed image: path relative to the manifest's root, its SHA-256 and its stratum."""

    path: str
    sha256: str
    stratum: str


@dataclass(frozen=True)
class CalibrationSet:
    """A calibration manifest as loaded (paths resolved against `root`)."""

    name: str
    root: Path
    images: tuple[CalibImage, ...]
    content_sha256: str
    selection: dict[str, Any] = field(default_factory=dict)
    strata: dict[str, dict[str, int]] = field(default_factory=dict)
    manifest_path: Path | None = None

    def paths(self) -> list[Path]:
        return [self.root / image.path for image in self.images]

    def verify(self) -> None:
        """Raise InputError naming the first image that is missing or differs from the manifest."""
        for image in self.images:
            path = self.root / image.path
            if not path.is_file():
                raise InputError(str(path), f"listed in calibration set {self.name!r} but missing")
            if file_sha256(path) != image.sha256:
                raise InputError(str(path), f"changed since calibration set {self.name!r} was made "
                                            "(rerun `trtmass calib make`)")


def content_hash(images: tuple[CalibImage, ...] | list[CalibImage]) -> str:
    """SHA-256 over the sorted (path, file hash) pairs: changes whenever any listed image changes."""
    digest = hashlib.sha256()
    for image in sorted(images, key=lambda i: i.path):
        digest.update(f"{image.path}\t{image.sha256}\n".encode())
    return digest.hexdigest()


# --- choosing the images ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    path: Path
    finding: str  # "mass", "normal" or "unknown"
    vendor: str
    view: str

    @property
    def stratum(self) -> str:
        return f"{self.finding}|{self.vendor}|{self.view}"


def find_candidates(source: str) -> list[Candidate]:
    """Images of a data set SPEC (a folder with truth.csv, mias:DIR, inbreast:DIR) or a plain folder.

    Masses/normals come from the data set's labels where it has them; vendor and view from DICOM headers.
    """
    from trt_mass.datasets.labelled import load_dataset, parse_data_spec
    from trt_mass.inputs.files import collect_inputs

    spec = parse_data_spec(source)
    root = spec.folder
    if not root.is_dir():
        raise ConfigError(f"calibration source {root} is not a folder")
    labelled = spec.labelled_by_kind or (root / "truth.csv").is_file()
    if labelled:
        samples = load_dataset(source)
        entries = [(s.path, "mass" if len(s.boxes) else "normal") for s in samples]
    else:
        entries = [(p, UNKNOWN) for p in collect_inputs([root])]
    if not entries:
        raise ConfigError(f"no DICOM, PNG or TIFF images in {root}")
    return [Candidate(path, finding, *_vendor_and_view(path)) for path, finding in entries]


def _vendor_and_view(path: Path) -> tuple[str, str]:
    from trt_mass.inputs.dicom import is_dicom_file

    if not is_dicom_file(path):
        return UNKNOWN, UNKNOWN
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # an unreadable header is reported when the image itself is loaded
        return UNKNOWN, UNKNOWN
    vendor = str(getattr(header, "Manufacturer", "") or UNKNOWN).strip() or UNKNOWN
    view = str(getattr(header, "ViewPosition", "") or UNKNOWN).strip() or UNKNOWN
    return vendor.replace("|", "/"), view.replace("|", "/")


def allocate(strata_sizes: dict[str, int], count: int) -> dict[str, int]:
    """Images per stratum: proportional (largest remainder), at least one per stratum when count allows."""
    total = sum(strata_sizes.values())
    count = min(count, total)
    names = sorted(strata_sizes)
    if count >= len(names):
        base = {name: 1 for name in names}
        remaining = count - len(names)
        spare = {name: strata_sizes[name] - 1 for name in names}
    else:
        base = {name: 0 for name in names}
        remaining = count
        spare = dict(strata_sizes)
    spare_total = sum(spare.values())
    if remaining and spare_total:
        quotas = {name: remaining * spare[name] / spare_total for name in names}
        floors = {name: min(spare[name], int(quotas[name])) for name in names}
        left = remaining - sum(floors.values())
        for name in sorted(names, key=lambda n: (-(quotas[n] - floors[n]), n)):
            if left == 0:
                break
            if floors[name] < spare[name]:
                floors[name] += 1
                left -= 1
        base = {name: base[name] + floors[name] for name in names}
    return base


def choose(candidates: list[Candidate], count: int, seed: int) -> list[Candidate]:
    """Stratified random sample of `count` candidates (deterministic for a seed)."""
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if count > len(candidates):
        raise ConfigError(f"--count {count}: the source has only {len(candidates)} images")
    by_stratum: dict[str, list[Candidate]] = {}
    for candidate in sorted(candidates, key=lambda c: str(c.path)):
        by_stratum.setdefault(candidate.stratum, []).append(candidate)
    quota = allocate({name: len(group) for name, group in by_stratum.items()}, count)
    rng = random.Random(seed)
    chosen: list[Candidate] = []
    for name in sorted(by_stratum):
        chosen.extend(rng.sample(by_stratum[name], quota[name]))
    return sorted(chosen, key=lambda c: str(c.path))


def make_manifest(source: str, count: int, seed: int, output: Path, name: str | None = None,
                  progress: bool = False) -> CalibrationSet:
    """Choose the images, hash them and write the manifest TOML to `output`."""
    candidates = find_candidates(source)
    refuse_overwriting({"-o/--output": output}, {"an image of the set's source": [c.path for c in candidates]})
    chosen = choose(candidates, count, seed)
    _refuse_unreadable([c.path for c in chosen], progress)
    from trt_mass.datasets.labelled import parse_data_spec

    root = parse_data_spec(source).folder.resolve()
    images = tuple(
        CalibImage(os.path.relpath(c.path.resolve(), root), file_sha256(c.path), c.stratum) for c in chosen)
    strata: dict[str, dict[str, int]] = {}
    for candidate in candidates:
        strata.setdefault(candidate.stratum, {"available": 0, "chosen": 0})["available"] += 1
    for candidate in chosen:
        strata[candidate.stratum]["chosen"] += 1
    selection = {
        "source": source,
        "count_requested": count,
        "seed": seed,
        "method": "stratified random sample over finding (mass/normal/unknown) x vendor x view; "
                  "proportional allocation with at least one image per stratum when the count allows",
    }
    calibration = CalibrationSet(name or output.stem, root, images, content_hash(images), selection, strata, output)
    write_manifest(calibration, output)
    return calibration


def _refuse_unreadable(paths: list[Path], progress: bool) -> None:
    """Decode every chosen image now: a broken one would otherwise fail `quantize` later, after minutes of
    calibration, or be left out of a set whose hash claims it."""
    from trt_mass.inputs.files import read_image

    unreadable = []
    with ProgressLine(progress) as line:
        for number, path in enumerate(paths, 1):
            line.update(f"checking: {number}/{len(paths)} images")
            try:
                read_image(path)
            except InputError as error:
                unreadable.append(str(error))
    if unreadable:
        more = f" (and {len(unreadable) - 5} more)" if len(unreadable) > 5 else ""
        raise ConfigError(f"{len(unreadable)} chosen calibration image(s) cannot be read: {'; '.join(unreadable[:5])}"
                          f"{more}. Fix or remove them and make the set again")


# --- TOML in and out --------------------------------------------------------------------------------

def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_string(str(value))


def write_manifest(calibration: CalibrationSet, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    root = os.path.relpath(calibration.root, output.parent.resolve())
    lines = [
        "# Calibration set written by `trtmass calib make`; do not edit by hand (the hashes would not match).",
        f"# Re-create: trtmass calib make --from {calibration.selection.get('source')} "
        f"--count {calibration.selection.get('count_requested')} --seed {calibration.selection.get('seed')} "
        f"-o {output}",
        "[calibration]",
        f"format = {MANIFEST_FORMAT}",
        f"name = {_toml_string(calibration.name)}",
        f"root = {_toml_string(root)}  # relative to this file",
        f"images = {len(calibration.images)}",
        f"content_sha256 = {_toml_string(calibration.content_sha256)}",
        f"created = {_toml_string(time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))}",
        f"trt_mass_version = {_toml_string(__version__)}",
        "",
        "[selection]",
        *(f"{key} = {_toml_value(value)}" for key, value in calibration.selection.items()),
        "",
        "[strata]",
        *(f"{_toml_string(name)} = {{ available = {counts['available']}, chosen = {counts['chosen']} }}"
          for name, counts in sorted(calibration.strata.items())),
    ]
    for image in calibration.images:
        lines += ["", "[[image]]", f"path = {_toml_string(image.path)}", f"sha256 = {_toml_string(image.sha256)}",
                  f"stratum = {_toml_string(image.stratum)}"]
    write_text_atomic(output, "\n".join(lines) + "\n")


def load_manifest(path: Path) -> CalibrationSet:
    """Read a manifest; ConfigError when it is malformed or its content hash does not match its list."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such calibration manifest") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a valid TOML manifest ({error})") from error
    try:
        header = data["calibration"]
        if header["format"] != MANIFEST_FORMAT:
            raise ConfigError(f"{path}: manifest format {header['format']!r}, this trt_mass reads {MANIFEST_FORMAT}")
        images = tuple(CalibImage(str(i["path"]), str(i["sha256"]), str(i.get("stratum", UNKNOWN)))
                       for i in data.get("image", []))
        recorded = str(header["content_sha256"])
        root = (path.parent / str(header["root"])).resolve()
        name = str(header["name"])
    except KeyError as error:
        raise ConfigError(f"{path}: manifest lacks {error}") from error
    except (TypeError, AttributeError) as error:  # a table where a list belongs, a number where a table does
        raise ConfigError(f"{path}: malformed manifest ({error}); rerun `trtmass calib make`") from error
    if not images:
        raise ConfigError(f"{path}: the calibration set lists no images")
    if content_hash(images) != recorded:
        raise ConfigError(f"{path}: content_sha256 does not match the listed images (edited by hand?); "
                          "rerun `trtmass calib make`")
    return CalibrationSet(name, root, images, recorded, dict(data.get("selection", {})),
                          dict(data.get("strata", {})), path)


# --- feeding the calibrator through the inference path ----------------------------------------------

class CanvasReader:
    """Canvases of a calibration set, exactly as `detect` builds them (loader -> letterbox canvas).

    Implements ONNX Runtime's CalibrationDataReader protocol (get_next, plus __len__/set_range for
    calibrating one image at a time, which bounds memory).
    """

    def __init__(self, calibration: CalibrationSet, geometry: Any, canvas_dtype: str, input_name: str = "canvas",
                 progress: bool = False, view_index: np.ndarray | None = None) -> None:
        from trt_mass.geometry import CanvasBuilder

        self.view_index = view_index  # a graph with view selection is calibrated on every view
        self.paths = calibration.paths()
        self.input_name = input_name
        self._line = ProgressLine(progress)
        self._builder = CanvasBuilder(geometry, canvas_dtype)
        self._iterator: Iterator[Path] = iter(self.paths)
        self._done = 0

    def __len__(self) -> int:
        return len(self.paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iterator = iter(self.paths[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        from trt_mass.inputs.files import read_image

        path = next(self._iterator, None)
        if path is None:
            return None
        self._builder.fill(read_image(path).pixels, str(path))
        self._done += 1
        self._line.update(f"calibrating: {self._done}/{len(self.paths)} images")
        if self._done == len(self.paths):
            self._line.close()
        feed = {self.input_name: self._builder.canvas.copy()}
        if self.view_index is not None:
            feed["view_index"] = self.view_index
        return feed
