"""FP16/INT8 variants of a tiny model: graph structure, metadata, agreement with fp32, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")  # the `train` extra: exporting and quantizing need onnx

from onnx import numpy_helper  # noqa: E402

from tests.conftest import TinyModel, _export  # noqa: E402
from tests.helpers import all_views_feed  # noqa: E402
from trt_mass.cli import main  # noqa: E402
from trt_mass.datasets.synth import write_phantoms  # noqa: E402
from trt_mass.errors import ConfigError, InputError, ModelError  # noqa: E402
from trt_mass.geometry import CanvasBuilder  # noqa: E402
from trt_mass.inputs.files import read_image  # noqa: E402
from trt_mass.merge_oracle import box_iou  # noqa: E402
from trt_mass.precision.calib import CalibrationSet, load_manifest, make_manifest  # noqa: E402
from trt_mass.precision.cpu import cpu_has_vnni  # noqa: E402
from trt_mass.precision.quantize import (  # noqa: E402
    QuantizeOptions,
    list_layer_groups,
    network_node_names,
    quantize_model,
    tensorrt_qdq_problems,
)
from trt_mass.runners.ort import OnnxRuntimeRunner  # noqa: E402
from trt_mass.spec import TileGeometry  # noqa: E402

# Stated tolerances of each variant against fp32 on held-out images, judged on the fp32 findings
# scoring >= score_floor: `located` = share with a variant finding at IoU >= 0.5, `recall` = share
# with such a finding whose score is within score_tol, and the median score change.
#
# Random tiny networks give hundreds of overlapping candidates per image, so the cross-view merge is
# chaotic there: a score moved by 0.02 lets a box join or leave a cluster and the cluster's largest
# box jumps.  fp16 (network only; decode in fp32) still keeps > 90 % of the findings; int8 keeps the
# scores (median change ~0.02-0.03) but only about half of the merged boxes.  The trained demo model
# (few, separated findings, like a real detector) is held to the tighter int8 figures.
# Without VNNI ONNX Runtime's u8 x s8 kernels saturate: the cpu variants are made as such a PC needs them
# (--reduce-range), and a TensorRT variant run by ONNX Runtime here is no proxy for TensorRT.
WITHOUT_VNNI = cpu_has_vnni() is False

TOLERANCES = {
    "random": {
        "fp16": {"score_floor": 0.1, "score_tol": 0.01, "min_located": 0.88, "min_recall": 0.85,
                 "max_median_score_diff": 0.002},
        "int8": {"score_floor": 0.1, "score_tol": 0.05, "min_located": 0.3, "min_recall": 0.2,
                 "max_median_score_diff": 0.05},
    },
    "trained": {
        "fp16": {"score_floor": 0.1, "score_tol": 0.01, "min_located": 0.95, "min_recall": 0.95,
                 "max_median_score_diff": 0.002},
        "int8": {"score_floor": 0.1, "score_tol": 0.05, "min_located": 0.8, "min_recall": 0.75,
                 "max_median_score_diff": 0.03},
    },
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("quant-images")
    write_phantoms(folder, 10, seed=5, scale=0.08, normal_fraction=0.3)
    return folder


@pytest.fixture(scope="module")
def calibration(images: Path, tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    manifest = tmp_path_factory.mktemp("calib") / "tiny.toml"
    make_manifest(str(images), 6, 0, manifest)
    return load_manifest(manifest)


@pytest.fixture(scope="module")
def second_shape(models_dir: Path) -> TinyModel:
    """The tiny network of `tiny_model` (it finds things on phantoms) at a second, landscape geometry."""
    return _export(models_dir, "tiny_landscape", TileGeometry(192, 288, 3), prior=0.001, seed=0)


@pytest.fixture(scope="module")
def variants(tiny_model: TinyModel, second_shape: TinyModel, calibration: CalibrationSet,
             tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Path]:
    """Every variant of both tiny geometries: (model name, precision, target) -> path."""
    out = tmp_path_factory.mktemp("variants")
    paths = {}
    for model in (tiny_model, second_shape):
        for precision, target in (("fp16", "tensorrt"), ("int8", "tensorrt"), ("int8", "cpu")):
            path = out / f"{model.onnx_path.stem}-{precision}-{target}.onnx"
            reduce_range = WITHOUT_VNNI and (precision, target) == ("int8", "cpu")
            quantize_model(model.onnx_path, path, QuantizeOptions(precision, target, cache_dir=out / "cache",
                                                                  reduce_range=reduce_range),
                           calibration if precision == "int8" else None)
            paths[(model.onnx_path.stem, precision, target)] = path
    return paths


def _held_out_canvases(model_path: Path, images: Path, calibration: CalibrationSet) -> list[np.ndarray]:
    with OnnxRuntimeRunner(model_path) as runner:
        spec = runner.metadata.graph_spec
    used = {p.resolve() for p in calibration.paths()}
    builder = CanvasBuilder(spec.geometry, spec.canvas_dtype)
    canvases = []
    for path in sorted(images.glob("*.dcm")):
        if path.resolve() not in used:
            builder.fill(read_image(path).pixels)
            canvases.append(builder.canvas.copy())
    return canvases


def _findings(path: Path, canvases: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    with OnnxRuntimeRunner(path) as runner:
        outputs = [runner.infer(all_views_feed(runner, canvas)) for canvas in canvases]
    return [(o["boxes"][o["scores"] > 0], o["scores"][o["scores"] > 0]) for o in outputs]


def agreement_with_fp32(reference: list[tuple[np.ndarray, np.ndarray]], variant: list[tuple[np.ndarray, np.ndarray]],
                        score_floor: float, score_tol: float) -> dict[str, float]:
    """Share of fp32 findings (score >= score_floor) that the variant has too: a finding with IoU >= 0.5
    and a score within score_tol.  Sets, not indices: merged findings have no stable order."""
    wanted = found = located = 0
    diffs = []
    for (boxes_a, scores_a), (boxes_b, scores_b) in zip(reference, variant, strict=True):
        iou = box_iou(boxes_a, boxes_b) if len(boxes_a) and len(boxes_b) else np.zeros((len(boxes_a), 0))
        for i in np.flatnonzero(scores_a >= score_floor):
            wanted += 1
            close = np.flatnonzero(iou[i] >= 0.5)
            if len(close):
                located += 1
                diff = float(np.abs(scores_b[close] - scores_a[i]).min())
                diffs.append(diff)
                found += diff <= score_tol
    return {"wanted": wanted, "located": located / max(1, wanted), "recall": found / max(1, wanted),
            "median_score_diff": float(np.median(diffs)) if diffs else 1.0}


@pytest.mark.parametrize("model_name", ["tiny", "tiny_landscape"])
@pytest.mark.parametrize("precision,target", [("fp16", "tensorrt"), ("int8", "tensorrt"), ("int8", "cpu")])
def test_variant_agrees_with_fp32(model_name: str, precision: str, target: str, tiny_model: TinyModel,
                                  second_shape: TinyModel, variants: dict[tuple[str, str, str], Path],
                                  images: Path, calibration: CalibrationSet) -> None:
    if WITHOUT_VNNI and (precision, target) == ("int8", "tensorrt"):
        pytest.skip("this CPU has no VNNI: ONNX Runtime's saturating int8 kernels say nothing of TensorRT's")
    source = {"tiny": tiny_model, "tiny_landscape": second_shape}[model_name].onnx_path
    canvases = _held_out_canvases(source, images, calibration)
    reference = _findings(source, canvases)
    _assert_agrees(reference, _findings(variants[(model_name, precision, target)], canvases),
                   TOLERANCES["random"][precision])


def _assert_agrees(reference: list[tuple[np.ndarray, np.ndarray]], variant: list[tuple[np.ndarray, np.ndarray]],
                   tolerance: dict[str, float]) -> None:
    measured = agreement_with_fp32(reference, variant, tolerance["score_floor"], tolerance["score_tol"])
    assert measured["wanted"] >= 5, "the held-out images give too few findings to judge"
    assert measured["located"] >= tolerance["min_located"], measured
    assert measured["recall"] >= tolerance["min_recall"], measured
    assert measured["median_score_diff"] <= tolerance["max_median_score_diff"], measured


def test_trained_model_variants_agree(tmp_path: Path) -> None:
    from trt_mass.bundled import default_model

    source = default_model()
    images = tmp_path / "images"
    write_phantoms(images, 10, seed=77, scale=0.25, normal_fraction=0.2)
    calibration = make_manifest(str(images), 5, 0, tmp_path / "calib.toml")
    canvases = _held_out_canvases(source, images, calibration)
    reference = _findings(source, canvases)
    for precision, target in (("fp16", "tensorrt"), ("int8", "tensorrt"), ("int8", "cpu")):
        path = tmp_path / f"demo-{precision}-{target}.onnx"
        quantize_model(source, path, QuantizeOptions(precision, target), calibration if precision == "int8" else None)
        _assert_agrees(reference, _findings(path, canvases), TOLERANCES["trained"][precision])


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}


@pytest.mark.parametrize("model_name", ["tiny", "tiny_landscape"])
def test_int8_for_tensorrt_is_symmetric_with_per_channel_weights(
        model_name: str, variants: dict[tuple[str, str, str], Path]) -> None:
    model = onnx.load(str(variants[(model_name, "int8", "tensorrt")]))
    initializers = _initializers(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for node in qdq:  # every zero point present, int8 and 0: TensorRT's symmetric scheme
        zero_point = initializers[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    dq_by_output = {n.output[0]: n for n in qdq if n.op_type == "DequantizeLinear"}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs:
        weight_dq = dq_by_output[conv.input[1]]
        weight = initializers[weight_dq.input[0]]
        scale = initializers[weight_dq.input[1]]
        axis = next((a.i for a in weight_dq.attribute if a.name == "axis"), 1)
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],) and axis == 0, conv.name
        assert conv.input[0] in dq_by_output, f"{conv.name}: activation not quantized"
        if len(conv.input) > 2:  # biases stay float: TensorRT has no int32 Q/DQ
            assert conv.input[2] in initializers and initializers[conv.input[2]].dtype == np.float32
    assert tensorrt_qdq_problems(model) == []
    # decode, NMS and merge stay fp32: no Q/DQ feeds them
    post = [n for n in model.graph.node if n.op_type in ("NonMaxSuppression", "TopK", "Exp", "Sigmoid")]
    assert post and not any(i in dq_by_output for n in post for i in n.input)


def test_int8_for_cpu_uses_unsigned_activations(variants: dict[tuple[str, str, str], Path]) -> None:
    model = onnx.load(str(variants[("tiny", "int8", "cpu")]))
    initializers = _initializers(model)
    zero_points = [initializers[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.uint8 for z in zero_points)
    assert tensorrt_qdq_problems(model)  # not a TensorRT graph, and the check says so


def test_fp16_keeps_decode_and_merge_in_fp32(variants: dict[tuple[str, str, str], Path],
                                             tiny_model: TinyModel) -> None:
    model = onnx.load(str(variants[("tiny", "fp16", "tensorrt")]))
    initializers = _initializers(model)
    conv_weights = [initializers[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]
    assert conv_weights and all(w.dtype == np.float16 for w in conv_weights)
    source = onnx.load(str(tiny_model.onnx_path))
    network = network_node_names(source.graph)
    post_initializers = {i for n in source.graph.node if n.name not in network for i in n.input} & set(initializers)
    float_post = [name for name in post_initializers if initializers[name].dtype.kind == "f"]
    assert float_post and all(initializers[name].dtype == np.float32 for name in float_post)
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert inputs == {"canvas": onnx.TensorProto.UINT16}
    assert outputs == {"boxes": onnx.TensorProto.FLOAT, "scores": onnx.TensorProto.FLOAT}


def test_variant_metadata_records_precision_target_method_and_set(
        variants: dict[tuple[str, str, str], Path], calibration: CalibrationSet, tiny_model: TinyModel) -> None:
    from trt_mass.metadata import file_sha256, read_onnx_metadata

    source = read_onnx_metadata(tiny_model.onnx_path)
    for (name, precision, target), path in variants.items():
        if name != "tiny":
            continue
        metadata = read_onnx_metadata(path)
        assert (metadata.precision, metadata.target) == (precision, target)
        assert metadata.weights_sha256 == source.weights_sha256 and metadata.graph_spec == source.graph_spec
        assert metadata.quantization["source_onnx_sha256"] == file_sha256(tiny_model.onnx_path)
        assert metadata.model_id.endswith(f"-{precision}-{target}")
        if precision == "int8":
            assert metadata.calibration_sha256 == calibration.content_sha256
            assert metadata.quantization["method"] == "minmax"
            assert metadata.quantization["calibration_images"] == len(calibration.images)
        else:
            assert metadata.calibration_sha256 is None


def test_refusals(tiny_model: TinyModel, variants: dict[tuple[str, str, str], Path], calibration: CalibrationSet,
                  tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a calibration set"):
        quantize_model(tiny_model.onnx_path, tmp_path / "x.onnx", QuantizeOptions("int8", "tensorrt"))
    with pytest.raises(ConfigError, match="takes no calibration set"):
        quantize_model(tiny_model.onnx_path, tmp_path / "x.onnx", QuantizeOptions("fp16", "tensorrt"), calibration)
    with pytest.raises(ModelError, match="already a fp16 variant"):
        quantize_model(variants[("tiny", "fp16", "tensorrt")], tmp_path / "x.onnx", QuantizeOptions("fp16", "cpu"))
    with pytest.raises(ConfigError, match="reduce-range"):
        QuantizeOptions("int8", "tensorrt", reduce_range=True)
    with pytest.raises(ConfigError, match="method"):
        QuantizeOptions("int8", "cpu", method="magic")
    assert not (tmp_path / "x.onnx").exists()
    runner = CliRunner()
    for extra in (["--precision", "fp16", "--method", "entropy"],
                  ["--precision", "int8", "--calib", str(calibration.manifest_path), "--no-cache", "--cache-dir", "c"]):
        refused = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--target", "cpu", *extra,
                                       "-o", str(tmp_path / "x.onnx")])
        assert refused.exit_code == ConfigError.exit_code, refused.output
    assert not list(tmp_path.glob("x.onnx*"))
    refused = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--target", "cpu", "--precision", "int8",
                                   "--calib", str(calibration.manifest_path), "--keep-fp32", "nosuchlayer",
                                   "-o", str(tmp_path / "x.onnx")])
    assert refused.exit_code == ConfigError.exit_code and "nosuchlayer" in refused.output, refused.output
    assert not list(tmp_path.glob("*x.onnx*")), "no temporary model left behind (it was 47 MB for resnet50)"
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ModelError, match=r"text\.onnx: not an ONNX model"):
        list_layer_groups(tmp_path / "text.onnx")


def test_cli_quantize_with_a_changed_calibration_image_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_phantoms(images, 3, seed=9, scale=0.05)
    manifest = tmp_path / "calib" / "set.toml"
    runner = CliRunner()
    made = runner.invoke(main, ["calib", "make", "--from", str(images), "--count", "3", "-o", str(manifest)])
    assert made.exit_code == 0, made.output
    shown = runner.invoke(main, ["calib", "show", str(manifest), "--verify"])
    assert shown.exit_code == 0 and json.loads(shown.output)["images"] == 3
    out = tmp_path / "int8.onnx"
    ok = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8", "--target", "cpu",
                              "--calib", str(manifest), "--method", "entropy", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "cache written" in ok.output and list((manifest.parent / "cache").glob("set-entropy-*.json"))
    assert ("this CPU has no VNNI" in ok.output) == WITHOUT_VNNI, "warned of on such a CPU, and only there"
    again = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8", "--target", "cpu",
                                 "--calib", str(manifest), "--method", "entropy", "-o", str(out)])
    assert again.exit_code == 0 and "cache hit" in again.output
    cache = next((manifest.parent / "cache").glob("set-entropy-*.json"))
    cache.write_text(cache.read_text()[:40])  # cut short: it failed every later run, blaming the model
    healed = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8", "--target", "cpu",
                                  "--calib", str(manifest), "--method", "entropy", "-o", str(out)])
    assert healed.exit_code == 0, healed.output
    assert f"calibration cache {cache} is unreadable" in healed.output and "cache written" in healed.output
    victim = sorted(images.glob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:-16] + bytes(16))
    refused = runner.invoke(main, ["quantize", str(tiny_model.onnx_path), "--precision", "int8", "--target",
                                   "cpu", "--calib", str(manifest), "-o", str(tmp_path / "y.onnx")])
    assert refused.exit_code == InputError.exit_code and victim.name in refused.output
    assert not (tmp_path / "y.onnx").exists()


def test_own_minmax_pass_gives_onnx_runtimes_ranges(tiny_model: TinyModel, calibration: CalibrationSet,
                                                    tmp_path: Path) -> None:
    """Our memory-bounded MinMax pass must give what ONNX Runtime's own MinMax calibrator gives."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from trt_mass.metadata import read_onnx_metadata
    from trt_mass.precision.calib import CanvasReader

    ours = tmp_path / "ours.onnx"
    quantize_model(tiny_model.onnx_path, ours, QuantizeOptions("int8", "tensorrt"), calibration)
    source = onnx.load(str(tiny_model.onnx_path))
    named = tmp_path / "named.onnx"
    for index, node in enumerate(source.graph.node):  # as quantize_model names them
        node.name = node.name or f"{node.op_type}_trtmass_{index}"
    onnx.save(source, str(named))
    spec = read_onnx_metadata(tiny_model.onnx_path).graph_spec
    theirs = tmp_path / "theirs.onnx"
    quantize_static(str(named), str(theirs), CanvasReader(calibration, spec.geometry, spec.canvas_dtype),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, nodes_to_quantize=sorted(network_node_names(source.graph)),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    scales = [{n.input[0]: _initializers(m)[n.input[1]] for n in m.graph.node if n.op_type == "QuantizeLinear"}
              for m in (onnx.load(str(ours)), onnx.load(str(theirs)))]
    assert scales[0].keys() == scales[1].keys() and len(scales[0]) > 20
    for name, scale in scales[0].items():
        np.testing.assert_allclose(scale, scales[1][name], rtol=1e-5, err_msg=name)


def test_a_variant_does_not_inherit_the_source_s_operating_points(tiny_model: TinyModel, tmp_path: Path) -> None:
    """Points measured on the fp32 model are not the variant's: it must be measured (or says it has none)."""
    import dataclasses

    from trt_mass.metadata import OperatingPoints, read_onnx_metadata, rewrite_onnx_metadata

    source = tmp_path / "tiny.onnx"
    source.write_bytes(tiny_model.onnx_path.read_bytes())
    points = OperatingPoints(scores={"1": 0.3}, data="held out", source="eval", images=5, lesions=4)
    rewrite_onnx_metadata(source, dataclasses.replace(read_onnx_metadata(source), operating_points=points))
    assert read_onnx_metadata(source).operating_points == points
    variant = tmp_path / "tiny-fp16.onnx"
    quantize_model(source, variant, QuantizeOptions("fp16", "tensorrt"))
    assert read_onnx_metadata(variant).operating_points is None


def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    from trt_mass.precision.cpu import cpu_has_vnni

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 fma\n")
    assert cpu_has_vnni(cpuinfo) is False
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni(cpuinfo) is True
    cpuinfo.write_text("processor\t: 0\n")
    assert cpu_has_vnni(cpuinfo) is None and cpu_has_vnni(tmp_path / "missing") is None


def test_full_range_int8_on_a_cpu_without_vnni_is_warned_of(variants: dict[tuple[str, str, str], Path],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import trt_mass.precision.cpu as cpu

    int8 = variants[("tiny", "int8", "tensorrt")]  # full-range weights: TensorRT's Q/DQ
    for has_vnni, warned in ((True, False), (None, False), (False, True)):
        monkeypatch.setattr(cpu, "cpu_has_vnni", lambda has_vnni=has_vnni: has_vnni)
        caplog.clear()
        with caplog.at_level("WARNING", logger="trt_mass.runners.ort"), OnnxRuntimeRunner(int8):
            pass
        assert ("without VNNI" in caplog.text and str(int8) in caplog.text) == warned, (has_vnni, caplog.text)
    caplog.clear()
    fp16 = variants[("tiny", "fp16", "tensorrt")]
    with caplog.at_level("WARNING", logger="trt_mass.runners.ort"), OnnxRuntimeRunner(fp16):
        pass
    assert not caplog.text, "fp16 has nothing to saturate"
