"""Checkpoints: weights + spec + format version, round trip, hashes, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


from trt_mass.errors import ConfigError, ModelError  # noqa: E402
from trt_mass.model.checkpoint import load_checkpoint, random_network, save_checkpoint, weights_sha256  # noqa: E402
from trt_mass.spec import ModelSpec  # noqa: E402


def test_checkpoint_roundtrip_and_refusals(tmp_path: Path) -> None:
    network = random_network(ModelSpec("resnet18", 16), seed=3)
    path = tmp_path / "a.pt"
    save_checkpoint(path, network, {"epoch": 2})
    loaded, extra = load_checkpoint(path)
    assert extra == {"epoch": 2} and loaded.spec == network.spec
    assert weights_sha256(loaded) == weights_sha256(network)
    assert weights_sha256(random_network(ModelSpec("resnet18", 16), seed=4)) != weights_sha256(network)
    torch.save({"format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(ModelError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ConfigError):
        ModelSpec(arch="resnet101")
