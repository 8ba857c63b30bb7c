"""The Detector: findings in original pixels, the backend it chose and why, refused models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyModel
from trt_mass import Detector
from trt_mass.errors import InputError, ModelError


def test_detector_maps_findings_to_original_pixels(tiny_model: TinyModel) -> None:
    """The detector's findings equal the graph's canvas boxes mapped through the letterbox."""
    rng = np.random.default_rng(5)
    image = rng.integers(1000, 60000, size=(1500, 900), dtype=np.uint16)  # portrait, odd scale
    with Detector(tiny_model.onnx_path, threads=2) as detector:
        result = detector.detect(image, pixel_spacing_mm=(0.05, 0.05))
        canvas = detector._canvas
        assert canvas is not None
        raw = detector.runner.infer({"canvas": canvas.canvas})
    # By hand, not from the code under test: the canvas is 768 x 672 (3 x the 256 x 224 tile); 1500 x 900
    # shrinks by min(768 / 1500, 672 / 900) = 0.512 to 768 x round(460.8) = 461 canvas pixels.
    assert tiny_model.graph_spec.geometry.canvas_hw == (768, 672)
    assert result.letterbox.original_hw == (1500, 900) and result.letterbox.resized_hw == (768, 461)
    assert result.findings, "structured random weights give findings"
    scale_y, scale_x = 768 / 1500, 461 / 900
    used = raw["scores"] > 0
    expected = raw["boxes"][used].astype(np.float64) / np.array([scale_x, scale_y, scale_x, scale_y])
    expected = np.clip(expected, 0, [900, 1500, 900, 1500])  # boxes reaching into the padding are clipped
    for finding in result.findings:
        assert 0 <= finding.x1 <= finding.x2 <= 900 and 0 <= finding.y1 <= finding.y2 <= 1500
        corners = np.array([finding.x1, finding.y1, finding.x2, finding.y2])
        assert np.abs(expected - corners).max(axis=1).min() < 1e-3
        assert finding.area_mm2 is not None and finding.area_mm2 >= 24.5
    assert list(result.timings_ms) == ["canvas_ms", "select_ms", "infer_ms", "postprocess_ms"]


def test_detector_refuses_network_only_models(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from trt_mass.model.checkpoint import random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry

    path = tmp_path / "net.onnx"
    export_onnx(random_network(ModelSpec("resnet18", 16), 0), "random", ExportOptions(
        GraphSpec(geometry=TileGeometry(64, 64, 1)), network_only=True), path)
    with pytest.raises(ModelError, match="network_only"), Detector(path):
        pass


def test_detector_says_which_backend_and_why(tiny_model: TinyModel) -> None:
    detector = Detector(tiny_model.onnx_path, backend="ort", threads=1)
    assert (detector.backend, detector.backend_reason) == ("ort", "requested with --backend ort")
    assert detector.choice.artifact == tiny_model.onnx_path
    assert not detector.runner.is_active, "choosing loads nothing; open() or `with` does"
    with detector:
        assert detector.runner.is_active and detector.metadata.kind == "engine_graph"
    assert not detector.runner.is_active


def test_a_detector_around_a_runner_made_elsewhere(tiny_model: TinyModel) -> None:
    from trt_mass.runners.ort import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(tiny_model.onnx_path, threads=1)
    with Detector.from_runner(runner, tiny_model.onnx_path, "made by the caller") as detector:
        assert (detector.backend, detector.backend_reason) == ("ort", "made by the caller")
        image = np.random.default_rng(1).integers(0, 65535, size=(400, 300), dtype=np.uint16)
        assert detector.detect(image).letterbox.original_hw == (400, 300)


def test_spacing_of_a_mammogram_and_the_default_for_rasters(tiny_model: TinyModel) -> None:
    from trt_mass.inputs.dicom import Mammogram

    image = np.random.default_rng(3).integers(1000, 60000, size=(700, 500), dtype=np.uint16)
    with Detector(tiny_model.onnx_path, threads=1) as detector:
        own = detector.detect_mammogram(Mammogram(image, "a.dcm", pixel_spacing_mm=(0.07, 0.08)),
                                        default_spacing_mm=0.5)
        assert own.pixel_spacing_mm == (0.07, 0.08), "a file's own spacing wins"
        default = detector.detect_mammogram(Mammogram(image, "a.png"), default_spacing_mm=0.5)
        assert default.pixel_spacing_mm == (0.5, 0.5)
        unknown = detector.detect_mammogram(Mammogram(image, "a.png"))
        assert unknown.pixel_spacing_mm is None and all(f.area_mm2 is None for f in unknown.findings)
        with pytest.raises(InputError, match=r"^b\.png: expected uint16"):
            detector.detect_mammogram(Mammogram(image.astype(np.float32), "b.png"))


def test_a_normal_mammogram_where_nothing_scores_above_the_threshold(quiet_model: TinyModel, tmp_path: Path) -> None:
    """Zero candidates anywhere (NonMaxSuppression's output is empty): zero findings, no error, on every backend."""
    from trt_mass.datasets.synth import write_phantoms
    from trt_mass.inputs.files import read_image
    from trt_mass.outputs.results import OutputOptions, ResultWriter

    phantom = write_phantoms(tmp_path / "in", 1, seed=8, scale=0.1, normal_fraction=1.0)[0]
    mammogram = read_image(phantom)
    for backend in ("ort", "torch"):
        with Detector(quiet_model.onnx_path, backend=backend, threads=1, device="cpu") as detector:
            raw = detector.runner.infer({"canvas": np.zeros(detector.metadata.inputs[0].shape, np.uint16)})
            assert not raw["scores"].any() and not raw["boxes"].any(), backend
            result = detector.detect_mammogram(mammogram)
            assert result.findings == [], backend
            out = tmp_path / backend
            out.mkdir()
            written = ResultWriter(out, detector.metadata, detector.backend,
                                   OutputOptions(overlay=True, dicom_kinds=("sr", "gsps", "sc"))).write(
                phantom, mammogram, result, "normal", {})
            assert written.record["findings"] == [] and len(list(out.iterdir())) == 5, backend


def test_a_model_with_view_selection_runs_the_views_with_tissue(tissue_model: TinyModel, tiny_model: TinyModel,
                                                                tmp_path: Path) -> None:
    """Air tiles are skipped (and said so in the result); --all-views is the graph without selection."""
    import json
    import subprocess
    import sys

    from tests.helpers import match_as_sets
    from tests.test_tissue import breast
    from trt_mass.tissue import views_with_tissue

    image = breast(1400, 1000, radius=650, seed=4)  # the right part of the image is air
    with Detector(tissue_model.onnx_path, threads=1) as selecting, \
            Detector(tissue_model.onnx_path, threads=1, all_views=True) as forced, \
            Detector(tiny_model.onnx_path, threads=1) as plain:
        result = selecting.detect(image)
        assert selecting._canvas is not None
        canvas_views = views_with_tissue(selecting._canvas.canvas, result.letterbox.resized_hw,
                                         tissue_model.graph_spec.geometry)
        assert result.view_selection == "tissue" and result.views == tuple(canvas_views.tolist())
        assert 0 < len(result.views) < 26 and result.views[0] == 0 and result.timings_ms["select_ms"] > 0
        every, without = forced.detect(image), plain.detect(image)
        assert every.view_selection == "all-forced" and every.views == tuple(range(26))
        assert without.view_selection == "all" and without.views == tuple(range(26))
        assert without.findings
        match_as_sets(*_finding_arrays(every.findings), *_finding_arrays(without.findings), box_tol=0.05,
                      score_tol=1e-4)
    from trt_mass.datasets.synth import write_phantoms

    write_phantoms(tmp_path / "in", 1, seed=2, scale=0.05)
    for flag, selection in (("--all-views", "all-forced"), (None, "tissue")):
        out = tmp_path / (flag or "selected")
        command = [sys.executable, "-m", "trt_mass.cli", "detect", str(tmp_path / "in"), "--model",
                   str(tissue_model.onnx_path), "--out", str(out), *([flag] if flag else [])]
        assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
        record = json.loads(next(out.glob("*.json")).read_text())
        assert record["views"]["selection"] == selection and record["views"]["of"] == 26
        assert record["views"]["run"][0] == 0 and "select_ms" in record["timings_ms"]


def test_a_model_with_central_cover_runs_fewer_views_and_says_so(tissue_model_other_shape: TinyModel) -> None:
    from tests.test_tissue import breast
    from trt_mass.tissue import TissueSpec, views_with_tissue

    spec = tissue_model_other_shape.graph_spec
    assert spec.tissue_cover == "central"
    image = breast(900, 1500, radius=820, seed=3)  # landscape, as the model's 3 x 3 grid of 192 x 288 tiles
    with Detector(tissue_model_other_shape.onnx_path, threads=1) as selecting:
        result = selecting.detect(image)
        assert selecting._canvas is not None
        canvas = selecting._canvas.canvas
    central = views_with_tissue(canvas, result.letterbox.resized_hw, spec.geometry, TissueSpec.of(spec))
    every = views_with_tissue(canvas, result.letterbox.resized_hw, spec.geometry, TissueSpec())
    assert result.view_selection == "tissue-central" and result.views == tuple(central.tolist())
    assert set(central.tolist()) < set(every.tolist()), "a strict subset on this breast"


def _finding_arrays(findings: list) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in findings], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([f.score for f in findings], dtype=np.float64)


def test_a_canvas_prepared_in_another_thread_gives_the_same_findings(tissue_model: TinyModel,
                                                                     tiny_model: TinyModel) -> None:
    """The daemon's decode workers prepare canvases: same views and findings as detect(), each canvas its
    own buffer, and a canvas made for another graph is made again (detect_mammogram) or refused."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_tissue import breast
    from trt_mass.inputs.dicom import Mammogram

    images = [breast(1400, 1000, radius=650, seed=4), breast(1100, 1300, radius=700, seed=7)]
    with Detector(tissue_model.onnx_path, threads=1) as selecting, Detector(tiny_model.onnx_path, threads=1) as plain:
        preparer = selecting.preparer
        assert preparer == selecting.preparer and preparer != plain.preparer, "equal graphs, equal preparers"
        with ThreadPoolExecutor(2) as pool:
            prepared = list(pool.map(lambda image: preparer.prepare(image, "worker"), images))
        assert prepared[0].canvas is not prepared[1].canvas
        for image, canvas in zip(images, prepared, strict=True):
            direct = selecting.detect(image)
            other = selecting.detect_prepared(canvas, elsewhere=True)
            assert other.prepared_elsewhere and not direct.prepared_elsewhere
            assert other.views == direct.views and other.view_selection == "tissue" and len(other.views) < 26
            assert other.findings == direct.findings and other.letterbox == direct.letterbox
            assert set(other.timings_ms) == {"canvas_ms", "select_ms", "infer_ms", "postprocess_ms"}
        with pytest.raises(ModelError, match="prepared for another graph"):
            plain.detect_prepared(prepared[0])
        mammogram = Mammogram(pixels=images[0], source="a.dcm")
        again = plain.detect_mammogram(mammogram, prepared=prepared[0])
        assert not again.prepared_elsewhere and again.views == tuple(range(26)), "made again for its own graph"
    unopened = Detector(tissue_model.onnx_path, threads=1)  # opens itself, as detect() does
    try:
        used = unopened.detect_mammogram(Mammogram(pixels=images[0], source="a.dcm"), prepared=prepared[0])
        assert used.prepared_elsewhere and used.views == tuple(int(v) for v in prepared[0].views)
    finally:
        unopened.close()
