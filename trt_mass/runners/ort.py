"""ONNX Runtime runner: the CPU path, and the one CI tests every numeric step with."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.errors import ModelError
from trt_mass.metadata import ModelMetadata, metadata_from_map
from trt_mass.runners.base import Runner

log = logging.getLogger(__name__)


class OnnxRuntimeRunner(Runner):
    """Runs a trt_mass ONNX model with ONNX Runtime.

    Args:
        model_path: the .onnx file (exported by trtmass; its metadata is required).
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
        providers: execution providers, CPU by default.
    """

    backend = "ort"

    def __init__(
        self,
        model_path: str | Path,
        threads: int | None = None,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        cpu_spin: bool = True,
    ) -> None:
        super().__init__()
        self.model_path = Path(model_path)
        self.threads = threads
        self.cpu_spin = cpu_spin
        self.providers = providers
        self._session: Any = None

    def _activate(self) -> ModelMetadata:
        import onnxruntime as ort

        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: no such model file")
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        if not self.cpu_spin:  # idle threads sleep at once instead of spinning on cores others need
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=list(self.providers))
        except Exception as error:
            raise ModelError(f"{self.model_path}: ONNX Runtime cannot load it ({error})") from error
        metadata = metadata_from_map(dict(session.get_modelmeta().custom_metadata_map), str(self.model_path))
        # A dynamic dimension (view_index's length) is a name or None to ONNX Runtime and -1 in the metadata.
        session_inputs = {i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
                          for i in session.get_inputs()}
        declared = {t.name: t.shape for t in metadata.inputs}
        if session_inputs != declared:
            raise ModelError(
                f"{self.model_path}: graph inputs {session_inputs} differ from its metadata {declared}"
            )
        self._session = session
        _warn_if_int8_saturates(self.model_path, metadata)
        return metadata

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [t.name for t in self.metadata.outputs]
        values = self._session.run(names, feed)
        return dict(zip(names, values, strict=True))

    def _deactivate(self) -> None:
        self._session = None


def _warn_if_int8_saturates(model_path: Path, metadata: ModelMetadata) -> None:
    """Full-range int8 weights on a CPU without VNNI: ONNX Runtime's kernels can saturate and lose findings."""
    from trt_mass.precision.cpu import cpu_has_vnni

    if metadata.precision == "int8" and not metadata.quantization.get("reduce_range") and cpu_has_vnni() is False:
        log.warning("%s: int8 with full-range weights on a CPU without VNNI: ONNX Runtime's int8 kernels "
                    "can saturate here (int16 sums) and lose findings; use a variant made with "
                    "`trtmass quantize --reduce-range`",
                    model_path)
