"""PyTorch reference runner: the very EngineGraph module the ONNX was exported from, in one batched call.

Needs torch (the `train` extra).  The weights are rebuilt from the model's metadata -- random weights
from their seed (`init` "random:seed=S,prior=P"), trained weights from `--checkpoint` -- and refused
unless their SHA-256 equals the one recorded at export, so a comparison always runs the same weights.

Runs on CUDA when available (device "auto"), else on the CPU.  After every infer, `last_stage_ms`
holds the host-to-device, inference and device-to-host times ({"h2d", "inference", "d2h"}, ms; on the
CPU only "inference": there is no copy to time), measured with torch.cuda.synchronize on a GPU.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trt_mass.errors import BackendUnavailableError, ConfigError, ModelError
from trt_mass.metadata import ModelMetadata, metadata_from_map
from trt_mass.model.checkpoint import load_checkpoint, random_network, weights_sha256
from trt_mass.model.graph import EngineGraph
from trt_mass.model.network import RetinaNetNetwork
from trt_mass.runners.base import Runner

_RANDOM_INIT = re.compile(r"^random:seed=(-?\d+),prior=([0-9.eE+-]+)$")


def read_metadata(model_path: str | Path) -> ModelMetadata:
    """The trt_mass metadata of an ONNX file, read with onnx (no inference session is built)."""
    import onnx

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelError(f"{path}: not an ONNX model ({error})") from error
    return metadata_from_map({p.key: p.value for p in model.metadata_props}, str(path))


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when torch sees a GPU, else cpu; "cuda" without a GPU is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but torch sees no CUDA GPU")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"unknown torch device {device!r} ({error})") from error


def network_for_metadata(metadata: ModelMetadata, checkpoint: str | Path | None = None,
                         source: str = "<model>") -> RetinaNetNetwork:
    """Rebuild the network a model was exported from, and prove it is the same weights.

    Args:
        metadata: the model's metadata (its `init` and `weights_sha256` decide).
        checkpoint: the checkpoint file; required when the model came from one ("checkpoint:NAME").
        source: the model's name for messages.

    Raises ModelError when the weights cannot be rebuilt or their SHA-256 differs from the metadata's.
    """
    if checkpoint is not None:
        network, _ = load_checkpoint(checkpoint)
        origin = f"checkpoint {checkpoint}"
    else:
        match = _RANDOM_INIT.match(metadata.init)
        if match is None:
            if metadata.init.startswith("checkpoint:"):
                raise ModelError(f"{source}: its weights come from {metadata.init}; give --checkpoint PATH to "
                                 "that file to run them in PyTorch")
            raise ModelError(f"{source}: cannot rebuild weights from init {metadata.init!r}; give --checkpoint PATH")
        seed, prior = int(match.group(1)), float(match.group(2))
        network = random_network(metadata.model_spec, seed, prior)
        origin = f"random_network(seed={seed}, prior={prior})"
    if network.spec != metadata.model_spec:
        raise ModelError(f"{source}: {origin} is a {network.spec.arch}/{network.spec.head_width} network, the "
                         f"model a {metadata.model_spec.arch}/{metadata.model_spec.head_width} one")
    rebuilt = weights_sha256(network)
    if rebuilt != metadata.weights_sha256:
        raise ModelError(f"{source}: weights of {origin} have sha256 {rebuilt}, the model was exported from "
                         f"sha256 {metadata.weights_sha256}: not the same weights, refusing to run them")
    return network.eval()


class TorchRunner(Runner):
    """Runs a trt_mass engine-graph model's PyTorch modules (EngineGraph) on the same weights.

    Args:
        model_path: the exported .onnx (its metadata says which weights and which graph).
        checkpoint: the checkpoint the model was exported from (models with `init` "checkpoint:...").
        device: "auto" (cuda when available, else cpu), "cpu" or "cuda[:N]".
        threads: torch intra-op threads on the CPU (None: torch's default).
    """

    backend = "torch"

    def __init__(self, model_path: str | Path, checkpoint: str | Path | None = None, device: str = "auto",
                 threads: int | None = None) -> None:
        super().__init__()
        self.model_path = Path(model_path)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.device = resolve_device(device)
        self.threads = threads
        self.last_stage_ms: dict[str, float] = {}
        self._graph: EngineGraph | None = None

    def _activate(self) -> ModelMetadata:
        metadata = read_metadata(self.model_path)
        if metadata.kind != "engine_graph":
            raise ModelError(f"{self.model_path}: a {metadata.kind} export; the torch runner runs the engine graph")
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        network = network_for_metadata(metadata, self.checkpoint, str(self.model_path))
        self._graph = EngineGraph(network, metadata.graph_spec).eval().to(self.device)
        return metadata

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self._graph is not None
        cuda = self.device.type == "cuda"
        started = time.perf_counter()
        canvas = torch.from_numpy(feed["canvas"])
        view_index = torch.from_numpy(feed["view_index"]) if "view_index" in feed else None
        if cuda:
            canvas = canvas.to(self.device)
            view_index = None if view_index is None else view_index.to(self.device)
            torch.cuda.synchronize(self.device)
        copied = time.perf_counter()
        with torch.inference_mode():
            boxes, scores = self._graph(canvas, view_index)
        if cuda:
            torch.cuda.synchronize(self.device)
        inferred = time.perf_counter()
        outputs = [boxes.cpu().numpy(), scores.cpu().numpy()]
        done = time.perf_counter()
        if cuda:
            self.last_stage_ms = {"h2d": 1000 * (copied - started), "inference": 1000 * (inferred - copied),
                                  "d2h": 1000 * (done - inferred)}
        else:
            self.last_stage_ms = {"inference": 1000 * (done - started)}
        names = [t.name for t in self.metadata.outputs]
        return dict(zip(names, outputs, strict=True))

    def _deactivate(self) -> None:
        self._graph = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        """Device and threads, for reports."""
        return {"device": str(self.device), "torch_threads": torch.get_num_threads()}
