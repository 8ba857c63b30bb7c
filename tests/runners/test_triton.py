"""The triton backend against a real `trtmass serve` (tritonserver on loopback): parity, refusals, outages, clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import blob_canvas, free_port, match_as_sets
from tests.triton_server import ServeProcess
from trt_mass.errors import ConfigError, InferenceServerError, ModelError
from trt_mass.pipeline import Detector
from trt_mass.runners.triton import ServerAddress, parse_server_url

IMAGE_SHAPES = ((300, 200), (700, 520), (400, 1100), (1500, 600))  # portrait, near-square, landscape, tall


def test_server_urls_parse_with_default_ports_and_refuse_the_rest() -> None:
    assert parse_server_url("grpc://gpu-server") == ServerAddress("grpc", False, "gpu-server", 8001)
    assert parse_server_url("http://10.0.0.5:9000") == ServerAddress("http", False, "10.0.0.5", 9000)
    assert parse_server_url("grpcs://[::1]:8443") == ServerAddress("grpc", True, "::1", 8443)
    assert str(parse_server_url("https://triton.example:443/")) == "https://triton.example:443"
    for bad in ("triton:8001", "ftp://host:1", "grpc://", "http://host:8000/v2/models/x", "grpc://host:port"):
        with pytest.raises(ConfigError, match="triton-url"):
            parse_server_url(bad)


def test_triton_backend_needs_a_url_and_an_onnx(watch_model: Path) -> None:
    with pytest.raises(ConfigError, match="--triton-url"):
        Detector(watch_model, backend="triton")
    with pytest.raises(ConfigError, match=r"checks the served model against an \.onnx"):
        Detector(watch_model.with_suffix(".plan"), backend="triton", triton_url="grpc://127.0.0.1:1")


def _image(shape: tuple[int, int], seed: int) -> np.ndarray:
    return blob_canvas(shape, seed)[0, 0]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_findings_equal_local_onnx_runtime_as_sets(served: ServeProcess, watch_model: Path,
                                                          protocol: str) -> None:
    url = served.grpc_url if protocol == "grpc" else served.http_url
    with Detector(watch_model, backend="ort") as local, \
            Detector(watch_model, backend="triton", triton_url=url) as remote:
        assert remote.backend == "triton" and "checked against tiny.onnx" in remote.backend_reason
        assert remote.metadata.weights_sha256 == local.metadata.weights_sha256
        for seed, shape in enumerate(IMAGE_SHAPES):
            image = _image(shape, seed)
            ours, theirs = local.detect(image, pixel_spacing_mm=(0.1, 0.1)), remote.detect(image,
                                                                                            pixel_spacing_mm=(0.1, 0.1))
            assert ours.findings, f"no findings on {shape}: the comparison would be empty"
            match_as_sets(*_arrays(ours.findings), *_arrays(theirs.findings), box_tol=1e-3, score_tol=1e-6)
        stages = remote.runner.last_stage_ms  # type: ignore[attr-defined]
        assert set(stages) == {"network", "inference"} and stages["inference"] > 0 and stages["network"] >= 0


def _arrays(findings: list) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in findings], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([f.score for f in findings], dtype=np.float64)


def test_a_server_with_another_geometry_is_refused_with_the_reason(
        served: ServeProcess, tiny_model_other_shape) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError) as refused:
        Detector(tiny_model_other_shape.onnx_path, backend="triton", triton_url=served.grpc_url).open()
    message = str(refused.value)
    assert "is not tiny_other.onnx" in message and "geometry tile 128x96, grid 5, expected tile 192x288, grid 3" \
        in message and "weights" in message


def test_an_unknown_model_name_and_an_unreachable_server_fail_with_exit_code_8(
        served: ServeProcess, watch_model: Path, tmp_path: Path) -> None:
    from trt_mass.datasets.synth import write_phantoms

    phantom = write_phantoms(tmp_path, 1, seed=2, scale=0.05)[0]
    with pytest.raises(InferenceServerError, match=r"model 'nope' is not ready.*models on the server: trt_mass"):
        Detector(watch_model, backend="triton", triton_url=served.grpc_url, triton_model="nope").open()
    port = free_port()  # nobody listens there
    command = [sys.executable, "-m", "trt_mass.cli", "detect", str(phantom), "--model", str(watch_model),
               "--backend", "triton", "--triton-url", f"grpc://127.0.0.1:{port}", "--triton-timeout", "1"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 8, finished.stderr
    assert f"grpc://127.0.0.1:{port} model 'trt_mass': reading the model configuration failed" in finished.stderr


def test_four_detect_processes_at_once_against_one_server(served: ServeProcess, watch_model: Path,
                                                          tmp_path: Path) -> None:
    from trt_mass.datasets.synth import write_phantoms

    phantoms = write_phantoms(tmp_path / "in", 8, seed=11, scale=0.06, normal_fraction=0.0)
    local = subprocess.run([sys.executable, "-m", "trt_mass.cli", "detect", str(tmp_path / "in"), "--model",
                            str(watch_model), "--out", str(tmp_path / "local"), "--threads", "1"],
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    clients = [subprocess.Popen([sys.executable, "-m", "trt_mass.cli", "detect", str(tmp_path / "in"), "--model",
                                 str(watch_model), "--out", str(tmp_path / f"remote{i}"), "--backend", "triton",
                                 "--triton-url", served.grpc_url if i % 2 else served.http_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for client in clients:
        _, stderr = client.communicate(timeout=300)
        assert client.returncode == 0, stderr
    expected = _results(tmp_path / "local")
    assert len(expected) == len(phantoms)
    for i in range(4):
        results = _results(tmp_path / f"remote{i}")
        assert results.keys() == expected.keys()
        for name, findings in results.items():
            match_as_sets(*_json_arrays(expected[name]), *_json_arrays(findings), box_tol=0.02, score_tol=2e-5)


def _results(folder: Path) -> dict[str, list[dict[str, float]]]:
    return {path.name: json.loads(path.read_text())["findings"] for path in folder.glob("*.json")}


def _json_arrays(findings: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in findings], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([f["score"] for f in findings], dtype=np.float64)


def test_a_served_model_with_view_selection_gets_the_views_with_tissue(tissue_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_tissue import breast
    from tests.triton_server import need_tritonserver

    need_tritonserver()
    server = ServeProcess(tissue_model.onnx_path, tmp_path / "serve.log").start()
    try:
        image = breast(1400, 1000, radius=650, seed=4)
        with Detector(tissue_model.onnx_path, threads=1) as local, \
                Detector(tissue_model.onnx_path, backend="triton", triton_url=server.grpc_url) as remote:
            ours, theirs = local.detect(image), remote.detect(image)
        assert theirs.views == ours.views and len(ours.views) < 26 and ours.findings
        match_as_sets(*_arrays(ours.findings), *_arrays(theirs.findings), box_tol=1e-3, score_tol=1e-6)
    finally:
        server.stop()
