"""`trtmass serve` as a real process on free loopback ports: shared by the runner, serving and daemon tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port


def need_tritonserver() -> None:
    """Skip (with the reason) where the nvidia-pytriton wheel's tritonserver or tritonclient is missing."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed (pip install 'trt_mass[triton]')")
    from trt_mass.errors import BackendUnavailableError
    from trt_mass.serving.server import triton_distribution

    try:
        triton_distribution()
    except BackendUnavailableError as error:
        pytest.skip(f"no tritonserver here: {error} (make serve-tools)")


class ServeProcess:
    """`python -m trt_mass.cli serve MODEL` in its own process group, so a kill takes tritonserver with it."""

    def __init__(self, model: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.model, self.log, self.extra = model, log, extra
        self.env = {**os.environ, **(env or {})}
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait: bool = True) -> ServeProcess:
        command = [sys.executable, "-m", "trt_mass.cli", "serve", str(self.model), "--port", str(self.http_port),
                   "--grpc-port", str(self.grpc_port), "--metrics-port", str(self.metrics_port), *self.extra]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/models/trt_mass/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"trtmass serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.2)
        raise AssertionError(f"trtmass serve not ready in {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL to the whole group: the wrapper and tritonserver with its stubs, no goodbyes."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for region in Path("/dev/shm").glob(f"trtmass_{self.process.pid}_*"):  # trt_mass.serving.server's prefix
            region.unlink(missing_ok=True)
        deadline = time.monotonic() + 20
        while self.ready() and time.monotonic() < deadline:
            time.sleep(0.1)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # whatever the group left behind
                os.killpg(self.process.pid, signal.SIGKILL)
