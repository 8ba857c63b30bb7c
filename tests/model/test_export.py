"""The exported graph: standard ops only, NMS present, TopK k < 3840, static shapes, metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # the `train` extra: exporting and quantizing need onnx

from onnx import helper  # noqa: E402

from tests.conftest import TinyModel  # noqa: E402
from trt_mass.errors import ModelError  # noqa: E402
from trt_mass.metadata import read_onnx_metadata  # noqa: E402

pytest.importorskip("torch")

from trt_mass.model.export import _constant_ints, check_standard_ops  # noqa: E402


def test_op_set_is_standard_with_nms_and_small_topk(tiny_model: TinyModel) -> None:
    model = onnx.load(str(tiny_model.onnx_path))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    ops = [node.op_type for node in model.graph.node]
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)
    assert ops.count("NonMaxSuppression") == 1, "one NMS op for the whole view batch"
    constants = _constant_ints(model)
    top_ks = [constants[node.input[1]] for node in model.graph.node if node.op_type == "TopK"]
    assert top_ks and all(max(k) < 3840 for k in top_ks)
    for node in model.graph.node:
        if node.op_type == "Resize":
            modes = {a.name: a.s for a in node.attribute}
            assert modes.get("coordinate_transformation_mode") != b"tf_crop_and_resize"
    assert not model.functions
    check_standard_ops(model)


def test_static_shapes_and_metadata(tiny_model: TinyModel) -> None:
    metadata = read_onnx_metadata(tiny_model.onnx_path)
    spec = tiny_model.graph_spec
    assert metadata.kind == "engine_graph" and metadata.precision == "fp32"
    assert metadata.init.startswith("random:seed=0")
    assert metadata.graph_spec == spec and metadata.model_spec == tiny_model.network.spec
    (canvas,) = metadata.inputs
    assert (canvas.name, canvas.dtype, canvas.shape) == ("canvas", "uint16", (1, 1, *spec.geometry.canvas_hw))
    assert [(o.name, o.shape) for o in metadata.outputs] == [
        ("boxes", (spec.max_candidates, 4)), ("scores", (spec.max_candidates,))]
    assert {"torch", "onnx", "onnxruntime"} <= set(metadata.versions)
    from trt_mass.model.checkpoint import weights_sha256

    assert metadata.weights_sha256 == weights_sha256(tiny_model.network)
    model = onnx.load(str(tiny_model.onnx_path))
    flat = {p.key: p.value for p in model.metadata_props}
    assert flat["trt_mass.tile_hw"] == "256x224" and flat["trt_mass.precision"] == "fp32"


def test_check_refuses_custom_domain_and_large_topk() -> None:
    node = helper.make_node("EfficientNMS_TRT", ["x"], ["y"], domain="trt.plugins")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("trt.plugins", 1)])
    with pytest.raises(ModelError, match="non-standard domain"):
        check_standard_ops(model)
    k = helper.make_tensor("k", onnx.TensorProto.INT64, [1], [5000])
    topk = helper.make_node("TopK", ["x", "k"], ["v", "i"])
    graph = helper.make_graph([topk], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [9000])],
                              [helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [5000])], [k])
    with pytest.raises(ModelError, match="TopK"):
        check_standard_ops(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]))


def test_non_trtmass_onnx_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    with pytest.raises(ModelError, match="not a trt_mass model"):
        read_onnx_metadata(path)
    with pytest.raises(ModelError, match="no such model"):
        read_onnx_metadata(tmp_path / "missing.onnx")


def test_cli_export_random_network_only_and_checkpoint(tmp_path: Path) -> None:
    """The CLI: --init random --network-only, and export from a saved checkpoint, then `info`."""
    from trt_mass.model.checkpoint import load_checkpoint, random_network, save_checkpoint, weights_sha256
    from trt_mass.spec import ModelSpec

    network_only = tmp_path / "net.onnx"
    cli = [sys.executable, "-m", "trt_mass.cli"]
    subprocess.run([*cli, "export", "--init", "random", "--arch", "resnet18", "--head-width", "16", "--seed", "0",
                    "--tile", "128x96", "--network-only", "-o", str(network_only)], check=True)
    metadata = read_onnx_metadata(network_only)
    assert metadata.kind == "network_only" and metadata.inputs[0].shape == (26, 1, 128, 96)
    assert metadata.outputs[0].name == "cls_logits"

    network = random_network(ModelSpec(arch="resnet18", head_width=16), seed=5)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, network)
    reloaded, _ = load_checkpoint(checkpoint)
    assert weights_sha256(reloaded) == weights_sha256(network)
    graph = tmp_path / "graph.onnx"
    subprocess.run([*cli, "export", str(checkpoint), "--tile", "128x96", "--grid", "3", "--operating-point",
                    "1fppi=0.3", "-o", str(graph)], check=True)
    info = subprocess.run([*cli, "info", str(graph)], check=True, capture_output=True, text=True)
    data = json.loads(info.stdout)
    assert data["weights_sha256"] == weights_sha256(network) and data["init"] == "checkpoint:model.pt"
    assert data["operating_points"]["scores"] == {"1": 0.3} and data["operating_points"]["source"] == "export"
    assert data["graph_spec"]["geometry"] == {"tile_h": 128, "tile_w": 96, "grid": 3}

    bad = subprocess.run([*cli, "export", "--tile", "100x96", "--init", "random", "-o", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "multiple of 32" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run([*cli, "export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.onnx")],
                             capture_output=True, text=True)
    assert missing.returncode == 4 and "nope.pt" in missing.stderr and "Traceback" not in missing.stderr
    assert np.isfinite(data["graph_spec"]["merge_iou"])
