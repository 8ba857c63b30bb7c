"""Winograd F(4x4,3x3) rewrite: single convolutions against ONNX Runtime's direct Conv, the rule, shared
weights, and the fp32 cpu variant of whole engine graphs (tiny models at two geometries, the trained demo
model) compared with their source as sets of findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")  # the `train` extra: exporting and quantizing need onnx

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.conftest import TinyModel, _export  # noqa: E402
from tests.helpers import all_views_feed  # noqa: E402
from trt_mass.cli import main  # noqa: E402
from trt_mass.datasets.synth import write_phantoms  # noqa: E402
from trt_mass.errors import ConfigError, ModelError  # noqa: E402
from trt_mass.geometry import CanvasBuilder  # noqa: E402
from trt_mass.inputs.files import read_image  # noqa: E402
from trt_mass.merge_oracle import box_iou  # noqa: E402
from trt_mass.metadata import file_sha256, read_onnx_metadata  # noqa: E402
from trt_mass.precision.quantize import QuantizeOptions, quantize_model  # noqa: E402
from trt_mass.precision.winograd import WinogradRule, require_rewrites, rewrite_model  # noqa: E402
from trt_mass.runners.ort import OnnxRuntimeRunner  # noqa: E402
from trt_mass.spec import TileGeometry  # noqa: E402

EVERY_CONV = WinogradRule(min_in_channels=1, min_out_channels=1, min_output_pixels=1)
TINY_RULE = WinogradRule(min_in_channels=16, min_out_channels=16, min_output_pixels=16)


def _conv_model(batch: int | str, channels: int, height: int, width: int,
                convs: list[dict[str, object]], seed: int = 0) -> onnx.ModelProto:
    """x [batch, channels, H, W] -> the given Conv nodes in a chain; outputs every conv result."""
    rng = np.random.default_rng(seed)
    nodes, initializers, outputs = [], [], []
    current, current_channels = "x", channels
    weights: dict[str, str] = {}
    for index, conv in enumerate(convs):
        out_channels = int(conv.get("out", current_channels))  # type: ignore[call-overload]
        kernel = int(conv.get("kernel", 3))  # type: ignore[call-overload]
        group = int(conv.get("group", 1))  # type: ignore[call-overload]
        share = conv.get("share")
        if isinstance(share, str) and share in weights:
            weight_name = weights[share]
        else:
            weight_name = f"w{index}"
            weight = rng.standard_normal((out_channels, current_channels // group, kernel, kernel)) / np.sqrt(
                current_channels * kernel * kernel)
            initializers.append(numpy_helper.from_array(weight.astype(np.float32), weight_name))
            if isinstance(share, str):
                weights[share] = weight_name
        inputs = [current, weight_name]
        if conv.get("bias", True):
            initializers.append(numpy_helper.from_array(rng.standard_normal(out_channels).astype(np.float32),
                                                        f"b{index}"))
            inputs.append(f"b{index}")
        attributes = {k: conv[k] for k in ("pads", "strides", "dilations") if k in conv}
        nodes.append(helper.make_node("Conv", inputs, [f"y{index}"], name=f"conv{index}", group=group,
                                      **attributes))  # type: ignore[arg-type]
        outputs.append(helper.make_tensor_value_info(f"y{index}", TensorProto.FLOAT, None))
        current, current_channels = f"y{index}", out_channels
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [batch, channels, height, width])], outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("batch,channels,out,height,width,pads,bias", [
    (1, 8, 16, 16, 12, [1, 1, 1, 1], True),      # multiples of 4, 'same' padding
    (2, 5, 7, 13, 10, [1, 1, 1, 1], False),      # odd sizes: the last tiles are cropped; no bias
    (3, 6, 4, 9, 11, [0, 0, 0, 0], True),        # 'valid' convolution
    (1, 4, 6, 10, 7, [2, 1, 0, 1], True),        # asymmetric pads
    ("N", 8, 8, 20, 16, [1, 1, 1, 1], True),     # a dynamic batch dimension
])
def test_single_convolution_matches_direct(batch: int | str, channels: int, out: int, height: int, width: int,
                                           pads: list[int], bias: bool) -> None:
    source = _conv_model(batch, channels, height, width, [{"out": out, "pads": pads, "bias": bias}])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(source)
    report = rewrite_model(rewritten, EVERY_CONV)
    assert report["rewritten_convs"] == 1 and report["direct_convs"] == 0
    kernels = [n for n in rewritten.graph.node if n.op_type == "Conv"]
    assert len(kernels) == 1 and dict((a.name, a.i) for a in kernels[0].attribute)["group"] == channels
    x = np.random.default_rng(1).standard_normal((2 if batch == "N" else int(batch), channels, height, width))
    expected, = _run(source, x.astype(np.float32))
    got, = _run(rewritten, x.astype(np.float32))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * float(np.abs(expected).max()))


def test_rule_keeps_what_would_be_slower_or_cannot_be_rewritten() -> None:
    model = _conv_model(1, 32, 24, 24, [
        {"out": 32, "pads": [1, 1, 1, 1]},                        # rewritten
        {"out": 32, "pads": [1, 1, 1, 1], "strides": [2, 2]},     # strided
        {"out": 32, "pads": [2, 2, 2, 2], "dilations": [2, 2]},   # dilated
        {"out": 32, "pads": [1, 1, 1, 1], "group": 4},            # grouped
        {"out": 8, "kernel": 1},                                  # 1x1
        {"out": 8, "pads": [1, 1, 1, 1]},                         # too few channels for the rule
    ])
    report = rewrite_model(model, WinogradRule(min_in_channels=16, min_out_channels=16, min_output_pixels=64))
    assert report["rewritten_convs"] == 1
    assert report["direct_reasons"] == {"strided": 1, "dilated": 1, "grouped": 1, "not a float32 3x3 kernel": 1,
                                        "too few channels": 1}
    small = _conv_model(1, 32, 6, 6, [{"out": 32, "pads": [1, 1, 1, 1]}])
    report = rewrite_model(small, WinogradRule(min_in_channels=16, min_out_channels=16, min_output_pixels=64))
    assert report["direct_reasons"] == {"too few output pixels": 1}
    with pytest.raises(ModelError, match=r"tiny.onnx: no convolution qualifies.*too few output pixels"):
        require_rewrites(report, "tiny.onnx")
    assert [n.op_type for n in small.graph.node] == ["Conv"]  # nothing rewritten, nothing changed


def test_shared_weights_are_transformed_once_and_kept_while_a_direct_conv_reads_them() -> None:
    model = _conv_model(1, 16, 32, 32, [
        {"out": 16, "pads": [1, 1, 1, 1], "share": "head"},
        {"out": 16, "pads": [1, 1, 1, 1], "share": "head"},
        {"out": 16, "pads": [1, 1, 1, 1], "strides": [2, 2], "share": "head"},  # stays direct
    ])
    x = np.random.default_rng(2).standard_normal((1, 16, 32, 32)).astype(np.float32)
    expected = _run(model, x)
    report = rewrite_model(model, EVERY_CONV)
    assert report["rewritten_convs"] == 2 and report["direct_reasons"] == {"strided": 1}
    names = [t.name for t in model.graph.initializer]
    assert sum(name.endswith("_U") for name in names) == 1 and "w0" in names
    for got, want in zip(_run(model, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * float(np.abs(want).max()))
    only_rewritten = _conv_model(1, 16, 32, 32, [{"out": 16, "pads": [1, 1, 1, 1], "share": "a"}] * 2)
    rewrite_model(only_rewritten, EVERY_CONV)
    assert "w0" not in {t.name for t in only_rewritten.graph.initializer}


# --- the fp32 cpu variant of whole engine graphs -----------------------------------------------------------


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("winograd-phantoms")
    write_phantoms(folder, 4, seed=31, scale=0.08, normal_fraction=0.25)
    return folder


@pytest.fixture(scope="module")
def landscape(models_dir: Path) -> TinyModel:
    """The tiny network at a second geometry (tile 192x288, 3 x 3 grid)."""
    return _export(models_dir, "tiny_landscape_winograd", TileGeometry(192, 288, 3), prior=0.001, seed=0)


def _findings(model: Path, images: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    found = []
    with OnnxRuntimeRunner(model) as runner:
        spec = runner.metadata.graph_spec
        builder = CanvasBuilder(spec.geometry, spec.canvas_dtype)
        for path in sorted(images.glob("*.dcm")):
            builder.fill(read_image(path).pixels)
            out = runner.infer(all_views_feed(runner, builder.canvas))
            keep = out["scores"] > 0
            found.append((out["boxes"][keep], out["scores"][keep]))
    return found


def _assert_same_findings(reference: list[tuple[np.ndarray, np.ndarray]],
                          variant: list[tuple[np.ndarray, np.ndarray]], min_findings: int) -> None:
    """Same findings as sets: each has a partner at IoU >= 0.99 with a score within 1e-4.

    fp32 with another rounding order moves scores by ~1e-6; a finding may still flip where the merge
    compares two nearly equal scores, so one unmatched finding in 100 is allowed, not more.
    """
    total = unmatched = 0
    for (boxes_a, scores_a), (boxes_b, scores_b) in zip(reference, variant, strict=True):
        for boxes_x, scores_x, boxes_y, scores_y in ((boxes_a, scores_a, boxes_b, scores_b),
                                                     (boxes_b, scores_b, boxes_a, scores_a)):
            iou = box_iou(boxes_x, boxes_y) if len(boxes_x) and len(boxes_y) else np.zeros((len(boxes_x), 0))
            for i in range(len(boxes_x)):
                total += 1
                partners = np.flatnonzero(iou[i] >= 0.99)
                unmatched += not (len(partners) and np.abs(scores_y[partners] - scores_x[i]).min() <= 1e-4)
    assert total >= 2 * min_findings, f"only {total // 2} findings: too few to judge"
    assert unmatched <= total // 100, f"{unmatched} of {total} findings without an equal partner"


@pytest.mark.parametrize("which", ["tiny", "landscape"])
def test_fp32_cpu_variant_finds_what_the_export_finds(which: str, tiny_model: TinyModel, landscape: TinyModel,
                                                      phantoms: Path, tmp_path: Path) -> None:
    source = {"tiny": tiny_model, "landscape": landscape}[which].onnx_path
    variant = tmp_path / f"{which}-fp32-cpu.onnx"
    metadata = quantize_model(source, variant, QuantizeOptions("fp32", "cpu", winograd=TINY_RULE))
    assert metadata.quantization["rewritten_convs"] >= 8
    _assert_same_findings(_findings(source, phantoms), _findings(variant, phantoms), min_findings=20)


def test_trained_demo_model_keeps_its_findings(phantoms: Path, tmp_path: Path) -> None:
    from trt_mass.bundled import default_model

    images = tmp_path / "images"
    write_phantoms(images, 3, seed=78, scale=0.25, normal_fraction=0.0)
    variant = tmp_path / "demo-fp32-cpu.onnx"
    metadata = quantize_model(default_model(), variant,
                              QuantizeOptions("fp32", "cpu", winograd=WinogradRule(64, 64, 64)))
    assert metadata.quantization["rewritten_convs"] >= 10
    _assert_same_findings(_findings(default_model(), images), _findings(variant, images), min_findings=3)


def test_variant_metadata_and_refusals(tiny_model: TinyModel, tmp_path: Path) -> None:
    variant = tmp_path / "tiny-fp32-cpu.onnx"
    metadata = quantize_model(tiny_model.onnx_path, variant, QuantizeOptions("fp32", "cpu", winograd=TINY_RULE))
    source = read_onnx_metadata(tiny_model.onnx_path)
    read = read_onnx_metadata(variant)
    assert read == metadata and (read.precision, read.target) == ("fp32", "cpu")
    assert read.model_id == f"{source.model_id}-cpu" and read.weights_sha256 == source.weights_sha256
    assert read.calibration_sha256 is None and read.inputs == source.inputs and read.outputs == source.outputs
    assert read.quantization["algorithm"] == "winograd F(4x4,3x3)"
    assert read.quantization["rule"] == {"min_in_channels": 16, "min_out_channels": 16, "min_output_pixels": 16}
    assert read.quantization["source_onnx_sha256"] == file_sha256(tiny_model.onnx_path)
    with pytest.raises(ModelError, match="already a fp32 variant for cpu"):
        quantize_model(variant, tmp_path / "again.onnx", QuantizeOptions("fp16", "tensorrt"))
    with pytest.raises(ConfigError, match="fp32 exists for --target cpu only"):
        QuantizeOptions("fp32", "tensorrt")
    with pytest.raises(ModelError, match="no convolution qualifies"):  # 32-channel heads: the default rule skips all
        quantize_model(tiny_model.onnx_path, tmp_path / "none.onnx", QuantizeOptions("fp32", "cpu"))
    assert not list(tmp_path.glob("none.onnx*"))


def test_cli_makes_the_variant_and_detect_uses_it(tiny_model: TinyModel, phantoms: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tiny-fp32-cpu.onnx"
    made = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "fp32", "--target", "cpu",
                                "--winograd-min-channels", "16", "--winograd-min-pixels", "16", "-o", str(out)])
    assert made.exit_code == 0, made.output
    assert "fp32-cpu for cpu" in made.output and "winograd F(4x4,3x3)" in made.output
    refused = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "fp32", "--target", "cpu",
                                   "-o", str(tmp_path / "default-rule.onnx")])
    assert refused.exit_code == ModelError.exit_code and "no convolution qualifies" in refused.output
    for bad in (["--precision", "fp16", "--target", "cpu", "--winograd-min-channels", "8"],
                ["--precision", "fp32", "--target", "tensorrt"],
                ["--precision", "fp32", "--target", "cpu", "--method", "entropy"]):
        result = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), *bad, "-o", str(tmp_path / "x.onnx")])
        assert result.exit_code == ConfigError.exit_code, (bad, result.output)
    image = sorted(phantoms.glob("*.dcm"))[0]
    for model, folder in ((tiny_model.onnx_path, "a"), (out, "b")):
        result = runner.invoke(main, ["detect", str(image), "--model", str(model), "--out", str(tmp_path / folder)])
        assert result.exit_code == 0, result.output
    assert read_onnx_metadata(out).model_id.endswith("-fp32-cpu")
