"""Checkpoints: weights + ModelSpec + a format version, loadable with torch.load(weights_only=True)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from trt_mass.atomic import atomic_path
from trt_mass.errors import ConfigError, ModelError
from trt_mass.model.network import RetinaNetNetwork, set_prior_probability
from trt_mass.spec import ModelSpec

CHECKPOINT_FORMAT = 1


def weights_sha256(network: torch.nn.Module) -> str:
    """Hash of the state dict (names, dtypes, shapes, bytes), independent of file layout."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def random_network(spec: ModelSpec, seed: int, prior: float = 0.01) -> RetinaNetNetwork:
    """A network with random weights (torch's default init, seeded), class prior `prior`."""
    torch.manual_seed(seed)
    network = RetinaNetNetwork(spec)
    set_prior_probability(network, prior)
    return network.eval()


def save_checkpoint(path: str | Path, network: RetinaNetNetwork, extra: dict[str, Any] | None = None) -> None:
    payload = {
        "format_version": CHECKPOINT_FORMAT,
        "spec": network.spec.to_dict(),
        "state_dict": network.state_dict(),
        "extra": extra or {},
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: str | Path) -> tuple[RetinaNetNetwork, dict[str, Any]]:
    """Load a checkpoint; returns (network in eval mode, the checkpoint's `extra` dict)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise ModelError(f"{path}: no such checkpoint") from error
    except Exception as error:
        # torch's own text advises weights_only=False (running the file's code): only its first line is ours
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: not a trt_mass checkpoint ({first_line})") from error
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ModelError(f"{path}: not a trt_mass checkpoint (no format_version)")
    if payload["format_version"] != CHECKPOINT_FORMAT:
        raise ModelError(
            f"{path}: checkpoint format {payload['format_version']!r}, this trt_mass reads {CHECKPOINT_FORMAT}"
        )
    for key in ("spec", "state_dict", "extra"):
        required = key != "extra"
        if (required and key not in payload) or not isinstance(payload.get(key, {}), dict):
            raise ModelError(f"{path}: malformed trt_mass checkpoint (no {key} mapping)")
    try:
        network = RetinaNetNetwork(ModelSpec.from_dict(payload["spec"]))
    except (ConfigError, KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: its model spec is not one this trt_mass builds ({error})") from error
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        missing_or_odd = str(error).strip().splitlines()
        summary = "; ".join(line.strip() for line in missing_or_odd[:3])
        raise ModelError(f"{path}: weights do not match the spec ({summary}{' ...' if len(missing_or_odd) > 3 else ''})"
                         ) from error
    return network.eval(), dict(payload.get("extra", {}))
