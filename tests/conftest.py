"""Tiny models exported once per test session (resnet18, narrow heads, small tiles)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trt_mass.model.checkpoint import random_network  # noqa: E402
from trt_mass.model.export import ExportOptions, export_onnx  # noqa: E402
from trt_mass.model.network import RetinaNetNetwork  # noqa: E402
from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry  # noqa: E402

TINY_SPEC = ModelSpec(arch="resnet18", head_width=32)


@dataclass
class TinyModel:
    network: RetinaNetNetwork
    graph_spec: GraphSpec
    onnx_path: Path


def structured_random_network(seed: int, prior: float, cls_std: float = 0.035) -> RetinaNetNetwork:
    """Random weights whose scores vary with the image.

    The paper's head init (std 0.01 convs) makes a random network's scores nearly constant, so
    every anchor ties with every other.  Kaiming-initialised head convs and a wider class layer give
    scores spread over several logits, like a trained model's, with a few percent of anchors above
    the 0.1 threshold at prior 0.001.
    """
    network = random_network(TINY_SPEC, seed, prior)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed + 1000)
    for head in (network.head.classification_head, network.head.regression_head):
        for module in head.conv.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.nn.init.normal_(network.head.classification_head.cls_logits.weight, std=cls_std)
    torch.random.set_rng_state(generator_state)
    return network.eval()


def _export(tmp: Path, name: str, geometry: TileGeometry, prior: float, seed: int, **graph: object) -> TinyModel:
    network = structured_random_network(seed, prior)
    spec = GraphSpec(geometry=geometry, **graph)  # type: ignore[arg-type]
    path = tmp / f"{name}.onnx"
    export_onnx(network, f"random:seed={seed},prior={prior}", ExportOptions(spec), path)
    return TinyModel(network, spec, path)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> TinyModel:
    """Tile 256x224, 5 x 5 grid, structured random weights with many candidates per view."""
    return _export(models_dir, "tiny", TileGeometry(256, 224, 5), prior=0.001, seed=0)


@pytest.fixture(scope="session")
def tiny_model_other_shape(models_dir: Path) -> TinyModel:
    """A second geometry: tile 192x288 (landscape), 3 x 3 grid, other thresholds and N."""
    return _export(models_dir, "tiny_other", TileGeometry(192, 288, 3), prior=0.001, seed=1,
                   max_candidates=256, pre_nms_top_k=600, max_per_view=100)
