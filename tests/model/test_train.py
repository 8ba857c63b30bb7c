"""Training: augmentation geometry, a short run on phantoms, and checkpoint -> export -> ONNX Runtime parity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.helpers import match_as_sets  # noqa: E402
from trt_mass.datasets.synth import write_phantoms  # noqa: E402
from trt_mass.model.checkpoint import load_checkpoint  # noqa: E402
from trt_mass.model.graph import EngineGraph  # noqa: E402
from trt_mass.model.train import CachedImage, _orient, make_views  # noqa: E402
from trt_mass.runners.ort import OnnxRuntimeRunner  # noqa: E402
from trt_mass.spec import GraphSpec, TileGeometry  # noqa: E402


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_orient_moves_boxes_with_the_pixels(turns: int, flip: bool) -> None:
    view = np.zeros((40, 60), np.uint16)
    view[5:15, 20:35] = 1000  # the box [20, 5, 35, 15]
    turned, boxes = _orient(view, np.array([[20.0, 5.0, 35.0, 15.0]]), turns, flip)
    rows, cols = np.nonzero(turned)
    assert boxes.tolist() == [[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]]


def test_views_have_the_tile_shape_and_keep_lesions() -> None:
    geometry = TileGeometry(128, 96, 5)
    canvas = np.zeros(geometry.canvas_hw, np.uint16)
    canvas[100:140, 150:180] = 50000
    image = CachedImage(canvas, np.array([[150.0, 100.0, 180.0, 140.0]]))
    views = make_views(image, geometry, np.random.default_rng(0), random_tiles=2)
    assert len(views) == 1 + 1 + 2
    for view, boxes in views:
        assert view.shape == (128, 96)
        for x1, y1, x2, y2 in boxes:
            assert view[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].mean() > 10000
    assert len(views[1][1]) == 1, "the lesion-centred section contains its lesion"


def test_train_checkpoint_export_parity(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 4, seed=21, scale=0.05, normal_fraction=0.0)
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "trt_mass.cli"]
    subprocess.run([*cli, "train", "--data", str(data), "--out", str(out), "--arch", "resnet18", "--head-width", "16",
                    "--tile", "128x96", "--epochs", "2", "--lr", "1e-3", "--batch-size", "4"], check=True)
    network, extra = load_checkpoint(out / "last.pt")
    assert extra["epoch"] == 2 and (out / "epoch001.pt").exists() and np.isfinite(extra["loss"])
    subprocess.run([*cli, "train", "--data", str(data), "--out", str(out), "--arch", "resnet18", "--head-width", "16",
                    "--tile", "128x96", "--epochs", "3", "--lr", "1e-3", "--resume"], check=True)
    network, extra = load_checkpoint(out / "last.pt")
    assert extra["epoch"] == 3, "resume continued from epoch 2"
    onnx_path = tmp_path / "trained.onnx"
    mismatch = subprocess.run([*cli, "export", str(out / "last.pt"), "--tile", "256x224", "-o", str(onnx_path)],
                              capture_output=True, text=True)
    assert mismatch.returncode == 2 and "trained with --tile 128x96" in mismatch.stderr
    subprocess.run([*cli, "export", str(out / "last.pt"), "-o", str(onnx_path)], check=True)  # tile as trained
    # The trained weights through ONNX Runtime give the PyTorch graph's detections.
    spec = GraphSpec(geometry=TileGeometry(128, 96, 5))
    canvas = np.random.default_rng(3).integers(0, 65535, size=(1, 1, *spec.geometry.canvas_hw), dtype=np.uint16)
    with torch.no_grad():
        want_boxes, want_scores = EngineGraph(network, spec).eval()(
            torch.from_numpy(canvas.astype(np.int32)).to(torch.uint16))
    with OnnxRuntimeRunner(onnx_path) as runner:
        assert runner.metadata.graph_spec.view_selection == "tissue", "exports select views by default"
        got = runner.infer({"canvas": canvas, "view_index": np.arange(26, dtype=np.int32)})
    match_as_sets(got["boxes"], got["scores"], want_boxes.numpy(), want_scores.numpy(), box_tol=2e-2, score_tol=1e-4)
