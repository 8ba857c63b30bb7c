"""`trtmass serve`: a real tritonserver with the repository's configuration, ready for systemd, stopped by SIGTERM."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.triton_server import ServeProcess, need_tritonserver
from trt_mass.metadata import file_sha256


def served_config(server: ServeProcess) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"{server.http_url}/v2/models/trt_mass/config", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_served_configuration_is_the_repository_one(served: ServeProcess, watch_model: Path, tmp_path: Path) -> None:
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    written = subprocess.run([sys.executable, "-m", "trt_mass.cli", "triton-repo", str(watch_model), "--out",
                              str(tmp_path / "repo")], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    repository = json_format.MessageToDict(text_format.Parse((tmp_path / "repo" / "trt_mass" / "config.pbtxt")
                                                             .read_text(), model_config_pb2.ModelConfig()),
                                           preserving_proto_field_name=True)
    config = served_config(served)
    assert config["name"] == repository["name"] == "trt_mass" and config["backend"] == "python"
    for field in ("input", "output"):
        assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config[field]] == \
            [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in repository[field]]
    parameters = {key: value["string_value"] for key, value in config["parameters"].items()}
    assert {key: value["string_value"] for key, value in repository["parameters"].items()}.items() <= \
        parameters.items()
    assert parameters["trt_mass.onnx_path"] == str(watch_model.resolve())
    assert parameters["trt_mass.source_sha256"] == file_sha256(watch_model)


def test_serve_says_ready_to_systemd_and_stops_on_sigterm(watch_model: Path, tmp_path: Path) -> None:
    need_tritonserver()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(60)
    server = ServeProcess(watch_model, tmp_path / "serve.log", "--instances", "2", "--threads", "1",
                          "--workdir", str(tmp_path / "work"), env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    server.start()
    try:
        message = notify.recv(4096).decode()
        assert "READY=1" in message and f"grpc://127.0.0.1:{server.grpc_port}" in message
        config = served_config(server)
        assert config["instance_group"][0]["count"] == 2
        assert config["parameters"]["trt_mass.threads"]["string_value"] == "1"
        assert (tmp_path / "work" / "repository" / "trt_mass" / "1" / "model.py").is_file()
        assert server.terminate() == 0
        assert not server.ready()
        assert "STOPPING=1" in notify.recv(4096).decode()
    finally:
        server.stop()
        notify.close()


def test_serve_refuses_a_missing_model_and_clashing_ports(tmp_path: Path) -> None:
    missing = subprocess.run([sys.executable, "-m", "trt_mass.cli", "serve", str(tmp_path / "none.onnx")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    same_ports = subprocess.run([sys.executable, "-m", "trt_mass.cli", "serve", __file__, "--port", "9000",
                                 "--grpc-port", "9000"], capture_output=True, text=True, timeout=60)
    assert same_ports.returncode == 2 and "three different ports" in same_ports.stderr
