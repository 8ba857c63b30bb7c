"""The watch daemon on `--backend triton`: a server that dies mid-stream keeps the files waiting, none lost."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom

from tests.daemon_process import Daemon, events, wait_for
from tests.triton_server import ServeProcess, need_tritonserver
from trt_mass.datasets.synth import write_phantoms


def _results(root: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    folder = root / "results"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")} if folder.exists() else {}


def test_a_killed_server_keeps_files_queued_and_each_gets_one_result(watch_model: Path, tmp_path: Path) -> None:
    need_tritonserver()
    phantoms = write_phantoms(tmp_path / "staging", 10, seed=21, scale=0.05, normal_fraction=0.0)
    sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in phantoms}
    server = ServeProcess(watch_model, tmp_path / "serve.log").start()
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start("--backend", "triton", "--triton-url", server.grpc_url,
                                             "--triton-timeout", "2")
    try:
        incoming = root / "incoming"
        wait_for(lambda: incoming.is_dir(), 60, "the daemon's folders")
        for path in phantoms[:4]:
            (incoming / path.name).write_bytes(path.read_bytes())
        wait_for(lambda: len(_results(root)) >= 1, 120, "a first result through the server")
        server.kill()  # SIGKILL to tritonserver and its wrapper while files are still arriving
        for path in phantoms[4:]:
            (incoming / path.name).write_bytes(path.read_bytes())
        wait_for(lambda: any(e.get("event") in ("inference_failed", "model_unavailable") for e in events(daemon.log)),
                 60, "the daemon noticing the outage")
        waiting = len(sops) - len(_results(root))
        assert waiting >= 6, "files must wait while the server is away"
        assert not (root / "failed").exists() or not any((root / "failed").iterdir())
        server.start()  # the same ports: the daemon's retries find it again
        wait_for(lambda: len(_results(root)) == len(sops), 180, "every file's result once the server is back")
        results = _results(root)
        assert set(results) == sops
        assert all(r["model"]["backend"] == "triton" for r in results.values())
        wait_for(lambda: not any((root / "processing").iterdir()), 30, "processing/ to empty")
        assert len(list((root / "done").iterdir())) == len(sops)  # exactly one result and one done file each
        assert not (root / "failed").exists() or not any((root / "failed").iterdir())
    finally:
        daemon.terminate()
        server.stop()
