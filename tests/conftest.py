"""Tiny models exported once per test session (resnet18, narrow heads, small tiles).

Making them needs torch (the `train` extra).  Every test that uses one is marked `train`, so a
runtime-only install (no torch) runs the rest with `pytest -m "not train"`; modules that import torch
themselves skip without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry

if TYPE_CHECKING:
    from tests.triton_server import ServeProcess
    from trt_mass.model.network import RetinaNetNetwork

HAS_TORCH = importlib.util.find_spec("torch") is not None
TINY_SPEC = ModelSpec(arch="resnet18", head_width=32)
# Fixtures that export a model (torch): a test using one is a `train` test.
MODEL_FIXTURES = frozenset({"models_dir", "tiny_model", "tiny_model_other_shape", "quiet_model", "watch_model",
                            "checkpoint", "report", "outputs", "detected", "tiny_int32", "landscape", "variants",
                            "served", "tissue_model", "tissue_model_other_shape"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.train)


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
    import torch

    from trt_mass.model.checkpoint import random_network

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


def quiet_network(seed: int = 0, prior: float = 0.001) -> RetinaNetNetwork:
    """The paper's own init: every anchor scores about `prior`, far below the 0.1 threshold, on any image.

    Exactly `random_network(TINY_SPEC, seed, prior)`, so the torch runner rebuilds it from the metadata.
    """
    from trt_mass.model.checkpoint import random_network

    return random_network(TINY_SPEC, seed, prior)


def export_tiny(folder: Path, name: str, network: RetinaNetNetwork, init: str, geometry: TileGeometry,
                **graph: Any) -> TinyModel:
    from trt_mass.model.export import ExportOptions, export_onnx

    spec = GraphSpec(geometry=geometry, **graph)
    path = folder / f"{name}.onnx"
    export_onnx(network, init, ExportOptions(spec), path)
    return TinyModel(network, spec, path)


def _export(tmp: Path, name: str, geometry: TileGeometry, prior: float, seed: int, **graph: Any) -> TinyModel:
    return export_tiny(tmp, name, structured_random_network(seed, prior), f"random:seed={seed},prior={prior}",
                       geometry, **graph)


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    from tests.daemon_process import kill_leftover_daemons

    yield
    kill_leftover_daemons()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch")
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


@pytest.fixture(scope="session")
def tissue_model(models_dir: Path) -> TinyModel:
    """tiny_model's network and geometry with view selection: the graph also takes view_index."""
    return _export(models_dir, "tissue", TileGeometry(256, 224, 5), prior=0.001, seed=0, view_selection="tissue")


@pytest.fixture(scope="session")
def tissue_model_other_shape(models_dir: Path) -> TinyModel:
    """tiny_model_other_shape's network and geometry with view selection, cover "central"."""
    return _export(models_dir, "tissue_other", TileGeometry(192, 288, 3), prior=0.001, seed=1,
                   max_candidates=256, pre_nms_top_k=600, max_per_view=100, view_selection="tissue",
                   tissue_cover="central")


@pytest.fixture(scope="session")
def quiet_model(models_dir: Path) -> TinyModel:
    """The tiny geometry with the paper's init: nothing anywhere scores above the threshold."""
    return export_tiny(models_dir, "quiet", quiet_network(), "random:seed=0,prior=0.001", TileGeometry(256, 224, 5))


@pytest.fixture(scope="session")
def watch_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import GraphSpec, TileGeometry

    path = tmp_path_factory.mktemp("watch_model") / "tiny.onnx"
    export_onnx(structured_random_network(0, 0.001), "random", ExportOptions(GraphSpec(
        geometry=TileGeometry(128, 96, 5), max_candidates=128, pre_nms_top_k=300)), path)
    return path


@pytest.fixture(scope="session")
def served(watch_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`trtmass serve` of watch_model on free loopback ports, for the whole session (tests/triton_server.py)."""
    from tests.triton_server import ServeProcess, need_tritonserver

    need_tritonserver()
    server = ServeProcess(watch_model, tmp_path_factory.mktemp("served") / "serve.log").start()
    try:
        yield server
    finally:
        server.stop()
