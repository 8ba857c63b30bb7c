"""The one output step: a DetectionResult becomes its result JSON, overlay picture and DICOM objects.

`trtmass detect`, the watch daemon and `trtmass bench` all end in ResultWriter.write, so a result
looks the same whichever way it was made.  For one image, in this order:

    OUT/<stem>.overlay.png      with OutputOptions.overlay (findings red, ground truth green)
    OUT/<SOP UID>.<kind>.dcm    CAD SR / GSPS / SC for DICOM inputs, with OutputOptions.dicom_kinds
    OUT/<stem>.json             last: its presence means the whole result was written

<stem> is the SOP Instance UID (the file name for rasters).  Every file is written atomically
(trt_mass.atomic).  The JSON (see `result_record`) carries UIDs, never patient data.  The overlay and
the DICOM objects show the findings at or above the operating point (trt_mass.outputs.operating_point);
the JSON keeps every candidate, each with `shown`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import fitting_name, write_json_atomic
from trt_mass.geometry import Finding
from trt_mass.inputs.dicom import Mammogram
from trt_mass.metadata import ModelMetadata
from trt_mass.outputs.operating_point import SHOW_ALL, OperatingPoint
from trt_mass.outputs.overlay import render_overlay, write_overlay
from trt_mass.pipeline import DetectionResult

COORDINATES = "original pixels, xyxy (x right, y down, pixel (0,0) spans [0,1) x [0,1))"


@dataclass(frozen=True)
class OutputOptions:
    """What is written besides the JSON.

    Attributes:
        overlay: a downscaled PNG with the boxes and scores (<stem>.overlay.png).
        dicom_kinds: DICOM objects for DICOM inputs, any of "sr", "gsps", "sc" (trt_mass.outputs.dicom).
        operating_point: which findings the overlay and the DICOM objects show.
    """

    overlay: bool = False
    dicom_kinds: tuple[str, ...] = ()
    operating_point: OperatingPoint = SHOW_ALL


@dataclass(frozen=True)
class WrittenResult:
    """Where a result went and what it said."""

    json_path: Path
    record: dict[str, Any]

    @property
    def findings(self) -> int:
        """How many findings are shown (at or above the operating point)."""
        return sum(1 for finding in self.record["findings"] if finding["shown"])

    @property
    def candidates(self) -> int:
        """How many candidates the JSON lists, shown or not."""
        return len(self.record["findings"])


# A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1).
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


RESULT_STEM_BYTES = 150  # room for ".overlay.png", "-2" and a temporary's additions within 255 bytes


def result_stem(mammogram: Mammogram, source: Path) -> str:
    """The name a result is filed under: the SOP Instance UID, else the input's file name without suffix.

    A header value that is not a UID ("../x", 300 digits) never names a file: it could write outside the
    output folder or fail there, so such a file is filed under its own name.
    """
    uid = mammogram.sop_instance_uid
    if uid and len(uid) <= 64 and _UID.fullmatch(uid):
        return uid
    return fitting_name(source.stem, budget=RESULT_STEM_BYTES)


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of decoded pixels and their shape: one image whatever its file's encoding or header."""
    digest = hashlib.sha256(f"{pixels.dtype.str}{pixels.shape}".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


class StemAllocator:
    """Result names for one batch: a second image with the same stem gets `<stem>-2`, and so on."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, mammogram: Mammogram, source: Path) -> str:
        stem = result_stem(mammogram, source)
        candidate, number = stem, 2
        while candidate in self._used:
            candidate, number = f"{stem}-{number}", number + 1
        self._used.add(candidate)
        return candidate


def result_record(mammogram: Mammogram, result: DetectionResult, metadata: ModelMetadata, backend: str,
                  timings_ms: dict[str, float], point: OperatingPoint = SHOW_ALL) -> dict[str, Any]:
    """The JSON of one image: where it came from (UIDs, no patient data), findings in original pixels,
    each with whether it is shown at `point`."""
    spacing = result.pixel_spacing_mm
    return {
        "image": {**mammogram.describe(), "pixel_spacing_mm": None if spacing is None else list(spacing)},
        "coordinates": COORDINATES,
        "operating_point": point.to_dict(),
        "findings": [{**f.to_dict(), "shown": point.shows(f.score)} for f in result.findings],
        "model": {
            "model_id": metadata.model_id,
            "weights_sha256": metadata.weights_sha256,
            "init": metadata.init,
            "precision": metadata.precision,
            "backend": backend,
        },
        # Which of the model's views ran (0: the full view, then the tiles row by row) and why.
        "views": {"run": list(result.views), "of": metadata.graph_spec.geometry.num_views,
                  "selection": result.view_selection},
        "timings_ms": {k: round(v, 2) for k, v in timings_ms.items()},
    }


class ResultWriter:
    """Writes the results of one model, run on one backend, into one folder.

    Args:
        out_dir: the results folder (it must exist: the caller owns it).
        metadata: the model's metadata (what the results say about the model; the DICOM UIDs).
        backend: the backend that ran it.
        options: overlay and DICOM objects.
    """

    def __init__(self, out_dir: Path, metadata: ModelMetadata, backend: str,
                 options: OutputOptions = OutputOptions(),
                 deliver: Callable[[list[Path]], None] | None = None) -> None:
        """`deliver(paths)` queues the DICOM objects for their destinations (the daemon's outbox); it runs
        before the JSON is written, so a result whose JSON exists is never missing from the outbox."""
        self.out_dir = Path(out_dir)
        self.metadata = metadata
        self.backend = backend
        self.options = options
        self.deliver = deliver

    def json_path(self, stem: str) -> Path:
        return self.out_dir / f"{stem}.json"

    def write(self, source: Path, mammogram: Mammogram, result: DetectionResult, stem: str,
              timings_ms: dict[str, float], truth_xyxy: np.ndarray | None = None,
              extra: dict[str, Any] | None = None) -> WrittenResult:
        """Write the overlay and DICOM objects (as configured), then the JSON.

        Args:
            source: the input file (DICOM objects copy its study and patient modules).
            mammogram: the image as loaded.
            result: its detection.
            stem: the result's name (result_stem, or StemAllocator for a batch).
            timings_ms: the times so far (e.g. read_decode_ms and the result's own); write_ms is added.
            truth_xyxy: ground-truth boxes [K, 4] (original pixels) drawn on the overlay.
            extra: top-level fields added to the JSON (the watch daemon's input_sha256).

        Raises InputError when the source header cannot be referenced by DICOM objects, OSError when the
        folder cannot be written.
        """
        started = time.perf_counter()
        point = self.options.operating_point
        shown = [finding for finding in result.findings if point.shows(finding.score)]
        record = result_record(mammogram, result, self.metadata, self.backend, timings_ms, point)
        record.update(extra or {})
        if self.options.dicom_kinds:  # first: a header they refuse leaves no overlay behind either
            record["dicom_outputs"] = self._dicom_outputs(source, mammogram, shown, stem)
            if self.deliver is not None and record["dicom_outputs"]:
                self.deliver([self.out_dir / name for name in record["dicom_outputs"].values()])
        if self.options.overlay:
            write_overlay(self.out_dir / f"{stem}.overlay.png", render_overlay(mammogram.pixels, shown, truth_xyxy))
        record["timings_ms"]["write_ms"] = round(1000 * (time.perf_counter() - started), 2)
        path = self.json_path(stem)
        write_json_atomic(path, record)
        return WrittenResult(path, record)

    def check_source(self, source: Path, mammogram: Mammogram) -> None:
        """Raise InputError now, before inference, when the DICOM outputs asked for cannot reference
        `source` (no SOP Instance UID, no Study UID, ...): `write` would refuse it after the work is done."""
        from trt_mass.outputs.dicom import read_source

        if self.options.dicom_kinds and mammogram.raster_scaling is None:
            read_source(source)

    def _dicom_outputs(self, source: Path, mammogram: Mammogram, shown: list[Finding],
                       stem: str) -> dict[str, str] | None:
        """The CAD SR / GSPS / SC of a DICOM input, with the shown findings; None for rasters (nothing to
        reference). A DICOM input without the UIDs they reference is refused by read_source, not skipped."""
        from trt_mass.outputs.dicom import ModelIdentity, write_dicom_outputs

        if mammogram.raster_scaling is not None:
            return None
        identity = ModelIdentity(self.metadata.weights_sha256, self.metadata.model_id, self.metadata.precision)
        written = write_dicom_outputs(source, mammogram.pixels, shown, identity, self.out_dir,
                                      self.options.dicom_kinds, stem)
        return {kind: target.name for kind, target in written.items()}
