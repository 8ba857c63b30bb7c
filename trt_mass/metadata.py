"""Metadata carried by every artifact (ONNX model, later engines): what it is, where it came from.

Stored as one JSON document under the ONNX metadata key "trt_mass".  Reading needs neither torch
nor onnx: ONNX Runtime exposes the map, and `read_onnx_metadata` falls back to a tiny protobuf read
through onnx only when it is installed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_mass.errors import ModelError
from trt_mass.spec import GraphSpec, ModelSpec

METADATA_KEY = "trt_mass"
METADATA_FORMAT = 1
KINDS = ("engine_graph", "network_only")
MODEL_PRECISIONS = ("fp32", "fp16", "int8")
MODEL_TARGETS = ("any", "tensorrt", "cpu")  # any: the fp32 export every variant is made from
OPERATING_FPPI = ("0.25", "0.5", "1", "2")  # the false positives per image eval measures score thresholds for


@dataclass(frozen=True)
class OperatingPoints:
    """Score thresholds at which the model marked at most so many false positives per image on a named data set.

    Attributes:
        scores: {"0.25": s, "0.5": s, "1": s, "2": s}: a finding is shown at "1fppi" when its score >= scores["1"].
        tpr: the sensitivity at each point on that data set ({} when the points were given, not measured).
        data: the data set (as given to eval), or who set the points.
        images, lesions: its size (0 when given).
        criterion, iou_threshold: how a detection counted as a hit.
        source: "eval" (measured) or "export" (given on the command line).
    """

    scores: dict[str, float]
    data: str
    source: str
    tpr: dict[str, float] = field(default_factory=dict)
    images: int = 0
    lesions: int = 0
    criterion: str | None = None
    iou_threshold: float | None = None

    def __post_init__(self) -> None:
        for name, score in self.scores.items():
            if not 0.0 <= float(score) <= 1.0:
                raise ModelError(f"operating point {name} fppi: score {score} is not in [0, 1]")

    def describe(self) -> str:
        measured = f" on {self.data} ({self.images} images, {self.lesions} masses)" if self.source == "eval" else ""
        return f"{self.source}{measured}"

    def to_dict(self) -> dict[str, Any]:
        return {"scores": dict(self.scores), "tpr": dict(self.tpr), "data": self.data, "images": self.images,
                "lesions": self.lesions, "criterion": self.criterion, "iou_threshold": self.iou_threshold,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperatingPoints:
        return cls(scores={str(k): float(v) for k, v in data["scores"].items()}, data=str(data["data"]),
                   source=str(data["source"]), tpr={str(k): float(v) for k, v in data.get("tpr", {}).items()},
                   images=int(data.get("images", 0)), lesions=int(data.get("lesions", 0)),
                   criterion=data.get("criterion"), iou_threshold=data.get("iou_threshold"))


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype (numpy name) and static shape of one graph input or output."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(v) for v in data["shape"]))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to use and to audit an exported model."""

    kind: str
    model_spec: ModelSpec
    graph_spec: GraphSpec
    weights_sha256: str
    init: str  # "checkpoint:<name>" or "random:seed=<s>,prior=<p>" (random weights say so)
    precision: str = "fp32"
    target: str = "any"
    quantization: dict[str, Any] = field(default_factory=dict)
    calibration_sha256: str | None = None
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    operating_points: OperatingPoints | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelError(f"unknown model kind {self.kind!r}")
        # Every consumer branches on these two; an unknown value would pick a branch silently
        if self.precision not in MODEL_PRECISIONS:
            raise ModelError(f"unknown precision {self.precision!r} (trt_mass writes {', '.join(MODEL_PRECISIONS)})")
        if self.target not in MODEL_TARGETS:
            raise ModelError(f"unknown target {self.target!r} (trt_mass writes {', '.join(MODEL_TARGETS)})")

    @property
    def model_id(self) -> str:
        """Short id of the weights + precision (+ target of a variant), for file names and logs."""
        variant = f"-{self.target}" if self.target != "any" else ""
        return f"{self.model_spec.arch}-{self.weights_sha256[:12]}-{self.precision}{variant}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": METADATA_FORMAT,
                "kind": self.kind,
                "model_spec": self.model_spec.to_dict(),
                "graph_spec": self.graph_spec.to_dict(),
                "weights_sha256": self.weights_sha256,
                "init": self.init,
                "precision": self.precision,
                "target": self.target,
                "quantization": self.quantization,
                "calibration_sha256": self.calibration_sha256,
                "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs],
                "versions": self.versions,
                "operating_points": None if self.operating_points is None else self.operating_points.to_dict(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<model>") -> ModelMetadata:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ModelError(f"{source}: malformed trt_mass metadata (a JSON {type(data).__name__}, not an object)")
            if data.get("format") != METADATA_FORMAT:
                raise ModelError(
                    f"{source}: metadata format {data.get('format')}, this trt_mass reads {METADATA_FORMAT}"
                )
            return cls._from_dict(data, source)
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{source}: malformed trt_mass metadata ({error})") from error

    @classmethod
    def _from_dict(cls, data: dict[str, Any], source: str) -> ModelMetadata:
        try:
            return cls(
                kind=data["kind"],
                model_spec=ModelSpec.from_dict(data["model_spec"]),
                graph_spec=GraphSpec.from_dict(data["graph_spec"]),
                weights_sha256=data["weights_sha256"],
                init=data["init"],
                precision=data["precision"],
                target=data.get("target", "any"),
                quantization=dict(data.get("quantization", {})),
                calibration_sha256=data.get("calibration_sha256"),
                inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
                versions=dict(data.get("versions", {})),
                operating_points=(OperatingPoints.from_dict(data["operating_points"])
                                  if data.get("operating_points") else None),
            )
        except ModelError as error:  # a value the constructor refuses; it does not know the file
            raise ModelError(f"{source}: malformed trt_mass metadata ({error})") from error

    def flat_entries(self) -> dict[str, str]:
        """Key/value pairs written beside the JSON so generic tools (Netron, onnx) show the essentials."""
        geometry = self.graph_spec.geometry
        return {
            METADATA_KEY: self.to_json(),
            "trt_mass.kind": self.kind,
            "trt_mass.precision": self.precision,
            "trt_mass.weights_sha256": self.weights_sha256,
            "trt_mass.tile_hw": f"{geometry.tile_h}x{geometry.tile_w}",
            "trt_mass.grid": str(geometry.grid),
            "trt_mass.init": self.init,
        }


def metadata_from_map(entries: dict[str, str], source: str) -> ModelMetadata:
    if METADATA_KEY not in entries:
        raise ModelError(f"{source}: not a trt_mass model (no '{METADATA_KEY}' metadata); export it with trtmass")
    return ModelMetadata.from_json(entries[METADATA_KEY], source)


def read_onnx_metadata(path: str | Path) -> ModelMetadata:
    """Metadata of an ONNX file, read through ONNX Runtime (no weights are initialised twice)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({error})") from error
    return metadata_from_map(dict(session.get_modelmeta().custom_metadata_map), str(path))


def rewrite_onnx_metadata(path: str | Path, metadata: ModelMetadata) -> None:
    """Replace the trt_mass metadata of an ONNX file (the graph and weights stay as they are), atomically.

    Needs onnx (the `train` extra).  The file's hash changes: engines built from the old file no longer
    match it and are rebuilt (`--backend auto` says so).
    """
    from trt_mass.atomic import atomic_path
    from trt_mass.errors import BackendUnavailableError

    try:
        import onnx
    except ImportError as error:
        raise BackendUnavailableError(f"writing model metadata needs onnx ({error}); pip install "
                                      "'trt_mass[train]'") from error
    path = Path(path)
    model = onnx.load(str(path))
    current = metadata_from_map({p.key: p.value for p in model.metadata_props}, str(path))
    if current.weights_sha256 != metadata.weights_sha256 or current.graph_spec != metadata.graph_spec:
        raise ModelError(f"{path}: the new metadata is for other weights or another graph")
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(METADATA_KEY)]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.flat_entries().items()]:
        model.metadata_props.add(key=key, value=value)
    with atomic_path(path, suffix=".onnx") as temporary:
        onnx.save(model, str(temporary))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
