"""The PyTorch reference runner rebuilds the exported weights, and refuses any others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TinyModel
from trt_mass.bench.run import BenchConfig, run_bench
from trt_mass.errors import ConfigError, ModelError
from trt_mass.runners.ort import OnnxRuntimeRunner

torch = pytest.importorskip("torch")

from trt_mass.runners.torch_ref import TorchRunner  # noqa: E402


def test_refuses_weights_whose_hash_differs(tiny_model: TinyModel, tmp_path: Path) -> None:
    # The tiny model's metadata says random:seed=0,prior=0.001, but its weights were modified after the
    # random init (structured_random_network): rebuilding from the seed gives other weights.
    metadata = OnnxRuntimeRunner(tiny_model.onnx_path).activate().metadata
    with pytest.raises(ModelError, match=metadata.weights_sha256) as refused:
        TorchRunner(tiny_model.onnx_path, device="cpu").activate()
    assert "not the same weights" in str(refused.value) and str(refused.value).count("sha256 ") == 2
    config = BenchConfig(model=tiny_model.onnx_path, synthetic=1, synthetic_scale=0.05, warmup=0, runs=1,
                         baseline=True)
    with pytest.raises(ModelError, match="not the same weights"):
        run_bench(config)
    with pytest.raises(ConfigError, match="not both"):
        BenchConfig(model=tiny_model.onnx_path, inputs=tmp_path, synthetic=2)
