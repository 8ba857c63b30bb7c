"""Export a network as the engine graph (or network-only) ONNX with its metadata.

Needs torch, onnx, onnxscript and onnxsim (the `train` extra).  The exported graph uses the standard
ONNX domain only (no plugins), opset 19, static shapes after the canvas input; with view selection the
`view_index` input's length is the one dynamic dimension ("views", 1..26).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch

from trt_mass.atomic import atomic_path
from trt_mass.errors import ModelError
from trt_mass.metadata import ModelMetadata, OperatingPoints, TensorSpec
from trt_mass.model.checkpoint import weights_sha256
from trt_mass.model.graph import EngineGraph, ViewBatch
from trt_mass.model.network import RetinaNetNetwork
from trt_mass.model.nms_op import custom_translation_table
from trt_mass.spec import GraphSpec
from trt_mass.version import package_versions

log = logging.getLogger(__name__)

OPSET = 19
STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class ExportOptions:
    """What to export.

    Attributes:
        graph_spec: tiles, thresholds and N of the engine graph (also used for the network-only view batch).
        network_only: export just backbone + FPN + heads on the view batch (parity, benchmarks).
        simplify: run onnxsim on the exported graph.
        operating_points: score thresholds to record (usually measured later by `trtmass eval
            --write-operating-points`).
    """

    graph_spec: GraphSpec
    network_only: bool = False
    simplify: bool = True
    operating_points: OperatingPoints | None = None


class _NetworkOnly(torch.nn.Module):
    def __init__(self, network: RetinaNetNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(views)


VIEWS_DIM = "views"


def _example_and_names(
    network: RetinaNetNetwork, options: ExportOptions
) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    geometry = options.graph_spec.geometry
    canvas_h, canvas_w = geometry.canvas_hw
    generator = torch.Generator().manual_seed(0)
    canvas = torch.randint(0, 65535, (1, 1, canvas_h, canvas_w), generator=generator, dtype=torch.int32)
    canvas = canvas.to(getattr(torch, options.graph_spec.canvas_dtype))
    if options.network_only:
        views = ViewBatch(geometry)(canvas)
        return _NetworkOnly(network), (views,), ["views"], ["cls_logits", "box_regression"]
    graph = EngineGraph(network, options.graph_spec)
    if not options.graph_spec.selects_views:
        return graph, (canvas,), ["canvas"], ["boxes", "scores"]
    # An example K that is neither 1 nor the number of views, so that tracing keeps K symbolic.
    view_index = torch.arange(0, geometry.num_views, 5, dtype=torch.int32)
    return graph, (canvas, view_index), ["canvas", "view_index"], ["boxes", "scores"]


def _tensor_specs(graph_values: Any) -> tuple[TensorSpec, ...]:
    from onnx import helper

    specs = []
    for value in graph_values:
        tensor_type = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        shape = tuple(int(d.dim_value) if d.dim_value > 0 else -1 for d in tensor_type.shape.dim)
        if any(d <= 0 for d in shape) and value.name != "view_index":
            raise ModelError(f"exported graph has a non-static shape for {value.name}: {shape}")
        specs.append(TensorSpec(value.name, dtype, shape))
    return tuple(specs)


def export_onnx(
    network: RetinaNetNetwork, init: str, options: ExportOptions, output_path: str | Path
) -> ModelMetadata:
    """Export `network` to `output_path`; returns the metadata written into the file.

    Args:
        network: the trained (or random) network; put in eval mode here.
        init: provenance, e.g. "checkpoint:model.pt" or "random:seed=0,prior=0.01".
    """
    network = network.eval()
    broken = [name for name, value in network.state_dict().items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:  # a diverged training run: the model would find nothing, silently
        raise ModelError(f"{init}: {len(broken)} weight tensor(s) hold NaN or infinity ({', '.join(broken[:3])}"
                         f"{' ...' if len(broken) > 3 else ''}); the training diverged, this model cannot be exported")
    module, example, input_names, output_names = _example_and_names(network, options)
    module = module.eval()
    dynamic_shapes = None
    if len(example) == 2:
        views = torch.export.Dim(VIEWS_DIM, min=1, max=options.graph_spec.geometry.num_views)
        dynamic_shapes = {"canvas": None, "view_index": {0: views}}
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            example,
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            custom_translation_table=custom_translation_table(),
            verbose=False,
        )
    if program is None:
        raise ModelError("torch.onnx.export returned no program")
    model = program.model_proto
    if options.simplify:
        model = _simplify(model)
    _name_view_dimension(model)
    check_standard_ops(model)
    metadata = ModelMetadata(
        kind="network_only" if options.network_only else "engine_graph",
        model_spec=network.spec,
        graph_spec=options.graph_spec,
        weights_sha256=weights_sha256(network),
        init=init,
        inputs=_tensor_specs(model.graph.input),
        outputs=_tensor_specs(model.graph.output),
        versions=package_versions(),
        operating_points=options.operating_points,
    )
    del model.metadata_props[:]
    for key, value in metadata.flat_entries().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_path, suffix=".onnx") as temporary:
        onnx.save(model, str(temporary))
    return metadata


def _name_view_dimension(model: onnx.ModelProto) -> None:
    """The dynamic length of view_index is called "views" (onnxsim renames symbolic dimensions)."""
    for value in model.graph.input:
        if value.name == "view_index":
            dimension = value.type.tensor_type.shape.dim[0]
            dimension.ClearField("dim_value")
            dimension.dim_param = VIEWS_DIM


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxsim import simplify

    simplified, ok = simplify(model)
    if not ok:
        raise ModelError("onnxsim could not validate the simplified graph")
    return simplified


def check_standard_ops(model: onnx.ModelProto) -> None:
    """Refuse graphs TensorRT or ONNX Runtime could not both run: custom domains, big TopK, crop-resize."""
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise ModelError(f"exported graph imports non-standard domain {opset.domain!r}")
    if model.functions:
        raise ModelError("exported graph still has local functions; inline them")
    constants = _constant_ints(model)
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise ModelError(f"node {node.name} uses non-standard domain {node.domain!r}")
        if node.op_type == "TopK":
            k_values = constants.get(node.input[1])
            if k_values is None or max(k_values) >= 3840:
                raise ModelError(f"TopK {node.name} has k={k_values}; TensorRT needs a constant k < 3840")
        if node.op_type == "Resize":
            for attribute in node.attribute:
                if attribute.name == "coordinate_transformation_mode" and attribute.s == b"tf_crop_and_resize":
                    raise ModelError(f"Resize {node.name} uses crop-and-resize, which TensorRT lacks")


def _constant_ints(model: onnx.ModelProto) -> dict[str, list[int]]:
    from onnx import numpy_helper

    values: dict[str, list[int]] = {}
    for initializer in model.graph.initializer:
        if initializer.data_type == onnx.TensorProto.INT64 and len(initializer.dims) <= 1:
            values[initializer.name] = [int(v) for v in numpy_helper.to_array(initializer).reshape(-1)]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == onnx.TensorProto.INT64:
                    array = numpy_helper.to_array(attribute.t).reshape(-1)
                    values[node.output[0]] = [int(v) for v in array]
    return values
