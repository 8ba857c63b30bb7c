"""Pixel-data decoders: JPEG 2000 / HTJ2K on the GPU (nvImageCodec) or on every CPU core (OpenJPEG
through imagecodecs), everything else through pydicom's plugins.

A `PixelDecoder` is chosen once, like the inference backend (trt_mass.runners.select): `auto` takes
nvImageCodec when it is installed and decodes on a GPU, else OpenJPEG with `threads` threads, else
pydicom; the choice and its reason are reported.  A fast decoder only takes the frames whose code stream
says what the header says (one unsigned component, no wider than Bits Allocated, Rows x Columns); any
other frame, and every other transfer syntax, goes through pydicom, so the result is always pydicom's
stored values (the tests hold the fast decoders to bit-exactness on lossless files).

One PixelDecoder may be shared by several decode threads: nvImageCodec decoders are made per thread.
"""

from __future__ import annotations

import base64
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trt_mass.errors import BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where it is used: `trtmass --help` reads DECODER_NAMES and stays light.
DECODER_NAMES = ("auto", "nvimgcodec", "openjpeg", "pydicom")

# JPEG 2000 and HTJ2K transfer syntaxes (PS3.5 A.4.4, A.4.6): one code stream per frame.
J2K_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})

HTJ2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})
# HTJ2K goes through OpenJPH (single-threaded, 2.2x faster than one OpenJPEG thread on a 4096 x 3328
# frame) unless OpenJPEG has this many threads (at 8 it was faster on the lent GPU machine's CPU).
OPENJPH_BELOW_THREADS = 8

# A 12-bit 8 x 8 lossless J2K code stream of (arange(64) * 61 + 7): decoded once when a GPU decoder is
# opened, so "installed" means "decodes right on this machine's GPU", not only "imports".
_PROBE_J2K = base64.b64decode(
    "/0//UQApAAAAAAAIAAAACAAAAAAAAAAAAAAACAAAAAgAAAAAAAAAAAABCwEB/1IADAAAAAEAAAQEAAH/XAAEQGD/ZAAlAAFDcmVhdGVk"
    "IGJ5IE9wZW5KUEVHIHZlcnNpb24gMi41LjT/kAAKAAAAAABtAAH/k8/lcBEdtrjxEXvTGfzCDaklc/1MxhAH13SleXqQIXNF1Her2J7k"
    "PvPWb3Xt+PsZLz1H1oMZIKqk1hdTDEzKqHYbMvB2nyvI9G2MA3HkiW11WyU1bS6tjb5vm+b5vm+b/9k="
)



class DecoderUnavailable(BackendUnavailableError):
    """The requested decoder cannot run here (the message says why)."""


@dataclass(frozen=True)
class CodeStreamInfo:
    """What a JPEG 2000 code stream's SIZ marker says: size, components, precision, signedness."""

    rows: int
    columns: int
    components: int
    precision: int
    signed: bool


def code_stream_info(frame: bytes) -> CodeStreamInfo | None:
    """Parse the SIZ marker of a J2K code stream (or of the one inside a JP2 file); None when absent."""
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(frame) < start + 42:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    if components < 1 or len(frame) < start + 42 + 3 * components:
        return None
    ssiz = frame[start + 42]
    return CodeStreamInfo(rows=ysiz - yosiz, columns=xsiz - xosiz, components=components,
                          precision=(ssiz & 0x7F) + 1, signed=bool(ssiz & 0x80))


@dataclass(frozen=True)
class FrameLayout:
    """What the DICOM header says one frame holds (the stored dtype pydicom would return)."""

    rows: int
    columns: int
    bits_allocated: int
    pixel_representation: int

    @property
    def dtype(self) -> np.dtype:
        import numpy as np

        kind = "i" if self.pixel_representation else "u"
        return np.dtype(f"{kind}{self.bits_allocated // 8}")

    def accepts(self, info: CodeStreamInfo | None) -> bool:
        """True when a plain decode of the code stream gives pydicom's stored values (no sign or
        precision corrections, which pydicom applies and the fast decoders do not)."""
        return (info is not None and info.components == 1 and not info.signed and self.pixel_representation == 0
                and info.precision <= self.bits_allocated and (info.rows, info.columns) == (self.rows, self.columns))


# (code stream, transfer syntax UID) -> (decoded frame, the name of the library that decoded it)
FrameDecode = Callable[[bytes, str], "tuple[np.ndarray, str]"]


class PixelDecoder:
    """Stored values of a single-frame dataset: the fast J2K decoder where it applies, else pydicom."""

    def __init__(self, name: str, reason: str, threads: int, j2k_decode: FrameDecode | None) -> None:
        self.name = name
        self.reason = reason
        self.threads = threads
        self._j2k_decode = j2k_decode

    def describe(self) -> dict[str, Any]:
        return {"decoder": self.name, "reason": self.reason, "threads": self.threads}

    def decode(self, dataset: Any) -> tuple[np.ndarray, str]:
        """(stored values [Rows, Columns], the name of the decoder that produced them)."""
        from pydicom.pixels import pixel_array

        syntax = str(dataset.file_meta.TransferSyntaxUID)
        if self._j2k_decode is not None and syntax in J2K_SYNTAXES:
            try:
                decoded = self._decode_j2k(dataset, syntax)
            except Exception:  # pydicom decodes it again and names what is wrong
                decoded = None
            if decoded is not None:
                return decoded
        return pixel_array(dataset), "pydicom"

    def _decode_j2k(self, dataset: Any, syntax: str) -> tuple[np.ndarray, str] | None:
        from pydicom.encaps import get_frame

        assert self._j2k_decode is not None
        layout = FrameLayout(int(dataset.Rows), int(dataset.Columns), int(dataset.BitsAllocated),
                             int(dataset.get("PixelRepresentation", 0)))
        frame = get_frame(dataset.PixelData, 0, number_of_frames=1)
        if not layout.accepts(code_stream_info(frame)):
            return None
        decoded, library = self._j2k_decode(frame, syntax)
        decoded = decoded.reshape(decoded.shape[:2]) if decoded.ndim == 3 and decoded.shape[2] == 1 else decoded
        if decoded.shape != (layout.rows, layout.columns) or decoded.dtype.kind != "u":
            return None
        return (decoded if decoded.dtype == layout.dtype else decoded.astype(layout.dtype)), library


def default_threads() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def decode_plan(workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """(decode workers, OpenJPEG threads per decode) for the daemon: by default one decode worker per
    core up to 4, the cores shared among them in threads (on 2 cores, 2 workers of 1 thread beat 1
    worker of 2 threads: benchmarks/RESULTS.md)."""
    if (workers is not None and workers < 1) or (threads is not None and threads < 1):
        raise ConfigError(f"decode workers and threads must be >= 1, got {workers} and {threads}")
    cores = default_threads()
    chosen_workers = workers if workers is not None else max(1, min(4, cores))
    return chosen_workers, threads if threads is not None else max(1, cores // chosen_workers)


def open_decoder(requested: str = "auto", threads: int | None = None) -> PixelDecoder:
    """The decoder `requested` (one of DECODER_NAMES); DecoderUnavailable when a named one cannot run.

    `threads`: OpenJPEG threads per decode (default: every core this process may use).
    """
    if requested not in DECODER_NAMES:
        raise ConfigError(f"unknown decoder {requested!r}; choose one of {', '.join(DECODER_NAMES)}")
    count = default_threads() if threads is None else threads
    if count < 1:
        raise ConfigError(f"decode threads must be >= 1, got {count}")
    if requested == "pydicom":
        return PixelDecoder("pydicom", "requested", 1, None)
    why_not_gpu = ""
    if requested in ("auto", "nvimgcodec"):
        try:
            decode = _nvimgcodec_decode()
            return PixelDecoder("nvimgcodec", "requested" if requested == "nvimgcodec" else
                                "nvImageCodec decodes on this GPU", 1, decode)
        except DecoderUnavailable as error:
            if requested == "nvimgcodec":
                raise
            why_not_gpu = f"{error}; "
    try:
        decode = _openjpeg_decode(count)
    except DecoderUnavailable as error:
        if requested == "openjpeg":
            raise
        return PixelDecoder("pydicom", f"{why_not_gpu}{error}", 1, None)
    reason = "requested" if requested == "openjpeg" else f"{why_not_gpu}OpenJPEG with {count} threads"
    return PixelDecoder("openjpeg", reason, count, decode)


def _openjpeg_decode(threads: int) -> FrameDecode:
    import numpy as np

    try:
        import imagecodecs
    except ImportError as error:
        raise DecoderUnavailable(f"imagecodecs is not installed ({error})") from error
    if not getattr(imagecodecs.JPEG2K, "available", False):
        raise DecoderUnavailable("imagecodecs was built without OpenJPEG")

    use_openjph = threads < OPENJPH_BELOW_THREADS and getattr(imagecodecs.HTJ2K, "available", False)

    def decode(frame: bytes, syntax: str) -> tuple[np.ndarray, str]:
        if use_openjph and syntax in HTJ2K_SYNTAXES:
            try:
                return np.asarray(imagecodecs.htj2k_decode(frame)), "openjph"
            except imagecodecs.Htj2kError:  # e.g. a stream with non-HT code blocks: OpenJPEG reads those
                pass
        return np.asarray(imagecodecs.jpeg2k_decode(frame, numthreads=threads)), "openjpeg"

    return decode


def _nvimgcodec_decode() -> FrameDecode:
    """nvImageCodec on the GPU, one decoder per thread; checked on a known code stream first."""
    import numpy as np

    try:
        from nvidia import nvimgcodec
    except ImportError as error:
        raise DecoderUnavailable(f"nvImageCodec is not installed ({error})") from error
    local = threading.local()

    def decode(frame: bytes, syntax: str) -> tuple[np.ndarray, str]:
        if not hasattr(local, "decoder"):
            local.decoder = nvimgcodec.Decoder(backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.GPU_ONLY)])
            local.params = nvimgcodec.DecodeParams(allow_any_depth=True,
                                                   color_spec=nvimgcodec.ColorSpec.UNCHANGED)
        image = local.decoder.decode(frame, params=local.params)
        if image is None:
            raise RuntimeError("nvImageCodec could not decode the frame")
        return np.asarray(image.cpu()), "nvimgcodec"

    try:
        probe, _ = decode(_PROBE_J2K, "1.2.840.10008.1.2.4.90")
    except Exception as error:  # no GPU, no driver, no nvjpeg2k: all mean "not here"
        raise DecoderUnavailable(f"nvImageCodec cannot decode on a GPU here ({type(error).__name__}: {error})") \
            from error
    if not np.array_equal(probe.reshape(8, 8), np.arange(64, dtype=np.uint16).reshape(8, 8) * 61 + 7):
        raise DecoderUnavailable("nvImageCodec decoded the probe code stream wrongly")
    return decode
