"""INT8 with layers kept in fp32: layer groups, --keep-fp32 NAMES, and the sensitivity pass of `auto`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")  # the `train` extra: exporting and quantizing need onnx

from tests.conftest import TinyModel  # noqa: E402
from trt_mass.cli import main  # noqa: E402
from trt_mass.datasets.synth import write_phantoms  # noqa: E402
from trt_mass.errors import ConfigError  # noqa: E402
from trt_mass.metadata import read_onnx_metadata  # noqa: E402
from trt_mass.precision.calib import CalibrationSet, CanvasReader, load_manifest, make_manifest  # noqa: E402
from trt_mass.precision.cpu import cpu_has_vnni  # noqa: E402
from trt_mass.precision.quantize import (  # noqa: E402
    QuantizeOptions,
    list_layer_groups,
    network_node_names,
    quantize_model,
    tensorrt_qdq_problems,
)
from trt_mass.precision.sensitivity import (  # noqa: E402
    KeepFp32,
    enough_kept,
    group_name,
    lowest_error_prefix,
    resolve,
    score_error,
    score_taps,
    scores_of,
)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    images = tmp_path_factory.mktemp("sens-images")
    write_phantoms(images, 6, seed=41, scale=0.08, normal_fraction=0.2)
    manifest = tmp_path_factory.mktemp("sens-calib") / "sens.toml"
    make_manifest(str(images), 4, 0, manifest)
    return load_manifest(manifest)


def _quantized_conv_weights(path: Path) -> dict[str, bool]:
    """Conv node name -> whether its weight comes through a DequantizeLinear."""
    model = onnx.load(str(path))
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return {node.name: node.input[1] in dequantized for node in model.graph.node if node.op_type == "Conv"}


def test_layer_groups_are_named_by_their_weights(tiny_model: TinyModel) -> None:
    groups = list_layer_groups(tiny_model.onnx_path)
    assert "backbone.body.conv1" in groups and "head.classification_head.cls_logits" in groups
    assert not any(name.startswith("network.") or name.endswith(".weight") for name in groups)
    levels = len(groups["head.classification_head.cls_logits"])
    assert levels == 5, "one Conv per pyramid level P3-P7, one shared weight"
    assert group_name("network.head.regression_head.bbox_reg.weight") == "head.regression_head.bbox_reg"
    assert resolve(groups, ["head.classification_head"]) == [g for g in groups if g.startswith("head.classification")]
    assert resolve(groups, ["backbone.body.conv1", "backbone.body.conv1"]) == ["backbone.body.conv1"]
    with pytest.raises(ConfigError, match=r"'head\.cls' names no layer group"):
        resolve(groups, ["head.cls"])


def test_keep_fp32_parses_auto_and_names() -> None:
    assert KeepFp32.parse(None) == KeepFp32() and not KeepFp32.parse("").requested
    assert KeepFp32.parse("auto, backbone.body.conv1", max_groups=2) == KeepFp32(("backbone.body.conv1",), True, 2)
    with pytest.raises(ConfigError, match="keep-fp32 applies to --precision int8 only"):
        QuantizeOptions("fp16", "tensorrt", keep_fp32=KeepFp32(auto=True))


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_named_groups_stay_fp32_and_the_rest_is_int8(target: str, tiny_model: TinyModel,
                                                     calibration: CalibrationSet, tmp_path: Path) -> None:
    keep = KeepFp32(("backbone.body.conv1", "head.classification_head.cls_logits"))
    output = tmp_path / "int8.onnx"
    metadata = quantize_model(tiny_model.onnx_path, output, QuantizeOptions("int8", target, keep_fp32=keep),
                              calibration)
    groups = list_layer_groups(tiny_model.onnx_path)
    float_convs = set(groups["backbone.body.conv1"]) | set(groups["head.classification_head.cls_logits"])
    weights = _quantized_conv_weights(output)
    assert {name for name, quantized in weights.items() if not quantized} == float_convs
    assert metadata.quantization["keep_fp32"]["groups"] == list(keep.names)
    assert read_onnx_metadata(output).quantization["keep_fp32"]["groups"] == list(keep.names)
    if target == "tensorrt":
        variant = onnx.load(str(output))
        assert tensorrt_qdq_problems(variant, float_convs) == []
        assert tensorrt_qdq_problems(variant), "without the kept list, the float convs are reported"


def test_auto_keeps_the_most_sensitive_groups_and_records_what_it_measured(
        tiny_model: TinyModel, calibration: CalibrationSet, tmp_path: Path) -> None:
    # Among the classification head's 5 groups: the whole network's 38 would take minutes here.
    keep = KeepFp32(auto=True, max_groups=2, images=2, among=("head.classification_head",))
    output, all_int8 = tmp_path / "auto.onnx", tmp_path / "all.onnx"
    # Without VNNI the int8 cpu variant is the --reduce-range one (ONNX Runtime's u8 x s8 kernels saturate).
    reduce_range = cpu_has_vnni() is False
    metadata = quantize_model(tiny_model.onnx_path, output,
                              QuantizeOptions("int8", "cpu", reduce_range=reduce_range, keep_fp32=keep), calibration)
    quantize_model(tiny_model.onnx_path, all_int8, QuantizeOptions("int8", "cpu", reduce_range=reduce_range),
                   calibration)
    report = metadata.quantization["keep_fp32"]["auto"]
    errors = [error for _, error in report["most_sensitive"]]
    assert errors == sorted(errors, reverse=True) and len(errors) == 5
    assert all(group.startswith("head.classification_head.") for group, _ in report["most_sensitive"])
    assert 1 <= len(report["chosen"]) <= 2 and report["chosen"][0] == report["most_sensitive"][0][0]
    assert metadata.quantization["keep_fp32"]["groups"] == report["chosen"]
    # The recorded figures are the shipped file's: re-measure on the same first calibration images.
    model = onnx.load(str(tiny_model.onnx_path))
    network = network_node_names(model.graph)
    taps = score_taps(model.graph, network, list_layer_groups(tiny_model.onnx_path))
    reader = CanvasReader(calibration, tiny_model.graph_spec.geometry, tiny_model.graph_spec.canvas_dtype)
    reader.set_range(0, 2)
    feeds = [feed for feed in iter(reader.get_next, None)]
    reference = scores_of(tiny_model.onnx_path, taps, feeds)
    kept_error = score_error(reference, scores_of(output, taps, feeds))
    full_error = score_error(reference, scores_of(all_int8, taps, feeds))
    assert kept_error == pytest.approx(report["score_error_with_kept"][-1], abs=1e-6)
    assert full_error == pytest.approx(report["all_int8_score_error"], abs=1e-6)
    assert kept_error < full_error
    assert not list(tmp_path.glob("*.sensitivity.onnx")) and not list(tmp_path.glob("*.ranges.json"))


def test_score_error_counts_only_candidate_anchors() -> None:
    reference = [np.array([0.001, 0.002, 0.5, 0.2], np.float32)]
    assert score_error(reference, [np.array([0.03, 0.0, 0.4, 0.2], np.float32)]) == pytest.approx(0.05)
    assert score_error(reference, [np.array([0.06, 0.002, 0.5, 0.2], np.float32)]) == pytest.approx(0.059 / 3)
    assert score_error([np.zeros(3, np.float32)], [np.zeros(3, np.float32)]) == 0.0


def test_auto_keeps_adding_until_the_target_and_keeps_the_lowest_error_prefix() -> None:
    # The shape of the demo model's cpu variant: the fourth layer made the error worse again.
    errors = [0.00060, 0.00052, 0.00051, 0.00070]
    assert not any(enough_kept(errors[:k], 0.0020, 0.25) for k in range(1, 5))
    assert lowest_error_prefix(errors) == 3 and lowest_error_prefix(errors[:2]) == 2
    assert enough_kept([0.0004], 0.0020, 0.25), "target met with one layer"
    assert lowest_error_prefix([0.0005, 0.0005]) == 1, "a tie keeps fewer fp32 layers"


def test_cli_lists_layers_and_refuses_unknown_names(tiny_model: TinyModel, calibration: CalibrationSet,
                                                    tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--list-layers"])
    assert listed.exit_code == 0, listed.output
    assert "head.classification_head.cls_logits  (5 pyramid levels)" in listed.output
    refused = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8", "--target", "cpu",
                                   "--calib", str(calibration.manifest_path), "--keep-fp32", "layer9",
                                   "-o", str(tmp_path / "x.onnx")])
    assert refused.exit_code == ConfigError.exit_code and "'layer9' names no layer group" in refused.output
    assert not list(tmp_path.glob("x.onnx*"))
    missing = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8"])
    assert missing.exit_code == 2 and "--target" in missing.output
    variant = tmp_path / "fp16.onnx"
    made = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "fp16", "--target", "tensorrt",
                                "-o", str(variant)])
    assert made.exit_code == 0, made.output
    of_variant = runner.invoke(main, ["quantize", str(variant), "--list-layers"])  # printed nothing before
    assert of_variant.exit_code == 4 and "already a fp16 variant" in of_variant.output
