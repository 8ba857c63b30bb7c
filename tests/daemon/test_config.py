"""The watch daemon's settings: defaults < TOML file < TRTMASS_WATCH_* environment < flags, and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_mass.daemon.config import load_config
from trt_mass.errors import ConfigError


def test_watch_config_knows_the_backends(tmp_path: Path) -> None:
    for backend in ("ort", "trt", "auto"):
        assert load_config({"root": tmp_path, "backend": backend}, environ={}).backend == backend
    with pytest.raises(ConfigError, match="backend must be one of ort, trt, auto"):
        load_config({"root": tmp_path, "backend": "cuda"}, environ={})
    config = load_config({"root": tmp_path}, environ={"TRTMASS_WATCH_ALLOW_ENGINE_HOST_CODE": "yes"})
    assert config.allow_engine_host_code is True
