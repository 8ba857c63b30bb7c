"""`trtmass bench --compare-decoders`: the read + decode stage with every pixel decoder available here.

Each decoder reads the same files (read_image, as detect does: file read, decode, lookup-table pixel
pipeline), round by round with the order rotating so that drift hits all alike.  Decoders: pydicom's
plugins (one thread), OpenJPEG with one thread and with `threads`, nvImageCodec where it decodes on a GPU.
The images must come out identical (lossless files); a difference is reported, never hidden.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trt_mass.bench.report import stats
from trt_mass.errors import InputError
from trt_mass.inputs.decoders import DecoderUnavailable, PixelDecoder, default_threads, open_decoder
from trt_mass.inputs.files import read_image


def available_decoders(threads: int | None) -> tuple[dict[str, PixelDecoder], dict[str, str]]:
    """({label: decoder} that run here, {label: why not} for those that do not)."""
    count = threads or default_threads()
    wanted = {"pydicom": ("pydicom", 1), "openjpeg x1": ("openjpeg", 1), f"openjpeg x{count}": ("openjpeg", count),
              "nvimgcodec": ("nvimgcodec", 1)}
    found: dict[str, PixelDecoder] = {}
    missing: dict[str, str] = {}
    for label, (name, thread_count) in wanted.items():
        try:
            found[label] = open_decoder(name, thread_count)
        except DecoderUnavailable as error:
            missing[label] = str(error)
    return found, missing


def compare_decoders(files: list[Path], runs: int, raster_bits: int | None, threads: int | None) -> dict[str, Any]:
    """Median read + decode ms per decoder, its ratio to pydicom's, and whether the images agree."""
    decoders, missing = available_decoders(threads)
    samples: dict[str, list[float]] = {label: [] for label in decoders}
    decoded_by: dict[str, set[str]] = {label: set() for label in decoders}
    mismatches: list[str] = []
    labels = list(decoders)
    for label in labels:  # warm-up: imports, first allocations
        _read(files[0], raster_bits, decoders[label])
    for index in range(runs):
        path = files[index % len(files)]
        order = labels[index % len(labels):] + labels[:index % len(labels)]
        outcomes = {}
        for label in order:
            started = time.perf_counter()
            outcomes[label] = _read(path, raster_bits, decoders[label])
            samples[label].append(1000 * (time.perf_counter() - started))
            decoded_by[label].add(outcomes[label][1])
        mismatches += _disagreements(path.name, outcomes)
    medians = {label: stats(values)["median"] for label, values in samples.items()}
    base = medians.get("pydicom")
    return {
        "runs": runs,
        "decoders": {label: {"decoder": decoders[label].name, "threads": decoders[label].threads,
                             "decoded_by": sorted(decoded_by[label]),
                             "stats": stats(samples[label]),
                             "ratio_to_pydicom": None if not base else medians[label] / base}
                     for label in labels},
        "unavailable": missing,
        "mismatches": mismatches,
        "definition": "read_image with each decoder: file read, decode, modality/VOI/inversion lookup",
    }


def _read(path: Path, raster_bits: int | None, decoder: PixelDecoder) -> tuple[Any, str]:
    """(pixels or None, what decoded them or why not)."""
    try:
        mammogram = read_image(path, raster_bits, decoder)
    except InputError as error:
        return None, f"refused: {error.reason}"
    return mammogram.pixels, mammogram.pixel_decoder or "raster"


def _disagreements(name: str, outcomes: dict[str, tuple[Any, str]]) -> list[str]:
    """Every decoder against the first: a different image, or a refusal where another decoded."""
    (first_label, (reference, first_by)), *others = outcomes.items()
    found = []
    for label, (pixels, by) in others:
        if (pixels is None) != (reference is None):
            found.append(f"{name}: {label} {by if pixels is None else 'decoded'}, {first_label} {first_by}")
        elif pixels is not None and not (pixels == reference).all():
            found.append(f"{name}: {label} ({by}) differs from {first_label} ({first_by})")
    return found
