"""The watch daemon's settings: defaults < TOML file < TRTMASS_WATCH_* environment < flags, and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_mass.daemon.config import load_config
from trt_mass.errors import ConfigError


def test_watch_config_knows_the_backends(tmp_path: Path) -> None:
    for backend in ("ort", "trt", "auto"):
        assert load_config({"root": tmp_path, "backend": backend}, environ={}).backend == backend
    with pytest.raises(ConfigError, match="backend must be one of ort, trt, triton, auto"):
        load_config({"root": tmp_path, "backend": "cuda"}, environ={})
    with pytest.raises(ConfigError, match="backend triton needs triton_url"):
        load_config({"root": tmp_path, "backend": "triton"}, environ={})
    with pytest.raises(ConfigError, match="expected grpc://HOST:PORT"):
        load_config({"root": tmp_path, "backend": "triton"}, environ={"TRTMASS_WATCH_TRITON_URL": "server:8001"})
    served = load_config({"root": tmp_path}, environ={"TRTMASS_WATCH_BACKEND": "triton",
                                                      "TRTMASS_WATCH_TRITON_URL": "grpc://gpu:8001",
                                                      "TRTMASS_WATCH_TRITON_TIMEOUT_S": "5"})
    assert (served.triton_url, served.triton_model, served.triton_timeout_s) == ("grpc://gpu:8001", "trt_mass", 5.0)
    config = load_config({"root": tmp_path}, environ={"TRTMASS_WATCH_ALLOW_ENGINE_HOST_CODE": "yes"})
    assert config.allow_engine_host_code is True


def test_the_shipped_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "systemd" / "trtmass-watch.toml"
    config = load_config({}, example, environ={})
    assert config.decoder == "auto" and config.dicom_kinds == ("sr", "gsps", "sc")


def test_decoder_settings_are_checked(tmp_path: Path) -> None:
    config = load_config({"root": tmp_path}, environ={"TRTMASS_WATCH_DECODER": "openjpeg",
                                                      "TRTMASS_WATCH_DECODE_WORKERS": "3",
                                                      "TRTMASS_WATCH_DECODE_THREADS": "1"})
    assert (config.decoder, config.decode_workers, config.decode_threads) == ("openjpeg", 3, 1)
    with pytest.raises(ConfigError, match="decoder must be one of auto, nvimgcodec, openjpeg, pydicom"):
        load_config({"root": tmp_path, "decoder": "gpu"}, environ={})
    with pytest.raises(ConfigError, match="decode workers and threads must be >= 1"):
        load_config({"root": tmp_path}, environ={"TRTMASS_WATCH_DECODE_WORKERS": "0"})


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_durations_must_be_finite_and_not_negative(tmp_path: Path, value: str) -> None:
    """NaN passed every comparison: a settle time of NaN left every arrival in incoming/ for ever."""
    with pytest.raises(ConfigError, match=rf"settle_s must be a finite number >= 0, got {value.replace('+', '')}"):
        load_config({"root": tmp_path}, None, environ={"TRTMASS_WATCH_SETTLE_S": value})


@pytest.mark.parametrize(("toml", "environ", "message"), [
    (None, {"TRTMASS_WATCH_POLL_INTERVAL": "0.5"}, "unknown environment variable TRTMASS_WATCH_POLL_INTERVAL"),
    (None, {"TRTMASS_WATCH_ROOT": ""}, "root: empty; give a path"),
    (None, {"TRTMASS_WATCH_MODEL": " "}, "model: empty; give a path"),
    (b"polling = true\n[watch]\nroot = '/srv/x'\n", {}, "'polling' outside the \\[watch\\] table"),
    (b"[watch]\nstable_polls = 2.9\n", {}, "stable_polls: expected a whole number, got 2.9"),
    (b"[watch]\npoll_interval_s = true\n", {}, "poll_interval_s: expected a number, got True"),
    (b"[watch]\nroot = '\xff\xfe'\n", {}, "cannot read the watch config"),
])
def test_settings_that_would_be_ignored_or_bent_are_refused(tmp_path: Path, toml: bytes | None,
                                                            environ: dict[str, str], message: str) -> None:
    """Each of these used to start a daemon that did something else than the file or the unit said."""
    config_file = None
    if toml is not None:
        config_file = tmp_path / "watch.toml"
        config_file.write_bytes(toml)
    flags = {} if "TRTMASS_WATCH_ROOT" in environ else {"root": tmp_path}
    with pytest.raises(ConfigError, match=message):
        load_config(flags, config_file, environ=environ)
