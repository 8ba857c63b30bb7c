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


@pytest.mark.parametrize(("payload", "reason"), [
    ({"format_version": 1}, r"no spec mapping"),
    ({"format_version": 1, "spec": {"arch": "resnet18", "head_width": 16}}, r"no state_dict mapping"),
    ({"format_version": 1, "spec": "resnet18", "state_dict": {}}, r"no spec mapping"),
    ({"format_version": 1, "spec": {"arch": "resnet101"}, "state_dict": {}}, r"model spec is not one this trt_mass"),
    ({"format_version": 1, "spec": {"arch": "resnet18", "head_width": 16}, "state_dict": {}, "extra": [1, 2]},
     r"no extra mapping"),
])
def test_a_hand_made_checkpoint_is_a_model_error_naming_the_file(tmp_path: Path, payload: dict, reason: str) -> None:
    """Each used to end in a KeyError/TypeError traceback, or exit 2 without the file's name."""
    path = tmp_path / "hand.pt"
    torch.save(payload, path)
    with pytest.raises(ModelError, match=rf"hand\.pt: .*{reason}"):
        load_checkpoint(path)


class Pickled:
    """A class torch's weights-only loader does not know: its refusal advises running the file's code."""


def test_torch_s_unsafe_advice_is_not_passed_on(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"format_version": 1, "thing": Pickled()}, path)  # loading it needs weights_only=False
    with pytest.raises(ModelError, match=r"pickled\.pt: not a trt_mass checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
